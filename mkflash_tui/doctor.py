"""``mkflash-tui doctor``: one screenful on the server a run would use, each line a fact or a plain "unknown".

What the server says about itself (its kind, models, context per request, slots), then two small card calls
through the same provider a run uses: they find which structured-output mode it takes, whether its streams carry
usage, how long one small call takes, and whether the key is accepted. Exit 0 when a run would work, 3 when not.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import TextIO

from .config import Settings
from .core import fitting
from .core.chunking import ChunkingError
from .core.parsing import OutputError
from .core.prompts import CardRequest
from .core.providers.base import ProviderError, RunRefused, TransientError
from .core.providers.discovery import ServerInfo
from .job import discover_server, fit_to_server, make_provider

PROBE_TEXT = "Rayleigh scattering makes the daytime sky blue: air molecules scatter short blue wavelengths of sunlight "
PROBE_TEXT += "far more than long red ones."
MAX_PROBE_TRIES = 5  # the format modes, and a stream_options refusal


@dataclass
class Checkup:
    """What ``doctor`` found; ``works`` says whether a run would."""

    where: str
    model: str
    server: ServerInfo | None = None
    structured_output: str | None = None
    streams_usage: bool | None = None
    latency: float | None = None
    key: str = "unknown"  # accepted, refused, not needed, unknown
    plan: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def works(self) -> bool:
        return not self.problems and self.latency is not None

    def as_dict(self) -> dict:
        return {"address": self.where, "model": self.model, "server": self.server.facts() if self.server else None,
                "structured_output": self.structured_output, "streams_usage": self.streams_usage,
                "latency_seconds": None if self.latency is None else round(self.latency, 2), "key": self.key,
                "plan": self.plan, "problems": self.problems, "works": self.works}  # fmt: skip

    def lines(self) -> list[tuple[str, str]]:
        """(label, fact) rows, for the terminal and the app's Settings."""
        info = self.server or ServerInfo()
        kind = info.kind + (f" ({info.version})" if info.version else "")
        models = ", ".join(info.models[:5]) + (f" and {len(info.models) - 5} more" if len(info.models) > 5 else "")
        return [
            ("server", kind if info.reachable else "nothing answers"),
            ("models", models or "unknown"),
            ("context", info.describe_window()),
            ("slots", info.describe_slots()),
            ("structured output", self.structured_output or "unknown"),
            ("streams usage", {True: "yes", False: "no", None: "unknown"}[self.streams_usage]),
            ("one small call", "unknown" if self.latency is None else f"{self.latency:.1f} s"),
            ("key", self.key),
        ]


async def check(settings: Settings, server: ServerInfo | None = None) -> Checkup:
    """Look at the server ``settings`` name and make two small calls to it."""
    where = settings.base_url or "https://api.openai.com/v1"
    result = Checkup(where, settings.model)
    if not settings.online:
        result.problems.append("no server is set: runs use the offline generator (give --provider or --base-url)")
        return result
    result.server = server or await asyncio.to_thread(discover_server, settings)
    info = result.server
    if info is not None and not info.reachable:
        result.problems.append(f"nothing answers at {where}: is the server running, and is --base-url right?")
        return result
    if info is not None and info.models and settings.model not in info.models and len(info.models) > 1:
        result.problems.append(f"the server does not list model {settings.model!r} (it lists "
                               f"{', '.join(info.models[:5])})")  # fmt: skip
    probe_settings = dataclasses.replace(settings)
    try:
        _, notes = fit_to_server(probe_settings, info)
        result.plan = notes or ["the defaults fit: nothing to change"]
    except ChunkingError as exc:
        result.problems.append(str(exc))
    provider = make_provider(probe_settings, None, stream=False)  # type: ignore[arg-type]
    request = CardRequest(PROBE_TEXT, "", 1, "A check", "A one-sentence check of the server.",
                          compact=bool(info and info.window and info.window < fitting.COMPACT_BELOW))  # fmt: skip
    try:
        started = time.monotonic()
        if await _call(provider, request, result, stream=False):
            result.latency = time.monotonic() - started
            result.structured_output = provider.format_mode
            provider.stream = True
            await _call(provider, request, result, stream=True)
            result.streams_usage = provider.streams_usage
    finally:
        await provider.aclose()
    if result.key == "unknown" and result.latency is not None:
        result.key = "accepted" if settings.api_key else "not needed"
    return result


async def _call(provider, request: CardRequest, result: Checkup, *, stream: bool) -> bool:
    """One small card call, asked again as the provider adapts to the server's refusals; False if it failed."""
    for _ in range(MAX_PROBE_TRIES):
        try:
            await provider.generate(request, lambda tokens: None)
            return True
        except OutputError:
            return True  # it answered; what a weak model writes is not the server's fault
        except TransientError as exc:
            if exc.adapted or exc.cut_stream:
                continue
            result.problems.append(("a streamed call: " if stream else "") + str(exc))
            return False
        except RunRefused as exc:
            if exc.field == "key":
                result.key = "refused"
            result.problems.append(str(exc))
            return False
        except ProviderError as exc:
            result.problems.append(str(exc))
            return False
    result.problems.append("the server refused every way of asking for JSON")
    return False


def run_doctor(settings: Settings, *, as_json: bool, stdout: TextIO, stderr: TextIO) -> int:
    """Print the checkup; 0 when a run would work, 3 when it would not."""
    result = asyncio.run(check(settings))
    if as_json:
        stdout.write(json.dumps(result.as_dict()) + "\n")
    else:
        stdout.write(f"mkflash-tui doctor: {result.where}, model {result.model}\n")
        for label, fact in result.lines():
            stdout.write(f"  {label:<18} {fact}\n")
        for note in result.plan:
            stdout.write(f"  {'a run':<18} {note}\n")
        for problem in result.problems:
            stdout.write(f"  problem: {problem}\n")
        stdout.write("a run would work\n" if result.works else "a run would not work\n")
    return 0 if result.works else 3
