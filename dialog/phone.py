"""Vietnamese callback numbers, as callers say or type them.

National format after the 2018 renumbering: mobiles are 10 digits,
0 + a two-digit network prefix + 7 digits; landlines are 11 digits, 02 + the
area code + the subscriber number (Hanoi 024 + 8 digits, Ho Chi Minh City
028 + 8 digits, other provinces 02XX + 7 digits).
"""

from __future__ import annotations

import re
from typing import Final

from dialog.numbers import words_to_digits
from dialog.textnorm import nfc

# Mobile network prefixes in use (the second and third digits of 0XX):
# Viettel 032-039, 086, 096-098; Vinaphone 081-085, 088, 091, 094;
# MobiFone 070, 076-079, 089, 090, 093; Vietnamobile 052, 056, 058, 092;
# Gmobile 059, 099; Reddi 055; Itelecom 087.
MOBILE_PREFIXES: Final[frozenset[str]] = frozenset(
    [f"03{d}" for d in "23456789"]
    + ["052", "055", "056", "058", "059"]
    + ["070", "076", "077", "078", "079"]
    + [f"08{d}" for d in "123456789"]
    + [f"09{d}" for d in "0123456789"]
)
# Emergency and service short numbers: never a callback number.
SHORT_NUMBERS: Final[frozenset[str]] = frozenset({"111", "112", "113", "114", "115"})

# Digits with the separators callers and ASR put between them, and an
# optional international prefix.
_CANDIDATE = re.compile(r"(?:\+|00)?\d(?:[\s.\-()]*\d)*")


def _national(digits: str, international: bool) -> str | None:
    """National "0..." form of a digit string, or None when it cannot be one."""
    if international or digits.startswith("84"):
        if digits.startswith("0084"):
            digits = digits[4:]
        elif digits.startswith("84") and len(digits) in (11, 12):
            digits = digits[2:]
        elif international:
            return None  # another country's number
        if digits.startswith("0"):
            digits = digits[1:]  # "+84 09..." said with the trunk zero
        digits = "0" + digits
    elif not digits.startswith("0") and len(digits) == 9 and digits[0] in "35789":
        digits = "0" + digits  # the leading zero dropped: "912 345 678"
    return digits


def is_plausible_vn_phone(number: str) -> bool:
    """A national-format mobile (10 digits) or landline (11 digits, 02...) number."""
    if not number.isdigit():
        return False
    if len(number) == 10:
        return number[:3] in MOBILE_PREFIXES
    if len(number) == 11:  # area codes run 0203-0299 (Hanoi 024, HCMC 028)
        return number.startswith("02") and number[2:4] not in ("00", "01", "02")
    return False


def normalise_vn_phone(text: str) -> str | None:
    """The callback number in `text` as "0XXXXXXXXX", or None when there is none.

    Accepts spoken digits ("không chín một hai ..."), spaces, dots, dashes and
    brackets, and +84 / 84 / 0084 prefixes. Emergency short numbers (113, 114,
    115) and numbers of the wrong length or prefix give None.
    """
    converted = words_to_digits(nfc(text))
    found: list[str] = []
    for match in _CANDIDATE.finditer(converted):
        raw = match.group()
        international = raw.startswith("+") or raw.startswith("00")
        digits = re.sub(r"\D", "", raw)
        if digits in SHORT_NUMBERS:
            continue
        number = _national(digits, international)
        if number is not None and is_plausible_vn_phone(number):
            found.append(number)
    return found[0] if found else None


__all__ = ["MOBILE_PREFIXES", "SHORT_NUMBERS", "is_plausible_vn_phone", "normalise_vn_phone"]
