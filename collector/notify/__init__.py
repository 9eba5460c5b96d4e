"""Telling people about incidents: e-mail, webhooks, DingTalk, WeCom, Feishu and SMS.

Independent of how incidents are stored: the incident side hands ``Notice`` values to a
``Notifier`` and records the ``Outcome`` of every delivery attempt it reports back.
"""

from collector.notify.channel import Channel, build_channel
from collector.notify.config import NotifyConfig
from collector.notify.errors import NotifyError
from collector.notify.model import KINDS, Batch, Kind, Notice, Outcome
from collector.notify.notifier import Notifier, OutcomeCallback

__all__ = [
    "KINDS",
    "Batch",
    "Channel",
    "Kind",
    "Notice",
    "Notifier",
    "NotifyConfig",
    "NotifyError",
    "Outcome",
    "OutcomeCallback",
    "build_channel",
]
