"""Values a user gives: the one error type for a bad one, an integer range and a comma-list parser.

This module imports nothing of the package, so every layer can use it; each layer states its own
ranges with it (the embedded engine's in engine/config.py) and the layers above reuse them.
"""

from __future__ import annotations

from dataclasses import dataclass


class UserError(ValueError):
    """A user mistake: the message names the flag; `paretoserve` prints it as one line and exits with status 2."""


@dataclass(frozen=True)
class IntRange:
    """The integers a flag allows, bounds included; `why` says where a bound comes from."""

    low: int
    high: int
    why: str = ""

    def __str__(self) -> str:
        return f"[{self.low}, {self.high}]"

    def contains(self, value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high

    def check(self, flag: str, value: object, error: type[UserError] = UserError) -> int:
        """`value` if it is an integer in the range; else `error` naming the flag, the range and the value."""
        if not self.contains(value):
            reason = f" ({self.why})" if self.why else ""
            raise error(f"{flag} must be an integer in {self}{reason}; got {value!r}")
        return value  # type: ignore[return-value]


def parse_int_list(flag: str, text: str, allowed: IntRange, error: type[UserError] = UserError) -> tuple[int, ...]:
    """'1,2,4' -> (1, 2, 4), repeats dropped; an empty item, a non-integer or a value outside `allowed` is
    refused with `error` naming the flag."""
    try:
        values = tuple(int(part) for part in str(text).split(","))  # int() allows spaces, refuses an empty item
    except ValueError:
        values = ()
    if not values or not all(allowed.contains(v) for v in values):
        reason = f" ({allowed.why})" if allowed.why else ""
        raise error(f"{flag} must be a comma-separated list of integers in {allowed}{reason}; got {text!r}")
    return tuple(dict.fromkeys(values))
