"""The inspection checklist catalogue: one TOML file per device class.

Each item says what the contract's monthly inspection checks on that class of device, in
Chinese and English, under which category (环境/硬件/软件/配置/安全), how it is measured,
the fault level a failure opens, and how often it is monitored (or ``"inspection"`` for items
checked only during the inspection run). Keeping this as data lets a maintenance company
adapt the checklist to a contract without touching code.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from checks.thresholds import Threshold, parse_threshold

LANGS = ("zh-CN", "en")
CATEGORIES: dict[str, dict[str, str]] = {
    "environment": {"zh-CN": "环境", "en": "Environment"},
    "hardware": {"zh-CN": "硬件", "en": "Hardware"},
    "software": {"zh-CN": "软件", "en": "Software"},
    "configuration": {"zh-CN": "配置", "en": "Configuration"},
    "security": {"zh-CN": "安全", "en": "Security"},
}
#: ``derived``: concluded by the collector from other results (see collector/derived.py).
METHODS = ("local", "snmp", "ssh", "net", "tcp", "http", "trap", "manual", "derived")
PER = ("mount", "interface", "entity", "process", "sensor")
#: Items with this interval are checked during the inspection run, not monitored.
INSPECTION = "inspection"
#: Items with this interval arrive by themselves (SNMP traps, results the collector derives):
#: never polled, never inspected.
EVENT = "event"
#: Methods whose results arrive by themselves; their items must say ``interval = "event"``.
EVENT_METHODS = ("trap", "derived")


class CatalogueError(ValueError):
    """A checklist file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class CheckItem:
    id: str
    title: Mapping[str, str]
    category: str
    method: str
    level: int
    interval: int | None  # seconds; None = inspection only
    unit: str = ""
    threshold: Threshold | None = None
    per: str | None = None
    description: Mapping[str, str] | None = None
    #: True for ``interval = "event"`` (``interval`` is then None): nothing schedules it.
    event: bool = False

    def title_in(self, lang: str) -> str:
        return self.title.get(lang) or self.title["en"]

    def category_in(self, lang: str) -> str:
        return CATEGORIES[self.category].get(lang, self.category)

    @property
    def interval_text(self) -> str:
        if self.event:
            return EVENT
        return INSPECTION if self.interval is None else f"{self.interval}s"


@dataclass(frozen=True, slots=True)
class DeviceClass:
    name: str
    title: Mapping[str, str]
    items: tuple[CheckItem, ...]
    source: str
    #: The class this one builds on: its items come first, ours replace those with our ids.
    extends: str | None = None
    #: ``items`` by id. Why: :meth:`item` runs once per result the agent produces (every
    #: interface of every poll), and a class has dozens of items to scan.
    _by_id: dict[str, CheckItem] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        for it in self.items:
            self._by_id.setdefault(it.id, it)  # the first of a duplicated id, as a scan finds

    def item(self, check_id: str) -> CheckItem | None:
        return self._by_id.get(check_id)

    def title_in(self, lang: str) -> str:
        return self.title.get(lang) or self.title["en"]


