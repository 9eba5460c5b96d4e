"""The console's words in Chinese and English, chosen per user (``users[].lang``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

Lang = Literal["zh-CN", "en"]

_EN: dict[str, str] = {
    "app": "fieldmon console",
    "login": "Sign in",
    "logout": "Sign out",
    "username": "User name",
    "password": "Password",
    "bad_login": "Unknown user or wrong password.",
    "board": "Incident board",
    "site": "Site",
    "level": "Level",
    "state": "State",
    "all": "All",
    "filter": "Filter",
    "number": "Number",
    "title": "Title",
    "target": "Device",
    "opened": "Opened",
    "sla_left": "SLA time left",
    "assignee": "Assignee",
    "tier": "Tier",
    "none": "No incidents match.",
    "details": "Details",
    "timeline": "Timeline",
    "time": "Time",
    "author": "Author",
    "text": "Text",
    "hash": "Hash",
    "impacts": "Impacted devices",
    "no_impacts": "No other device is affected.",
    "check": "Check",
    "since": "Since",
    "cleared": "Cleared",
    "take": "Take over",
    "ack": "Acknowledge",
    "note": "Add a note",
    "note_text": "Note",
    "resolve": "Resolve",
    "resolve_text": "What was done",
    "survey": "Satisfaction survey (closes the incident)",
    "score": "Score (1-5)",
    "comment": "Comment",
    "close": "Send and close",
    "summary": "Summary",
    "caller": "Caller",
    "breached": "breached",
    "not_found": "Not found",
    "forbidden": "Refused",
    "csrf": "The form was refused: its security token is missing or out of date. "
    "Reload the page and try again.",
    "back": "Back to the board",
    "open": "open",
    "resolved": "resolved",
    "closed": "closed",
    "merged": "merged",
    "actions": "Actions",
    "intact": "Timeline hash chain intact",
    "broken": "Timeline hash chain BROKEN",
    "satisfaction": "Satisfaction",
}

_ZH: dict[str, str] = {
    "app": "fieldmon 运维控制台",
    "login": "登录",
    "logout": "退出",
    "username": "用户名",
    "password": "密码",
    "bad_login": "用户不存在或密码错误。",
    "board": "故障看板",
    "site": "站点",
    "level": "级别",
    "state": "状态",
    "all": "全部",
    "filter": "筛选",
    "number": "编号",
    "title": "标题",
    "target": "设备",
    "opened": "发生时间",
    "sla_left": "SLA 剩余时间",
    "assignee": "处理人",
    "tier": "升级层级",
    "none": "没有符合条件的故障。",
    "details": "详情",
    "timeline": "处理记录",
    "time": "时间",
    "author": "记录人",
    "text": "内容",
    "hash": "哈希",
    "impacts": "受影响设备",
    "no_impacts": "没有其他设备受影响。",
    "check": "检查项",
    "since": "开始",
    "cleared": "恢复",
    "take": "接手处理",
    "ack": "确认",
    "note": "添加备注",
    "note_text": "备注",
    "resolve": "解决",
    "resolve_text": "处理措施",
    "survey": "满意度调查（提交后关闭故障）",
    "score": "评分（1-5）",
    "comment": "意见",
    "close": "提交并关闭",
    "summary": "描述",
    "caller": "报障人",
    "breached": "已超时",
    "not_found": "未找到",
    "forbidden": "已拒绝",
    "csrf": "表单被拒绝：安全令牌缺失或已过期。请刷新页面后重试。",
    "back": "返回看板",
    "open": "处理中",
    "resolved": "已解决",
    "closed": "已关闭",
    "merged": "已合并",
    "actions": "操作",
    "intact": "处理记录哈希链完整",
    "broken": "处理记录哈希链已损坏",
    "satisfaction": "满意度",
}

MESSAGES: dict[str, dict[str, str]] = {"en": _EN, "zh-CN": _ZH}


def translator(lang: str) -> Callable[[str], str]:
    table = MESSAGES.get(lang, _ZH)

    def t(key: str) -> str:
        return table.get(key, _EN.get(key, key))

    return t


def pick_lang(accept_language: str | None) -> Lang:
    """For pages shown before anyone signs in: the browser's first preference."""
    if accept_language and not accept_language.lower().startswith("zh"):
        return "en"
    return "zh-CN"
