"""What the notifier needs from a channel, and building channels from configuration."""

from __future__ import annotations

from datetime import tzinfo
from typing import Protocol

from collector.notify.config import (
    ChannelConfig,
    DingTalkConfig,
    EmailConfig,
    FeishuConfig,
    SmsConfig,
    WebhookConfig,
    WeComConfig,
)
from collector.notify.dingtalk import DingTalkChannel
from collector.notify.email import EmailChannel
from collector.notify.feishu import FeishuChannel
from collector.notify.model import Batch
from collector.notify.render import DEFAULT_TZ
from collector.notify.sms import SmsChannel
from collector.notify.webhook import WebhookChannel
from collector.notify.wecom import WeComChannel

__all__ = ["Channel", "build_channel"]


class Channel(Protocol):
    """A way to reach people.

    ``send`` delivers one batch as one message (or one per recipient group or number) and
    returns a short description of the acceptance for the timeline; it raises NotifyError with
    a readable, secret-free reason otherwise. It does no retrying and no grouping: the notifier
    does that the same way for every channel.
    """

    name: str

    async def send(self, batch: Batch) -> str: ...

    async def aclose(self) -> None: ...

    def secrets(self) -> list[str]: ...


def build_channel(name: str, config: ChannelConfig, tz: tzinfo = DEFAULT_TZ) -> Channel:
    if isinstance(config, EmailConfig):
        return EmailChannel(name, config, tz)
    if isinstance(config, WebhookConfig):
        return WebhookChannel(name, config, tz)
    if isinstance(config, DingTalkConfig):
        return DingTalkChannel(name, config, tz)
    if isinstance(config, WeComConfig):
        return WeComChannel(name, config, tz)
    if isinstance(config, FeishuConfig):
        return FeishuChannel(name, config, tz)
    if isinstance(config, SmsConfig):
        return SmsChannel(name, config, tz)
    raise TypeError(f"no channel for {type(config).__name__}")  # pragma: no cover
