"""The words of a notification, in zh-CN and en.

One batch can hold one notice or five hundred: the headline says how many and of what kind,
the body lists the first few and counts the rest. Every channel builds its message from these
pieces so that a page reads the same on a phone, in DingTalk and in the mailbox.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

from collector.notify.config import Lang
from collector.notify.model import Kind, Notice

__all__ = ["body_lines", "headline", "markdown", "plain_text", "short_text", "trim_bytes"]

#: The contracts' time zone; shown times are local because the people paged are.
DEFAULT_TZ: tzinfo = ZoneInfo("Asia/Shanghai")

_KIND: dict[Lang, dict[Kind, str]] = {
    "zh-CN": {
        "opened": "新故障",
        "escalated": "故障升级",
        "breached": "超时告警",
        "resolved": "已恢复",
        "reminder": "提醒",
    },
    "en": {
        "opened": "opened",
        "escalated": "escalated",
        "breached": "deadline passed",
        "resolved": "resolved",
        "reminder": "reminder",
    },
}
_LEVEL: dict[Lang, tuple[str, ...]] = {
    "zh-CN": ("", "一级", "二级", "三级", "四级"),
    "en": ("", "L1", "L2", "L3", "L4"),
}
_TIER: dict[Lang, tuple[str, ...]] = {
    "zh-CN": ("", "一级维护", "二级维护", "三级维护"),
    "en": ("", "tier 1", "tier 2", "tier 3"),
}
_WORDS: dict[Lang, dict[str, str]] = {
    "zh-CN": {
        "fault": "故障",
        "incidents": "{n} 个故障",
        "more": "……另有 {n} 条未列出",
        "deadline": "时限",
        "at": "时间",
        "sites": "{n} 个站点",
        "link": "详情",
        "sep": "，",
        "colon": "：",
    },
    "en": {
        "fault": "fault",
        "incidents": "{n} incidents",
        "more": "… and {n} more not listed",
        "deadline": "deadline",
        "at": "at",
        "sites": "{n} sites",
        "link": "details",
        "sep": ", ",
        "colon": ": ",
    },
}


def _time(dt: datetime, tz: tzinfo) -> str:
    return dt.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _kinds(notices: Sequence[Notice], lang: Lang) -> str:
    counts = Counter(n.kind for n in notices)
    words = _WORDS[lang]
    if len(notices) == 1:
        return _KIND[lang][notices[0].kind]
    parts = [f"{_KIND[lang][k]} {c}" for k, c in counts.most_common()]
    return words["sep"].join(parts)


def headline(notices: Sequence[Notice], lang: Lang) -> str:
    """One line: the subject of a mail, the title of a card, the start of an SMS.

    It leads with the most severe level in the batch, because that is what decides whether the
    reader gets up at night.
    """
    w = _WORDS[lang]
    worst = min(n.level for n in notices)
    sites = sorted({n.site for n in notices})
    where = sites[0] if len(sites) == 1 else w["sites"].format(n=len(sites))
    level = _LEVEL[lang][worst] + (w["fault"] if lang == "zh-CN" else "")
    if len(notices) == 1:
        n = notices[0]
        return f"[{level}] {where} {_kinds(notices, lang)}{w['colon']}{n.number} {n.title}"
    count = w["incidents"].format(n=len(notices))
    return f"[{level}] {where} {count}{w['colon']}{_kinds(notices, lang)}"


def _line(n: Notice, lang: Lang, tz: tzinfo) -> str:
    w = _WORDS[lang]
    parts = [
        f"{n.number} [{_LEVEL[lang][n.level]}/{_TIER[lang][n.tier]}] {_KIND[lang][n.kind]}",
        f"{n.site}/{n.target}{w['colon']}{n.title}",
    ]
    if n.summary and n.summary != n.title:
        parts.append(n.summary)
    parts.append(f"{w['at']} {_time(n.at, tz)}")
    if n.deadline is not None and n.kind != "resolved":
        parts.append(f"{w['deadline']} {_time(n.deadline, tz)}")
    return " · ".join(parts)


def body_lines(
    notices: Sequence[Notice], lang: Lang, limit: int, tz: tzinfo = DEFAULT_TZ
) -> list[str]:
    """One line per notice for the first ``limit``, then one line counting the rest."""
    lines = [_line(n, lang, tz) for n in notices[:limit]]
    if len(notices) > limit:
        lines.append(_WORDS[lang]["more"].format(n=len(notices) - limit))
    return lines


def plain_text(notices: Sequence[Notice], lang: Lang, limit: int, tz: tzinfo = DEFAULT_TZ) -> str:
    """Headline, blank line, the listed notices with their links: the body of a mail."""
    w = _WORDS[lang]
    out = [headline(notices, lang), ""]
    for n, line in zip(notices[:limit], body_lines(notices, lang, limit, tz), strict=False):
        out.append(f"- {line}")
        if n.url:
            out.append(f"  {w['link']}{w['colon']}{n.url}")
    if len(notices) > limit:
        out.append(_WORDS[lang]["more"].format(n=len(notices) - limit))
    return "\n".join(out) + "\n"


def markdown(notices: Sequence[Notice], lang: Lang, limit: int, tz: tzinfo = DEFAULT_TZ) -> str:
    """The same as markdown for the IM robots (their common subset: headings, bold, lists,
    links)."""
    w = _WORDS[lang]
    out = [f"### {headline(notices, lang)}", ""]
    for n, line in zip(notices[:limit], body_lines(notices, lang, limit, tz), strict=False):
        text = line.replace(n.number, f"**{n.number}**", 1)
        out.append(f"- {text}" + (f" [{w['link']}]({n.url})" if n.url else ""))
    if len(notices) > limit:
        out.append("")
        out.append(w["more"].format(n=len(notices) - limit))
    return "\n".join(out)


def short_text(notices: Sequence[Notice], lang: Lang, max_chars: int) -> str:
    """An SMS: the headline and as much of the first notice as fits in ``max_chars``."""
    text = headline(notices, lang)
    if len(notices) > 1:
        first = notices[0]
        text += f" | {first.number} {first.site}/{first.target} {first.title}"
    elif notices[0].summary and notices[0].summary != notices[0].title:
        text += f" | {notices[0].summary}"
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def trim_bytes(text: str, max_bytes: int, marker: str = "…") -> str:
    """Cut ``text`` to at most ``max_bytes`` of UTF-8 without splitting a character.

    The robots count message size in bytes (WeCom: 2048 for text, 4096 for markdown), and a
    message over the limit is refused whole, so a long list must be cut, not lost.
    """
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    keep = max_bytes - len(marker.encode("utf-8"))
    return data[:keep].decode("utf-8", errors="ignore") + marker
