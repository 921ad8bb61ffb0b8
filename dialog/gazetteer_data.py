"""Hanoi place data for the gazetteer, loaded once on first use.

`data/hanoi_units.json` holds the 126 wards and communes of July 2025 and the
old units merged into each; `data/hanoi_places.json` curated streets and
landmarks (see `data/SOURCES.md`). Both are turned into one index from the
folded words of every name to the entries it may mean.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Final, Literal

from dialog.textnorm import fold, strip_accents, tokenize

EntryKind = Literal["landmark", "unit", "street", "old_ward", "old_district"]


@dataclass(frozen=True, slots=True)
class Unit:
    """A ward (phường) or commune (xã) of Hanoi since 1 July 2025."""

    code: str
    name: str
    type: str  # "ward" or "commune"
    old_districts: tuple[str, ...]  # the old districts it took land from, main one first
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Entry:
    """One thing a name may mean: a unit, an old ward or district, a street, a landmark."""

    kind: EntryKind
    name: str
    codes: tuple[str, ...]  # new units, most likely first
    subtype: str | None = None  # ward/commune/town, or phố/đường for streets
    district: str | None = None  # the old district of an old ward
    name_en: str | None = None


@dataclass(frozen=True, slots=True)
class GazetteerData:
    """Units by code, and every known name (folded words) -> (accented words, entry)."""

    units: Mapping[str, Unit]
    code_by_name: Mapping[str, str]
    district_types: Mapping[str, str]
    index: Mapping[tuple[str, ...], tuple[tuple[tuple[str, ...], Entry], ...]]
    max_len: int


_DIGIT_NAMES: Final[dict[str, str]] = {"1": "một", "2": "hai", "3": "ba"}


def _tokens_of(name: str) -> tuple[str, ...]:
    return tuple(t.key for t in tokenize(name))


def _load_json(name: str) -> dict[str, object]:
    text = resources.files("dialog").joinpath("data", name).read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{name}: expected a JSON object")
    return data


def _list(value: object) -> list[dict[str, object]]:
    if not isinstance(value, list):
        raise ValueError("expected a JSON list")
    return [item for item in value if isinstance(item, dict)]


def _strs(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _float(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


@functools.cache
def load() -> GazetteerData:
    """Read the JSON files and build the index (once, ~20 ms)."""
    raw_units = _load_json("hanoi_units.json")
    places = _load_json("hanoi_places.json")
    units: dict[str, Unit] = {}
    code_by_name: dict[str, str] = {}
    entries: list[tuple[str, Entry]] = []  # (spelling to match, entry)
    district_weight: dict[str, dict[str, int]] = {}
    district_types = {
        str(d["name"]): str(d["type"]) for d in _list(raw_units.get("old_districts"))
    }
    for item in _list(raw_units.get("units")):
        code, name = str(item["code"]), str(item["name"])
        unit = Unit(
            code, name, str(item["type"]), _strs(item.get("old_districts")),
            _float(item.get("lat")), _float(item.get("lon")),
        )  # fmt: skip
        units[code] = unit
        code_by_name[fold(name)] = code
        entries.append((name, Entry("unit", name, (code,), unit.type)))
        for old in _list(item.get("merged_from")):
            district = str(old["district"])
            weight = 2 if old.get("whole") else 1
            district_weight.setdefault(district, {})
            district_weight[district][code] = district_weight[district].get(code, 0) + weight
    # old wards: one entry per (district, name), the new units it went to
    old_targets: dict[tuple[str, str, str], list[tuple[bool, str]]] = {}
    for item in _list(raw_units.get("units")):
        for old in _list(item.get("merged_from")):
            key = (str(old["district"]), str(old["name"]), str(old["type"]))
            old_targets.setdefault(key, []).append((not old.get("default"), str(item["code"])))
    for (district, name, subtype), targets in old_targets.items():
        codes = tuple(code for _, code in sorted(targets))
        entries.append((name, Entry("old_ward", name, codes, subtype, district)))
    for district, weights in district_weight.items():
        codes = tuple(sorted(weights, key=lambda c: (-weights[c], c)))
        entries.append((district, Entry("old_district", district, codes, None, district)))
    for item in _list(places.get("streets")):
        codes = tuple(code_by_name[fold(str(n))] for n in _strs(item.get("units")))
        name = str(item["name"])
        entries.append((name, Entry("street", name, codes, str(item.get("kind", "phố")))))
    for item in _list(places.get("landmarks")):
        codes = tuple(code_by_name[fold(str(n))] for n in _strs(item.get("units")))
        name = str(item["name"])
        name_en = str(item.get("name_en") or strip_accents(name))
        landmark = Entry("landmark", name, codes, None, None, name_en)
        for alias in (name, *_strs(item.get("aliases"))):
            entries.append((alias, landmark))
    index: dict[tuple[str, ...], list[tuple[tuple[str, ...], Entry]]] = {}
    for spelled, entry in entries:
        for variant in _variants(spelled):
            accented = _tokens_of(variant)
            folded_key = tuple(fold(t) for t in accented)
            bucket = index.setdefault(folded_key, [])
            if (accented, entry) not in bucket:
                bucket.append((accented, entry))
    return GazetteerData(
        MappingProxyType(units),
        MappingProxyType(code_by_name),
        MappingProxyType(district_types),
        MappingProxyType({k: tuple(v) for k, v in index.items()}),
        max(len(k) for k in index),
    )


def _variants(name: str) -> Iterable[str]:
    yield name
    if any(ch.isdigit() for ch in name):  # "Mỹ Đình 1" is said "Mỹ Đình một"
        yield re.sub(r"\d", lambda m: _DIGIT_NAMES.get(m.group(), m.group()), name)


def units() -> Mapping[str, Unit]:
    """Hanoi's new wards and communes by code."""
    return load().units


def unit_by_name(name: str) -> Unit | None:
    gaz = load()
    code = gaz.code_by_name.get(fold(name))
    return gaz.units[code] if code is not None else None
