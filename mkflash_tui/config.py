"""Settings for a run, from flags and environment (flags win), and the argument parser both faces share."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from .core.chunking import DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP_TOKENS
from .core.engine import DEFAULT_CONCURRENCY
from .core.providers.openai_compat import DEFAULT_TIMEOUT, IDLE_FLOOR

DEFAULT_MODEL = "gpt-4o-mini"
DEMO_CHUNK_TOKENS = 220  # the demo text is short; smaller chunks show the parallel flow
DEMO_OVERLAP_TOKENS = 20
CONFIRM_ABOVE_USD = 0.50  # headless runs estimated above this ask first (or need --yes / --max-cost)


class UsageError(Exception):
    """A bad flag or combination of flags; one sentence for the user (exit 2)."""


@dataclass(slots=True)
class Settings:
    input: str | None = None
    demo: bool = False
    output: Path | None = None
    deck: str | None = None
    provider: str = "offline"
    provider_reason: str = ""
    model: str = DEFAULT_MODEL
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    key_source: str = ""
    concurrency: int = DEFAULT_CONCURRENCY
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS
    context_tokens: int | None = None
    cards: int | None = None
    instructions: str = ""
    dry_run: bool = False
    max_cost: float | None = None
    yes: bool = False
    force: bool = False
    json: bool = False
    timeout: float = DEFAULT_TIMEOUT
    format: str | None = None
    tags: list[str] = field(default_factory=list)
    reverse: bool = False
    subdecks: bool = False
    data_dir: Path | None = None  # None: MKFLASH_DATA_DIR or the platform's user data directory
    fresh: bool = False
    no_cache: bool = False
    session: str | None = None  # --session NAME: what finds the session of stdin or a paste again
    drop_flagged: bool = False  # drop every card the quality gate flags (clearly broken ones always go)
    source: str | None = None  # a stored session's source key, when the app reopens it

    @property
    def online(self) -> bool:
        return self.provider == "openai"

    def describe_provider(self) -> str:
        if not self.online:
            return (
                f"the offline generator ({self.provider_reason})" if self.provider_reason else "the offline generator"
            )
        where = self.base_url or "api.openai.com"
        return f"{self.model} at {where}" + (f" ({self.provider_reason})" if self.provider_reason else "")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of at least 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every face accepts, so scripts and people use the same words."""
    parser.add_argument("-o", "--output", type=Path, help="where to write the deck (default: <input stem>.apkg)")
    parser.add_argument("--deck", help="deck name (default: the document's own title, or the file's name)")
    parser.add_argument(
        "--provider",
        choices=("openai", "offline"),
        help="openai (any OpenAI-compatible server) or offline (default: openai when OPENAI_API_KEY or a base "
        "URL is set, else offline)",
    )
    parser.add_argument("--model", help=f"model name (default: {DEFAULT_MODEL})")
    parser.add_argument(
        "--base-url", help="OpenAI-compatible server, e.g. http://localhost:11434/v1 (env OPENAI_BASE_URL)"
    )
    parser.add_argument("--api-key", help="API key (env OPENAI_API_KEY); never written anywhere")
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_CONCURRENCY,
        help=f"calls in flight (default: {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--chunk-tokens", type=_positive_int, help=f"tokens per chunk (default: {DEFAULT_CHUNK_TOKENS})"
    )
    parser.add_argument(
        "--overlap-tokens",
        type=_non_negative_int,
        help=f"tokens repeated between neighbouring chunks (default: {DEFAULT_OVERLAP_TOKENS}, "
        "or an eighth of --chunk-tokens if that is smaller)",
    )
    parser.add_argument(
        "--context-tokens", type=_positive_int, help="the model's context window, for servers that don't say"
    )
    parser.add_argument("--cards", type=_positive_int, help="total cards wanted (default: about one per 80 tokens)")
    parser.add_argument("--instructions", default="", help="extra instructions added to the card prompt")
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds one request may take, end to end (default: {DEFAULT_TIMEOUT:g}); a stream that sends "
        f"nothing for {IDLE_FLOOR:g} s (or S/5, if longer) is dropped; a request that timed out is tried once "
        "more, so at worst a chunk gives up after about 2 x S",
    )
    parser.add_argument("--max-cost", type=_positive_float, metavar="USD", help="refuse to start above this estimate")
    parser.add_argument("--yes", "-y", action="store_true", help="start without asking")
    parser.add_argument("--force", action="store_true", help="overwrite the output file")
    parser.add_argument("--demo", action="store_true", help="use the bundled sample text and the offline generator")
    parser.add_argument("--format", choices=("apkg", "csv", "md", "json"), help="output format (default: by extension)")
    parser.add_argument("--tag", dest="tags", action="append", default=[], help="add a tag to every note (repeatable)")
    parser.add_argument("--reverse", action="store_true", help="basic cards also get a reversed card")
    parser.add_argument(
        "--drop-flagged",
        action="store_true",
        help="leave out every card the quality gate flags (default: keep them, marked; clearly broken cards and "
        "near-duplicates are always left out)",
    )
    parser.add_argument("--subdecks", action="store_true", help="one subdeck per top-level heading (Deck::Chapter)")
    add_store_arguments(parser)
    parser.add_argument("--fresh", action="store_true", help="start a new session instead of resuming; ask again")
    parser.add_argument(
        "--session",
        metavar="NAME",
        help="name the session, so a re-run of stdin or a paste continues it (files are found by their path)",
    )
    parser.add_argument("--no-cache", action="store_true", help="do not answer from earlier runs' results")


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="where sessions are kept (env MKFLASH_DATA_DIR)")


