"""The one exception every channel raises."""

from __future__ import annotations

__all__ = ["NotifyError"]


class NotifyError(Exception):
    """A message could not be delivered. ``str()`` is meant for an operator and the incident
    timeline: it says which server or service refused and why, and never holds a secret (no
    password, token, or URL with its query string)."""
