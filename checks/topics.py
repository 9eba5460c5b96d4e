"""MQTT topic names of wire contract v1.

The collector trusts the topic, not the payload: the broker's ACL decides who may publish
under ``fieldmon/v1/{site}/{agent}/…``, so site and agent are read from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

PREFIX = "fieldmon/v1"
SHARE_GROUP = "fieldmon"
#: Where collectors announce themselves to each other (collector/peers.py); not agents' space.
COLLECTORS_ROOT = "fieldmon/collectors"
TopicKind = Literal["results", "status", "inspection"]
KINDS: tuple[TopicKind, ...] = ("results", "status", "inspection")

#: Site, agent and target names: safe in topics (no wildcards, no slashes), file names and URLs.
#: Written with ``$`` because pydantic (the collector's API and configuration) hands it to a
#: regex engine where ``$`` is the end of the text; Python's ``re`` also lets ``$`` match before
#: a final newline, so Python code uses ``NAME_RE.fullmatch`` and msgspec gets ``NAME_PATTERN``.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NAME_PATTERN = NAME_RE.pattern.removesuffix("$") + r"\Z"


def check_name(kind: str, name: str) -> str:
    """Return ``name`` or raise ValueError saying why it cannot be a site/agent/target name."""
    if not NAME_RE.fullmatch(name):
        raise ValueError(
            f"{kind} name {name!r} must be 1-64 characters of letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return name


def topic(site: str, agent: str, kind: TopicKind) -> str:
    """The topic an agent publishes ``kind`` messages on."""
    return f"{PREFIX}/{site}/{agent}/{kind}"


def subscription(kind: TopicKind, shared: bool = True) -> str:
    """Collector subscription filter; shared so that several collectors split the load."""
    base = f"{PREFIX}/+/+/{kind}"
    return f"$share/{SHARE_GROUP}/{base}" if shared else base


@dataclass(frozen=True, slots=True)
class TopicParts:
    site: str
    agent: str
    kind: TopicKind


def parse_topic(text: str) -> TopicParts:
    """Split a v1 topic; ValueError with the reason when it is not one."""
    parts = text.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != PREFIX:
        raise ValueError(f"topic {text!r} is not fieldmon/v1/<site>/<agent>/<kind>")
    site, agent, kind = parts[2], parts[3], parts[4]
    check_name("site", site)
    check_name("agent", agent)
    if kind not in KINDS:
        raise ValueError(f"topic kind {kind!r} is not one of {', '.join(KINDS)}")
    return TopicParts(site, agent, kind)
