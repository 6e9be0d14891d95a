"""The calls of a provider's batch engine (``core.batch``): a card request as a line of an input file, a line of
a result file read as a live answer is, and the SDK's Files and Batch APIs on the client's own loop."""

from __future__ import annotations

from typing import Any

from ..prompts import CARD_SCHEMA, CardRequest, card_messages
from .base import GenerationResult, NoBatchEngine, RequestRejected, RunRefused, TransientError
from .refusals import translate
from .stream_thread import STREAMS
from .wire import read_completion


class BatchCalls:
    """Mixed into ``OpenAICompatProvider``: what batch mode asks of the provider."""

    def batch_body(self, request: CardRequest) -> dict[str, Any]:
        """A card request as a line of a batch's input file: the live request's body, in the format mode the run
        settled on, without streaming."""
        mode = self.format_mode
        return self._fit_cap({
            "model": self.model,
            "messages": card_messages(request, json_hint=mode != "json_schema"),
            **self._format_kwargs(mode, CARD_SCHEMA, "flashcards"),
            **self._answer_cap(request.cards_wanted),
        })  # fmt: skip

    def batch_result(self, body: bytes, request: CardRequest) -> GenerationResult:
        """The cards of one line of a batch's result file (its response's body, a chat completion): read and
        parsed exactly as a live answer is."""
        return self._cards_of(read_completion(body, "application/json", self), request)

    async def batch_api(self, work: Any) -> Any:
        """``await work(client)`` with the run's SDK client, on the loop the client lives on; the SDK's errors as
        the provider's own (``providers.base``)."""

        async def call() -> Any:
            try:
                return await work(self._ensure_client())
            except (TransientError, RunRefused, RequestRejected):
                raise
            except Exception as exc:
                status = getattr(exc, "status_code", None)
                if status in (404, 405):
                    raise NoBatchEngine(f"{self.where} has no batch engine (its /files or /batches answered "
                                        f"{status}); run without --batch") from None  # fmt: skip
                raise translate(self, exc, self.format_mode) from None

        return await (STREAMS.run(call()) if self.off_loop else call())
