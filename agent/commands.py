"""The running agent carries out the collector's requests (checks/commands.py).

An inspection request measures every item of the chosen targets now, like ``agent inspect``,
but the results go through the outbox like any others: the agent is unattended, so they must
survive a broker outage rather than be reported lost to a terminal nobody watches.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import msgspec

from agent.config import AgentConfig
from agent.outbox import Outbox
from checks.commands import InspectRequest, decode_command
from checks.result import Result

log = logging.getLogger(__name__)

#: Outbox state key holding the id of the last request carried out.
DONE_KEY = "last_inspect_request"


class Commands:
    """Takes command payloads from the publisher's connection and runs them, one at a time."""

    def __init__(
        self,
        cfg: AgentConfig,
        outbox: Outbox,
        store: Callable[[Sequence[Result]], None],
    ) -> None:
        self._cfg = cfg
        self._outbox = outbox
        self._store = store
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def received(self, payload: bytes) -> None:
        """Called for each message on the command topic; never raises."""
        try:
            req = decode_command(payload)
        except ValueError as exc:
            log.warning("ignoring a command from the collector: %s", exc)
            return
        task = asyncio.create_task(self._run(req), name=f"inspect-{req.request_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, req: InspectRequest) -> None:
        from agent.runner import check_all

        async with self._lock:
            if self._outbox.get_state(DONE_KEY) == req.request_id:
                log.debug("inspection request %s already carried out", req.request_id)
                return
            known = {t.name for t in self._cfg.targets}
            unknown = sorted(set(req.targets) - known)
            if unknown:
                log.warning("inspection request %s: no such target %s", req.request_id, unknown)
            chosen = [t for t in self._cfg.targets if not req.targets or t.name in req.targets]
            cfg = msgspec.structs.replace(self._cfg, targets=chosen)
            log.info(
                "inspection requested by %s (%s): inspecting %d targets",
                req.requested_by or "the collector",
                req.request_id,
                len(chosen),
            )
            try:
                results = await check_all(cfg) if chosen else []
                self._store(results)
                self._outbox.set_state(DONE_KEY, req.request_id)
            except Exception:
                log.exception(
                    "inspection request %s failed; it is tried again when next delivered",
                    req.request_id,
                )
                return
            log.info(
                "inspection %s done: %d results queued for the collector",
                req.request_id,
                len(results),
            )

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