def _titles(where: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or "en" not in value or "zh-CN" not in value:
        raise CatalogueError(f"{where}: must be a table with 'zh-CN' and 'en' strings")
    if not all(isinstance(v, str) and v.strip() for v in value.values()):
        raise CatalogueError(f"{where}: titles must be non-empty strings")
    return dict(value)


def _item(src: str, idx: int, raw: Any) -> CheckItem:
    where = f"{src}: item[{idx}]"
    if not isinstance(raw, dict):
        raise CatalogueError(f"{where}: must be a table")
    known = {
        "id",
        "title",
        "category",
        "method",
        "level",
        "interval",
        "unit",
        "threshold",
        "per",
        "description",
    }
    extra = set(raw) - known
    if extra:
        raise CatalogueError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
    for key in ("id", "title", "category", "method", "level", "interval"):
        if key not in raw:
            raise CatalogueError(f"{where}: missing required key '{key}'")
    cid = raw["id"]
    if not isinstance(cid, str) or not cid or not cid.replace(".", "").replace("_", "").isalnum():
        raise CatalogueError(f"{where}.id: {cid!r} must be lower-case words joined by '.' or '_'")
    where = f"{src}: item '{cid}'"
    if raw["category"] not in CATEGORIES:
        raise CatalogueError(
            f"{where}.category: {raw['category']!r} is not one of {', '.join(CATEGORIES)}"
        )
    if raw["method"] not in METHODS:
        raise CatalogueError(
            f"{where}.method: {raw['method']!r} is not one of {', '.join(METHODS)}"
        )
    level = raw["level"]
    if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 4:
        raise CatalogueError(f"{where}.level: {level!r} must be a fault level 1-4")
    interval = raw["interval"]
    event = interval == EVENT
    if event or interval == INSPECTION:
        interval = None
    elif not isinstance(interval, int) or isinstance(interval, bool) or interval < 5:
        raise CatalogueError(
            f'{where}.interval: {interval!r} must be seconds (>= 5), "{INSPECTION}" or "{EVENT}"'
        )
    if event != (raw["method"] in EVENT_METHODS):
        raise CatalogueError(
            f'{where}.interval: "{EVENT}" is for items that arrive by themselves'
            f" (method {' or '.join(EVENT_METHODS)}), and such items need it;"
            f" got method {raw['method']!r} with interval {raw['interval']!r}"
        )
    per = raw.get("per")
    if per is not None and per not in PER:
        raise CatalogueError(f"{where}.per: {per!r} is not one of {', '.join(PER)}")
    threshold = None
    if "threshold" in raw:
        if not isinstance(raw["threshold"], dict):
            raise CatalogueError(f"{where}.threshold: must be a table")
        try:
            threshold = parse_threshold(raw["threshold"])
        except ValueError as exc:
            raise CatalogueError(f"{where}.threshold: {exc}") from None
    unit = raw.get("unit", "")
    if not isinstance(unit, str):
        raise CatalogueError(f"{where}.unit: must be a string")
    return CheckItem(
        id=cid,
        title=_titles(f"{where}.title", raw["title"]),
        category=raw["category"],
        method=raw["method"],
        level=level,
        interval=interval,
        unit=unit,
        threshold=threshold,
        per=per,
        event=event,
        description=(
            _titles(f"{where}.description", raw["description"]) if "description" in raw else None
        ),
    )


def parse_class(text: str, source: str) -> DeviceClass:
    """Parse one checklist file's text; ``source`` names it in error messages."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{source}: not valid TOML: {exc}") from None
    extra = set(raw) - {"class", "title", "item", "extends"}
    if extra:
        raise CatalogueError(f"{source}: unknown top-level key(s) {', '.join(sorted(extra))}")
    name = raw.get("class")
    if not isinstance(name, str) or not name:
        raise CatalogueError(f"{source}: missing 'class' (the device class name)")
    extends = raw.get("extends")
    if extends is not None and (not isinstance(extends, str) or not extends):
        raise CatalogueError(f"{source}: 'extends' must name a device class")
    items_raw = raw.get("item", [])
    if not isinstance(items_raw, list) or not (items_raw or extends):
        raise CatalogueError(f"{source}: needs at least one [[item]]")
    items = tuple(_item(source, i, it) for i, it in enumerate(items_raw))
    seen: set[str] = set()
    for it in items:
        if it.id in seen:
            raise CatalogueError(f"{source}: item '{it.id}' is defined twice")
        seen.add(it.id)
    title = _titles(f"{source}: title", raw.get("title"))
    return DeviceClass(name, title, items, source, extends)


def _resolve(classes: dict[str, DeviceClass]) -> dict[str, DeviceClass]:
    """Expand ``extends`` chains into complete item lists; cycles and unknown bases fail."""
    done: dict[str, DeviceClass] = {}

    def expand(name: str, chain: tuple[str, ...]) -> DeviceClass:
        if name in done:
            return done[name]
        dc = classes[name]
        if dc.extends is None:
            done[name] = dc
            return dc
        if dc.extends in chain:
            raise CatalogueError(f"{dc.source}: 'extends' loops: {' -> '.join((*chain, name))}")
        if dc.extends not in classes:
            raise CatalogueError(f"{dc.source}: extends unknown class {dc.extends!r}")
        base = expand(dc.extends, (*chain, name))
        own = {it.id: it for it in dc.items}
        merged = [own.pop(it.id, it) for it in base.items] + list(own.values())
        done[name] = DeviceClass(dc.name, dc.title, tuple(merged), dc.source, dc.extends)
        return done[name]

    return {name: expand(name, ()) for name in classes}


def load_file(path: Path) -> DeviceClass:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_class(text, str(path))


def builtin_files() -> list[tuple[str, str]]:
    """(name, text) of the checklists shipped with fieldmon."""
    folder = resources.files("checks") / "catalogue"
    return sorted(
        (f.name, f.read_text(encoding="utf-8"))
        for f in folder.iterdir()
        if f.name.endswith(".toml")
    )


def load_catalogue(extra_dirs: Iterable[Path] = ()) -> dict[str, DeviceClass]:
    """Built-in classes, then files from ``extra_dirs`` (a class defined there replaces ours)."""
    classes: dict[str, DeviceClass] = {}
    for name, text in builtin_files():
        dc = parse_class(text, f"checks/catalogue/{name}")
        classes[dc.name] = dc
    for folder in extra_dirs:
        for path in sorted(Path(folder).glob("*.toml")):
            dc = load_file(path)
            classes[dc.name] = dc
    return _resolve(classes)
