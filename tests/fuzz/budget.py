"""How hard the fuzz tests try: a fixed, small search in `make test`, a wide one in `make fuzz`.

`make test` runs every property with a few hundred examples, derandomised, so
the suite is deterministic and stays well under a minute. `make fuzz` sets
`CALLBOT_FUZZ_EXAMPLES` (examples per property) and searches at random; a
failure prints the shrunk input and a `@reproduce_failure` blob to replay it.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

ENV = "CALLBOT_FUZZ_EXAMPLES"


def examples(quick: int) -> int:
    """`quick` in `make test`; in `make fuzz`, the number it asks for (never fewer)."""
    raw = os.environ.get(ENV, "").strip()
    return max(quick, int(raw)) if raw else quick


def fuzzing() -> bool:
    return bool(os.environ.get(ENV, "").strip())


def fuzz_settings(quick: int = 200, *, deadline_s: float | None = 5.0) -> settings:
    """Settings for one property: `quick` examples in `make test`, more in `make fuzz`.

    The deadline is generous (2 shared cores): each example of a pure parser
    takes microseconds, so one over `deadline_s` is a hang, not noise.
    """
    return settings(
        max_examples=examples(quick),
        deadline=None if deadline_s is None else timedelta(seconds=deadline_s),
        derandomize=not fuzzing(),
        database=None,  # nothing written into the work tree
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
