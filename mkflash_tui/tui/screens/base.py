"""What every screen that closes itself shares."""

from __future__ import annotations

from typing import Any

from textual.await_complete import AwaitComplete


async def _nothing() -> None:
    return None


class DismissOnce:
    """A screen that closes at most once, and only while it is the top screen.

    Textual's ``Screen.dismiss`` pops whatever screen is on top: a second Enter that reached a dialog before it
    closed would pop the screen below it too (and a third raise ``ScreenStackError``). Keys arrive in bursts
    (a paste, a held key, a fast typist), so every screen that dismisses itself goes through here.
    """

    _dismissed = False

    def dismiss(self, result: Any = None) -> AwaitComplete:
        if self._dismissed or self.app.screen is not self:  # type: ignore[attr-defined]
            return AwaitComplete(_nothing())
        self._dismissed = True
        return super().dismiss(result)  # type: ignore[misc]
