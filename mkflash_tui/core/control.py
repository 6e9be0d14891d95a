"""Whether a run may go on: refused by the server, halted by a store that cannot be written, cancelled by the
user — and the calls to stop when it may not."""

from __future__ import annotations

import asyncio

from .providers.base import RunRefused
from .text import strip_controls


class RunCancelled(Exception):
    """Raised by ``Run.summarize`` when the run was cancelled or refused before it had a summary."""


class RunHalted(Exception):
    """No new requests: the session store could not be written (the run's ``halted`` says why)."""


class Control:
    """One run's stop state and the tasks it stops."""

    def __init__(self) -> None:
        self.fatal: str | None = None  # why the server refused the whole run
        self.refusal: RunRefused | None = None  # the refusal behind ``fatal``, when the provider gave one
        self.halted: str | None = None  # the store failed: no new requests; what is in flight finishes in memory
        self.cancelled = False
        self._tasks: set[asyncio.Task[object]] = set()

    def check(self) -> None:
        """Raise when no request may be sent any more."""
        if self.fatal:
            raise RunRefused(self.fatal)
        if self.halted:
            raise RunHalted(self.halted)

    def stopped(self) -> bool:
        return bool(self.fatal or self.cancelled or self.halted)

    def unsent_reason(self) -> tuple[str, bool]:
        """Why a chunk is not sent, and whether that is a cancellation (else a failure)."""
        if self.fatal:
            return self.fatal, False
        if self.halted:
            return f"not sent: {self.halted}", True
        return "cancelled", True

    def track(self, task: asyncio.Task[object] | None) -> None:
        if task is not None:
            self._tasks.add(task)

    def untrack(self, task: asyncio.Task[object] | None) -> None:
        self._tasks.discard(task)  # type: ignore[arg-type]

    def refuse(self, reason: str, error: RunRefused | None = None) -> None:
        """The server refused the whole run: stop every other call, once. ``error``: the refusal as the provider
        gave it (its reason without the command-line fix, and the setting to correct), for the app."""
        if self.fatal:
            return
        self.fatal = strip_controls(reason)
        self.refusal = error
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()

    def halt(self, reason: str) -> None:
        if not self.halted:
            self.halted = reason

    def cancel(self) -> None:
        """Cancel every outstanding call."""
        self.cancelled = True
        for task in list(self._tasks):
            task.cancel()

    def forgive(self) -> None:
        """Go on after a refusal the user corrected."""
        self.fatal = self.refusal = None
        self.cancelled = False
