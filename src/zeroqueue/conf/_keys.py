"""go-zero's key matching: case-insensitive, and a typo of a declared key is an error.

go-zero matches a config file's keys to a struct's fields without regard to
case, and ignores keys the struct does not declare (so one file can serve
several programs). zeroqueue does the same, also accepting snake_case, with one
exception: a key that is a near miss of a declared one (``Brokrs``) is taken
for a typo and refused, naming the key it resembles, instead of being ignored
while the field silently keeps its default.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["KeyPath", "at", "canonical", "near_miss"]

#: A path of keys (and list indexes) from the root of a config.
KeyPath = tuple[str | int, ...]

# How alike a key and a declared key must be (difflib's ratio, on canonical
# spellings) to be a typo: "Brokrs"/"Brokers" is 0.92, "MinByte"/"MinBytes" 0.93,
# while "Mode"/"Name" (0.5) or "Auth"/"Offset" are merely different keys.
_TYPO_CUTOFF = 0.85


def canonical(key: str) -> str:
    """The spelling keys are compared in: case, underscores and dashes dropped."""
    return key.replace("_", "").replace("-", "").lower()


def near_miss(key: str, declared: Iterable[str]) -> str | None:
    """The declared key that ``key`` looks like a typo of, if any."""
    by_canonical = {canonical(name): name for name in declared}
    close = difflib.get_close_matches(canonical(key), by_canonical, n=1, cutoff=_TYPO_CUTOFF)
    return by_canonical[close[0]] if close else None


def at(source: str, path: KeyPath) -> str:
    """``source: Key.Path[2].Leaf``; ``source`` alone for the root, the path alone without one."""
    shown = ""
    for part in path:
        shown += f"[{part}]" if isinstance(part, int) else (f".{part}" if shown else part)
    if not source:
        return shown
    return f"{source}: {shown}" if shown else source
