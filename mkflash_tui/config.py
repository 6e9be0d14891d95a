"""Settings for a run and the argument parser both faces share.

Precedence: flags > environment > ``--profile`` (config file) > the app's remembered choices (the app only) >
the provider preset's defaults > built-in defaults.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from .config_file import ConfigError, load_config
from .core.ankiconnect import DEFAULT_URL as ANKICONNECT_DEFAULT_URL
from .core.chunking import DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP_TOKENS
from .core.models import DEFAULT_CONCURRENCY
from .core.prompts import DEFAULT_STYLE, STYLES
from .core.providers.openai_compat import DEFAULT_TIMEOUT, IDLE_FLOOR
from .core.providers.presets import PRESETS, Preset

DEFAULT_MODEL = "gpt-4o-mini"
DEMO_CHUNK_TOKENS = 220  # the demo text is short; smaller chunks show the parallel flow
DEMO_OVERLAP_TOKENS = 20
CONFIRM_ABOVE_USD = 0.50  # headless runs estimated above this ask first (or need --yes / --max-cost)
MAX_INSTRUCTIONS_BYTES = 20_000  # an --instructions-file longer than this is surely the wrong file
# Settings that belong to one provider: a profile's (or the remembered) ones apply only with that provider.
PROVIDER_KEYS = ("base_url", "model", "api_key_env", "concurrency")
REMEMBERED = "your last choice in the app"


class UsageError(Exception):
    """A bad flag or combination of flags; one sentence for the user (exit 2)."""


@dataclass(slots=True)
class Settings:
    input: str | None = None
    demo: bool = False
    output: Path | None = None
    deck: str | None = None
    provider: str = "offline"  # the kind: "openai" (any OpenAI-compatible server) or "offline"
    preset: str = "offline"  # the server by name (core.providers.presets): openai, ollama, openrouter, ...
    provider_reason: str = ""
    model: str = DEFAULT_MODEL
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    key_source: str = ""
    concurrency: int = DEFAULT_CONCURRENCY
    concurrency_explicit: bool = False  # given by --concurrency or a profile: the server's slots do not change it
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
    language: str | None = None  # cards in this language whatever the source's (None: the source's own)
    style: str = DEFAULT_STYLE
    profile: str | None = None  # the config file's profile these settings came from
    theme: str | None = None  # the app's theme, as remembered
    config_warning: str = ""  # why the config file was not used, for the face to say once
    notice: str = ""  # a remembered choice that could not be used this time, for the app to say once
    remembered: list[str] = field(default_factory=list)  # settings taken from the app's remembered choices
    anki_url: str = ""  # AnkiConnect's address (ANKICONNECT_URL, else its default)
    anki_key: str | None = field(default=None, repr=False)  # ANKICONNECT_KEY; never written anywhere
    to_anki: bool = False  # headless: push the kept cards to Anki (--to-anki)
    prune: bool = False
    readd: bool = False
    timeline: Path | None = None  # headless --timeline FILE: the run's calls drawn on a time axis (.svg, .html)
    against: Path | None = None  # --against FILE: the collection or package whose notes new cards are compared with
    skip_known: bool = False  # leave out the cards the user's collection has already
    batch: bool = False  # headless --batch: the chunks go through the provider's batch engine (core.batch)
    batch_token_limit: int | None = None
    batch_poll: float | None = None  # seconds before a batch is first asked about (None: core.batch's default)

    @property
    def online(self) -> bool:
        return self.provider == "openai"

    def describe_provider(self) -> str:
        if not self.online:
            return (
                f"the offline generator ({self.provider_reason})" if self.provider_reason else "the offline generator"
            )
        return self.server() + (f" ({self.provider_reason})" if self.provider_reason else "")

    def server(self) -> str:
        """The model and where it runs, e.g. "ollama: llama3.2 at http://localhost:11434/v1"."""
        name = f"{self.preset}: " if self.preset not in ("openai", "offline") else ""
        return f"{name}{self.model} at {self.base_url or 'api.openai.com'}"

    def ignored_offline(self) -> list[str]:
        """The settings the offline generator does not follow (it cards the source as written)."""
        if self.online:
            return []
        return [name for name, on in (("--language", self.language), ("--style", self.style != DEFAULT_STYLE),
                                      ("instructions", self.instructions)) if on]  # fmt: skip


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
        choices=tuple(PRESETS),
        metavar="NAME",
        help="the server by name: " + ", ".join(PRESETS) + " (default: openai when OPENAI_API_KEY or a base URL "
        "is set, else offline); --base-url overrides its address",
    )
    parser.add_argument("--profile", metavar="NAME", help="use a [profiles.NAME] table of the config file")
    parser.add_argument("--model", help=f"model name (default: the provider's; {DEFAULT_MODEL} for openai)")
    parser.add_argument(
        "--base-url", help="OpenAI-compatible server, e.g. http://localhost:11434/v1 (env OPENAI_BASE_URL)"
    )
    parser.add_argument("--api-key", help="API key (env OPENAI_API_KEY); never written anywhere")
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        help=f"calls in flight (default: the provider's; {DEFAULT_CONCURRENCY} for openai, 4 for local servers)",
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
    parser.add_argument("--instructions", help="extra instructions added to the card prompt")
    parser.add_argument("--instructions-file", type=Path, metavar="FILE",
                        help="extra instructions for the card prompt, read from a file")  # fmt: skip
    parser.add_argument("--language", metavar="LANG",
                        help="write the cards in this language (default: the source's own)")  # fmt: skip
    parser.add_argument("--style", choices=tuple(STYLES),
                        help="concepts (default), definitions, exam (apply, not recall) or vocabulary (term and "
                        "meaning with an example, for language learners)")  # fmt: skip
    parser.add_argument(
        "--timeout",
        type=_positive_float,
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
    parser.add_argument("--against", type=Path, metavar="FILE", help="compare the cards with the notes of this Anki "
                        "collection or .apkg (default: the Anki behind AnkiConnect, when it answers)")  # fmt: skip
    parser.add_argument("--skip-known", action="store_true", help="leave out cards the collection has already")
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


def settings_from_args(args: argparse.Namespace, environ: dict[str, str] | None = None, *,
                       remembered: bool = False) -> Settings:  # fmt: skip
    """Build Settings: flags, then the environment, then ``--profile``, then (``remembered``: the app) the app's
    remembered choices, then the provider's defaults. Raises UsageError."""
    env = os.environ if environ is None else environ
    config = load_config(env)
    settings = Settings()
    settings.config_warning = config.error or ""
    layers: list[tuple[str, dict]] = []
    if getattr(args, "profile", None):
        try:
            layers.append((f"profile {args.profile}", config.profile(args.profile)))
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
        settings.profile = args.profile
    if remembered and not args.demo:
        layers.append((REMEMBERED, config.app))
    settings.theme = config.app.get("theme") if remembered else None

    given = getattr(args, "input", None)
    if isinstance(given, list):  # the app's and generate's inputs: one document here (a shelf is read apart)
        given = given[0] if len(given) == 1 else None
    settings.input = given or None
    settings.demo = bool(args.demo)
    settings.output = args.output
    settings.deck = args.deck
    settings.yes = args.yes
    settings.force = args.force
    settings.json = bool(getattr(args, "json", False))
    settings.dry_run = bool(getattr(args, "dry_run", False))
    settings.format = args.format
    settings.reverse = args.reverse
    settings.subdecks = args.subdecks
    settings.data_dir = args.data_dir  # None: the store looks at MKFLASH_DATA_DIR, then the platform's folder
    settings.fresh = args.fresh
    settings.no_cache = args.no_cache
    settings.session = args.session.strip() if args.session and args.session.strip() else None
    settings.max_cost = args.max_cost
    settings.context_tokens = args.context_tokens
    to_anki = getattr(args, "to_anki", None)
    settings.to_anki = to_anki is not None
    settings.anki_url = (to_anki if isinstance(to_anki, str) and to_anki else None) or env.get(
        "ANKICONNECT_URL") or ANKICONNECT_DEFAULT_URL  # fmt: skip
    settings.anki_key = env.get("ANKICONNECT_KEY") or None
    settings.against = args.against.expanduser() if args.against else None
    timeline = getattr(args, "timeline", None)
    if timeline is not None and timeline.suffix.lower() not in (".svg", ".html"):
        raise UsageError(f"--timeline writes an .svg or an .html file, not {timeline.name!r}.")
    settings.timeline = timeline
    settings.skip_known = args.skip_known
    settings.prune = bool(getattr(args, "prune", False))
    settings.readd = bool(getattr(args, "readd", False))
    if (settings.prune or settings.readd) and not settings.to_anki:
        raise UsageError("--prune and --readd go with --to-anki.")

    def layered(key: str, provider: str | None = None):
        """(value, where) of ``key`` from the first layer that sets it (for provider keys: a layer of
        ``provider``). What comes from the app's remembered choices is noted, for the app to say."""
        for where, values in layers:
            if provider is not None and key in PROVIDER_KEYS and values.get("provider", provider) != provider:
                continue
            if values.get(key) is not None:
                if where == REMEMBERED and key not in settings.remembered:
                    settings.remembered.append(key)
                return values[key], where
        return None, ""

    # The provider: a flag, else a profile or the remembered choice, else what the environment implies.
    env_key = args.api_key or env.get("OPENAI_API_KEY")
    env_url = args.base_url or env.get("OPENAI_BASE_URL")
    if settings.demo:
        if settings.input:
            raise UsageError("--demo uses the bundled sample text; give either a file or --demo, not both.")
        name, reason = args.provider or "offline", "--demo" if not args.provider else "--provider"
    elif args.provider:
        name, reason = args.provider, "--provider"
    else:
        name, where = layered("provider")
        reason = where
        if where == REMEMBERED and (args.base_url or args.api_key):
            # A server or a key given on the command line beats the provider the app remembered.
            name = None
            settings.remembered = [k for k in settings.remembered if k != "provider"]
        if name is None:
            if env_key or env_url:
                name = "openai"
                reason = "base URL set" if env_url else f"key from {'--api-key' if args.api_key else 'OPENAI_API_KEY'}"
            else:
                name, reason = "offline", "no OPENAI_API_KEY or --base-url set"
        elif name not in PRESETS:
            raise UsageError(f"unknown provider {name!r} in the config file ({reason}); known: {', '.join(PRESETS)}.")
    preset: Preset = PRESETS[name]
    settings.preset = name
    settings.provider = "offline" if name == "offline" else "openai"
    settings.provider_reason = reason
    if not settings.demo or args.provider:
        try:
            _resolve_server(settings, args, env, preset, layered)
        except UsageError as exc:
            if reason != REMEMBERED:
                raise
            # The app's last provider needs a key this launch does not have (keys are never remembered): start
            # from what the environment gives, and say so; Settings offers the provider again.
            fallback = "openai" if env_key or env_url else "offline"
            settings.preset, settings.provider = fallback, "openai" if fallback == "openai" else "offline"
            settings.provider_reason = "environment" if fallback == "openai" else "no key for your last provider"
            settings.api_key, settings.key_source = None, ""
            settings.notice = f"Your last provider, {name}, is not used this time: {exc}"
            _resolve_server(settings, args, env, PRESETS[fallback], lambda key, provider=None: (None, ""))
    else:
        settings.model = args.model or DEFAULT_MODEL
        settings.concurrency = args.concurrency or DEFAULT_CONCURRENCY

    settings.timeout = args.timeout or layered("timeout")[0] or DEFAULT_TIMEOUT
    settings.cards = args.cards or layered("cards")[0]
    settings.tags = list(args.tags) or list(layered("tags")[0] or [])
    settings.drop_flagged = bool(args.drop_flagged or layered("drop_flagged")[0])
    settings.instructions = _instructions(args, layered("instructions")[0])
    settings.language = (args.language or layered("language")[0] or "").strip() or None
    style = args.style or layered("style")[0] or DEFAULT_STYLE
    if style not in STYLES:
        raise UsageError(f"unknown style {style!r}; known: {', '.join(STYLES)}.")
    settings.style = style
    if settings.language and len(settings.language) > 40:
        raise UsageError("--language takes a language's name, like German or pt-BR.")

    demo = settings.demo
    chunk_default = DEMO_CHUNK_TOKENS if demo else (layered("chunk_tokens")[0] or DEFAULT_CHUNK_TOKENS)
    settings.chunk_tokens = args.chunk_tokens or chunk_default
    default_overlap = min(DEMO_OVERLAP_TOKENS if demo else DEFAULT_OVERLAP_TOKENS, settings.chunk_tokens // 8)
    settings.overlap_tokens = default_overlap if args.overlap_tokens is None else args.overlap_tokens
    if settings.overlap_tokens > settings.chunk_tokens // 2:
        raise UsageError(
            f"--overlap-tokens ({settings.overlap_tokens}) must be at most half of "
            f"--chunk-tokens ({settings.chunk_tokens})."
        )
    if settings.chunk_tokens < 64:
        raise UsageError("--chunk-tokens must be at least 64.")
    _batch_settings(settings, args)
    return settings


BATCH_PRESETS = ("openai", "groq")  # the providers whose servers have OpenAI's batch engine (core.batch.LIMITS)


def _batch_settings(settings: Settings, args: argparse.Namespace) -> None:
    settings.batch = bool(getattr(args, "batch", False))
    settings.batch_token_limit = getattr(args, "batch_token_limit", None)
    settings.batch_poll = getattr(args, "batch_poll", None)
    if not settings.batch:
        if settings.batch_token_limit is not None:
            raise UsageError("--batch-token-limit goes with --batch.")
        return  # --batch-poll still applies to a session's batches taken up (core.batch)
    if not settings.online:
        raise UsageError("--batch needs a provider with a batch engine (OpenAI or Groq); the offline generator "
                         "answers at once.")  # fmt: skip
    if settings.preset not in BATCH_PRESETS:
        raise UsageError(f"--batch is offered for {' and '.join(BATCH_PRESETS)} (their batch engines); "
                         f"{settings.preset} has none.")  # fmt: skip


def _resolve_server(settings: Settings, args: argparse.Namespace, env, preset: Preset, layered) -> None:
    """Base URL, model, key and concurrency for ``preset``; raises UsageError when one it needs is missing."""
    name = preset.name
    if name == "offline":
        settings.model = args.model or DEFAULT_MODEL
        settings.concurrency = args.concurrency or DEFAULT_CONCURRENCY
        return
    env_url = env.get("OPENAI_BASE_URL") if name == "openai" else None
    settings.base_url = args.base_url or env_url or layered("base_url", name)[0] or preset.base_url
    model = args.model or layered("model", name)[0] or preset.model
    if not model:
        raise UsageError(f"--provider {name} needs --model: the name the server serves (its /v1/models lists them).")
    settings.model = model
    settings.concurrency = args.concurrency or layered("concurrency", name)[0] or preset.concurrency
    settings.concurrency_explicit = bool(args.concurrency or layered("concurrency", name)[0])
    key_env = layered("api_key_env", name)[0] or preset.key_env
    if args.api_key:
        settings.api_key, settings.key_source = args.api_key, "--api-key"
    elif key_env and env.get(key_env):
        settings.api_key, settings.key_source = env[key_env], key_env
    if name == "openai":
        if not (settings.api_key or settings.base_url):
            raise UsageError("--provider openai needs an API key (OPENAI_API_KEY or --api-key) or a --base-url.")
    elif preset.needs_key and not settings.api_key and not args.base_url:
        named = f"set {key_env}" if key_env else "name it with api_key_env in your profile"
        raise UsageError(f"--provider {name} needs an API key: {named} (or pass --api-key).")


def _instructions(args: argparse.Namespace, layered_value: str | None) -> str:
    """--instructions and --instructions-file together (both when both are given), else the profile's."""
    parts = [args.instructions or ""]
    if args.instructions_file is not None:
        path = args.instructions_file
        try:
            with open(path.expanduser(), "rb") as handle:
                data = handle.read(MAX_INSTRUCTIONS_BYTES + 1)
        except FileNotFoundError:
            raise UsageError(f"--instructions-file {path}: no such file.") from None
        except IsADirectoryError:
            raise UsageError(f"--instructions-file {path} is a folder, not a file.") from None
        except OSError as exc:
            raise UsageError(f"--instructions-file {path} cannot be read ({exc.strerror or exc}).") from None
        if len(data) > MAX_INSTRUCTIONS_BYTES:
            raise UsageError(f"--instructions-file {path} is over {MAX_INSTRUCTIONS_BYTES // 1000} KB; "
                             "instructions are a few sentences.")  # fmt: skip
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise UsageError(f"--instructions-file {path} is not UTF-8 text.") from None
        if "\x00" in text:
            raise UsageError(f"--instructions-file {path} is not a text file.")
        parts.append(text.strip())
    joined = "\n\n".join(p for p in parts if p.strip())
    return joined if joined else (layered_value or "")
