"""Check statuses and the order in which they combine."""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum


class Status(IntEnum):
    """Outcome of one check.

    The integer order is the "worst wins" order: a device with one CRIT item is CRIT, and an
    item we could not measure (UNKNOWN) counts as worse than a warning, because an engineer
    has to go and look either way.
    """

    OK = 0
    WARN = 1
    UNKNOWN = 2
    CRIT = 3

    @classmethod
    def parse(cls, text: str) -> Status:
        """Read a status name as it appears on the wire and in config files."""
        try:
            return cls[text.upper()]
        except KeyError:
            names = ", ".join(s.name for s in cls)
            raise ValueError(f"unknown status {text!r} (expected one of {names})") from None


def worst(statuses: Iterable[Status]) -> Status:
    """The worst of several statuses; OK when there are none."""
    return max(statuses, default=Status.OK)