def settings_from_args(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Settings:
    """Build Settings: flags first, then the environment, then defaults. Raises UsageError."""
    env = os.environ if environ is None else environ
    settings = Settings()
    settings.input = getattr(args, "input", None)
    settings.demo = bool(args.demo)
    settings.output = args.output
    settings.deck = args.deck
    settings.model = args.model or DEFAULT_MODEL
    settings.base_url = args.base_url or env.get("OPENAI_BASE_URL") or None
    if args.api_key:
        settings.api_key, settings.key_source = args.api_key, "--api-key"
    elif env.get("OPENAI_API_KEY"):
        settings.api_key, settings.key_source = env["OPENAI_API_KEY"], "OPENAI_API_KEY"
    settings.concurrency = args.concurrency
    settings.context_tokens = args.context_tokens
    settings.cards = args.cards
    settings.instructions = args.instructions or ""
    settings.max_cost = args.max_cost
    settings.yes = args.yes
    settings.force = args.force
    settings.json = bool(getattr(args, "json", False))
    settings.dry_run = bool(getattr(args, "dry_run", False))
    settings.timeout = args.timeout
    settings.format = args.format
    settings.tags = list(args.tags)
    settings.reverse = args.reverse
    settings.drop_flagged = args.drop_flagged
    settings.subdecks = args.subdecks
    settings.data_dir = args.data_dir  # None: the store looks at MKFLASH_DATA_DIR, then the platform's folder
    settings.fresh = args.fresh
    settings.no_cache = args.no_cache
    settings.session = args.session.strip() if args.session and args.session.strip() else None

    if settings.demo:
        if settings.input:
            raise UsageError("--demo uses the bundled sample text; give either a file or --demo, not both.")
        settings.provider = args.provider or "offline"
        settings.provider_reason = "--demo" if settings.provider == "offline" else ""
        settings.chunk_tokens = args.chunk_tokens or DEMO_CHUNK_TOKENS
        default_overlap = min(DEMO_OVERLAP_TOKENS, settings.chunk_tokens // 8)
        settings.overlap_tokens = default_overlap if args.overlap_tokens is None else args.overlap_tokens
    else:
        settings.chunk_tokens = args.chunk_tokens or DEFAULT_CHUNK_TOKENS
        default_overlap = min(DEFAULT_OVERLAP_TOKENS, settings.chunk_tokens // 8)
        settings.overlap_tokens = default_overlap if args.overlap_tokens is None else args.overlap_tokens
        if args.provider:
            settings.provider = args.provider
            settings.provider_reason = "--provider"
        elif settings.api_key or settings.base_url:
            settings.provider = "openai"
            settings.provider_reason = "base URL set" if settings.base_url else f"key from {settings.key_source}"
        else:
            settings.provider = "offline"
            settings.provider_reason = "no OPENAI_API_KEY or --base-url set"
    if settings.provider == "openai" and not (settings.api_key or settings.base_url):
        raise UsageError("--provider openai needs an API key (OPENAI_API_KEY or --api-key) or a --base-url.")
    if settings.overlap_tokens > settings.chunk_tokens // 2:
        raise UsageError(
            f"--overlap-tokens ({settings.overlap_tokens}) must be at most half of "
            f"--chunk-tokens ({settings.chunk_tokens})."
        )
    if settings.chunk_tokens < 64:
        raise UsageError("--chunk-tokens must be at least 64.")
    return settings
