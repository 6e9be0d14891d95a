"""Entry point: parse flags, build Settings, start the TUI or a headless run.

mkflash-tui [FILE] [flags]              the Textual app
mkflash-tui generate [FILE|-] [flags]   headless: write a deck and exit
mkflash-tui regenerate SESSION --card ID | --chunk N [--note TEXT]   make cards again
mkflash-tui serve [--host 127.0.0.1] [--port 8000]   the app in a web browser
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path
from typing import NoReturn

from . import __version__
from .config import UsageError, _positive_float, _positive_int, add_run_arguments, settings_from_args

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _preload_openai() -> None:
    # The SDK takes ~0.7 s to import and its TLS context 0.1 s to build; start both while the input is read.
    def load() -> None:
        from .core.providers.openai_compat import prepare_transport

        try:
            prepare_transport()
        except Exception:
            pass

    threading.Thread(target=load, name="preload-openai", daemon=True).start()


class _Parser(argparse.ArgumentParser):
    """Bad flags get one sentence, not a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"mkflash-tui: {message} (see {self.prog} --help).\n")


def generate_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mkflash-tui generate",
        description="Turn a text, Markdown, HTML, PDF, EPUB or subtitle file, a web page (https://…) or stdin (-) "
        "into an Anki deck, headless.",
        epilog="Exit codes: 0 all chunks done, 1 some chunks failed or the session store could not be written "
        "(deck written with the rest), 2 bad usage or input (or nothing to make cards from), 3 the server refused "
        "the run, or Anki could not be reached (--to-anki), 130 interrupted (what finished is written).",
    )
    parser.add_argument("input", nargs="*", help="file to read, or - for stdin; several files, folders (read "
                        "recursively) or web addresses make one deck with a subdeck per document")  # fmt: skip
    add_run_arguments(parser)
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                        help="with folders: leave out files and folders matching GLOB (repeatable)")  # fmt: skip
    parser.add_argument("--from-list", metavar="FILE", help="read the paths and web addresses listed in FILE, "
                        "one a line")  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="show chunks, tokens and estimated cost; send nothing")
    parser.add_argument("--json", action="store_true", help="print one JSON report on stdout")
    parser.add_argument("--timeline", type=Path, metavar="FILE", help="draw every call of the run on a time axis, "
                        "in FILE (.svg, or .html for a page of its own)")  # fmt: skip
    parser.add_argument(
        "--to-anki", nargs="?", const="", metavar="URL",
        help="send the cards to a running Anki through AnkiConnect (default address: ANKICONNECT_URL, else "
        "http://127.0.0.1:8765; ANKICONNECT_KEY for its API key); writes no file unless -o is given too",
    )  # fmt: skip
    parser.add_argument("--prune", action="store_true", help="with --to-anki: delete stale notes instead of "
                        "tagging and suspending them")  # fmt: skip
    parser.add_argument("--readd", action="store_true", help="with --to-anki: add notes deleted in Anki again")
    parser.add_argument("--batch", action="store_true", help="send the chunks through the provider's batch engine "
                        "(OpenAI, Groq): half the price, answers within 24 h; Ctrl+C only detaches, and running "
                        "the same command again collects the answers")  # fmt: skip
    parser.add_argument("--batch-token-limit", type=_positive_int, metavar="N", help="with --batch: at most N "
                        "tokens enqueued per batch (your organization's limit for the model; no endpoint says it)")
    parser.add_argument("--batch-poll", type=_positive_float, metavar="S", help="with --batch: seconds before the "
                        "first look at a batch (default 5; each later look waits half as long again, up to 60)")
    return parser


def app_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mkflash-tui",
        description="Turn any text into an Anki deck with an LLM, fast. "
        "Subcommands: 'generate' (headless; see mkflash-tui generate --help), 'sessions' (list, rm ID), "
        "'doctor' (check the server), 'config' (the config file and the settings in use), 'regenerate' (make a card "
        "or a chunk again in a session), 'serve' (the app in a web browser).",
    )
    parser.add_argument("input", nargs="*", help="file to open (or pick one in the app); several files or folders "
                        "make one job with a subdeck per document")  # fmt: skip
    add_run_arguments(parser)
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                        help="with folders: leave out files and folders matching GLOB (repeatable)")  # fmt: skip
    parser.add_argument("--from-list", metavar="FILE", help="open the paths and web addresses listed in FILE, "
                        "one a line")  # fmt: skip
    parser.add_argument("--version", action="version", version=f"mkflash-tui {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["generate"]:
        return generate_main(argv[1:])
    if argv[:1] == ["sessions"]:
        return sessions_main(argv[1:])
    if argv[:1] == ["doctor"]:
        return doctor_main(argv[1:])
    if argv[:1] == ["config"]:
        return config_main(argv[1:])
    if argv[:1] == ["regenerate"]:
        return regenerate_main(argv[1:])
    if argv[:1] == ["serve"]:
        from .serve import serve_main

        return serve_main(argv[1:], _fail)
    return app_main(argv)


def regenerate_main(argv: list[str]) -> int:
    """``mkflash-tui regenerate SESSION --card ID | --chunk N [--note TEXT] [-o FILE]``."""
    from .remake_headless import add_arguments, regenerate

    parser = _Parser(prog="mkflash-tui regenerate", description="Make one card, or one chunk's cards, again in "
                     "a stored session, with an optional note to the model; prints what changed. The new cards "
                     "keep the GUIDs of those they replace, so a deck exported again updates the notes.",
                     epilog="Exit codes: 0 made again, 1 the call failed (the cards stay as they were), 2 bad "
                     "usage, 3 the server refused.")  # fmt: skip
    add_arguments(parser)
    args = parser.parse_args(argv)
    flags = [*(["--api-key", args.api_key] if args.api_key else [])]
    try:
        base = settings_from_args(generate_parser().parse_args(flags))
    except UsageError as exc:
        return _fail(str(exc))
    return regenerate(args, base)


def sessions_main(argv: list[str]) -> int:
    """``mkflash-tui sessions`` lists past sessions (a job over many documents with its documents' sessions
    under it); ``mkflash-tui sessions rm ID`` removes one (a job: with its sessions)."""
    from .config import add_store_arguments
    from .core.store import StoreError, open_store

    parser = _Parser(prog="mkflash-tui sessions", description="List past sessions, remove one (rm ID), or cancel "
                     "a session's batches at the provider (cancel ID).")  # fmt: skip
    parser.add_argument("action", nargs="?", choices=("list", "rm", "cancel"), default="list")
    parser.add_argument("id", nargs="?", help="the session (or job) to remove, or whose batches to cancel")
    parser.add_argument("--api-key", help="with cancel: the provider's key (default: its environment variable)")
    add_store_arguments(parser)
    args = parser.parse_args(argv)
    try:
        store = open_store(args.data_dir)
    except StoreError as exc:
        return _fail(str(exc))
    if args.action == "cancel":
        if not args.id:
            return _fail("say whose batches to cancel: mkflash-tui sessions cancel ID.")
        return cancel_batches(store, args.id, args.api_key)
    if args.action == "rm":
        if not args.id:
            return _fail("say which session to remove: mkflash-tui sessions rm ID.")
        if args.id.startswith("j") and store.remove_job(args.id):
            print(f"removed job {args.id} and its documents' sessions")
            return 0
        if not store.remove_session(args.id):
            return _fail(f"there is no session {args.id}; mkflash-tui sessions lists them.")
        print(f"removed session {args.id}")
        return 0
    sessions = store.sessions()
    if not sessions:
        print(f"no sessions yet in {store.folder}")
        return 0
    by_id = {s.id: s for s in sessions}
    jobs = store.jobs()
    in_jobs = {sid for job in jobs for sid in job.sessions}
    print(f"{'ID':<9} {'DATE':<16} {'CHUNKS':>9} {'CARDS':>6}  {'EXPORTED':<9} TITLE")
    for job in jobs:
        members = [by_id[sid] for sid in job.sessions if sid in by_id]
        done, total = sum(s.chunks_done for s in members), sum(s.chunks_total for s in members)
        exported = "yes" if members and all(s.exported_to for s in members) else "no"
        print(f"{job.id:<9} {_date(job.updated):<16} {f'{done}/{total}':>9} {sum(s.cards for s in members):>6}  "
              f"{exported:<9} {job.deck} (job: {len(members)} documents, {', '.join(job.inputs)})")  # fmt: skip
        for s in members:
            print("  " + _session_line(s))
        _batch_lines(store, job.id, "  ")
    for s in sessions:
        if s.id not in in_jobs:
            print(_session_line(s))
            _batch_lines(store, s.id, "")
    return 0


def _batch_lines(store, job_id: str, indent: str) -> None:
    """A job's batches still running at the provider, as last seen (``sessions`` never waits for a server)."""
    for record in store.batches(job_id):
        if record.final or not record.batch_id:
            continue
        counts = record.counts
        done = f"{counts.get('completed', 0):,} of {counts.get('total', len(record.lines)):,} done"
        print(f"{indent}  batch {record.batch_id}: {record.status.replace('_', ' ')}, {done} (as last seen "
              f"{_date(record.updated)}; run the same command again to collect, or cancel {job_id})")  # fmt: skip


def cancel_batches(store, job_id: str, api_key: str | None) -> int:
    """``sessions cancel ID``: cancel the batches of ``ID`` still running at the provider."""
    import asyncio

    from .core.batch import cancel_open_batches
    from .core.providers.base import ProviderError

    records = [r for r in store.batches(job_id) if r.batch_id and not r.final]
    if not records:
        known = store.batches(job_id) or any(s.id == job_id for s in store.sessions())
        return _fail(f"{job_id} has no batches running at a provider." if known else
                     f"there is no session {job_id}; mkflash-tui sessions lists them.")  # fmt: skip
    try:
        said = asyncio.run(cancel_open_batches(store, records, api_key, os.environ))
    except ProviderError as exc:  # the provider's refusal (a key, the network), in its one sentence
        return _fail(f"could not cancel: {exc}")
    for line in said:
        print(line)
    return 0


def _date(stamp: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")


def _session_line(s) -> str:
    chunks = f"{s.chunks_done}/{s.chunks_total}"
    exported = "yes" if s.exported_to else "no"
    return f"{s.id:<9} {_date(s.updated):<16} {chunks:>9} {s.cards:>6}  {exported:<9} {s.title} ({s.source_text})"


CONFIG_KEYS = ("preset", "model", "base_url", "concurrency", "chunk_tokens", "cards", "language", "style",
               "instructions", "timeout", "drop_flagged", "tags")  # fmt: skip


def config_main(argv: list[str]) -> int:
    """``mkflash-tui config``: where the config file is, and the settings each face would use now."""
    from .config_file import config_path

    parser = _Parser(prog="mkflash-tui config", description="Show the config file's path and the settings that "
                     "'generate' and the app would use (flags as for generate, --profile included).")  # fmt: skip
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    try:
        headless = settings_from_args(args)
        app = settings_from_args(args, remembered=True)
    except UsageError as exc:
        return _fail(str(exc))
    path = config_path()
    print(f"config file: {path}" + ("" if path.exists() else " (none yet)"))
    if headless.profile:
        print(f"profile: {headless.profile}")
    if headless.config_warning:
        print(f"problem: {headless.config_warning}")
    print(f"{'setting':<14} {'generate':<34} app")
    for key in CONFIG_KEYS:
        shown = [_setting(getattr(headless, key)), _setting(getattr(app, key))]
        note = "  (remembered from the app)" if key in app.remembered or (key == "preset" and "provider" in
                                                                          app.remembered) else ""  # fmt: skip
        print(f"{key:<14} {shown[0]:<34} {shown[1]}{note}")
    print(f"provider       {headless.describe_provider()}")
    print("generate never uses the app's remembered choices ([app] in the file); the app does, and its Settings "
          "change them.")
    return 0


def _setting(value: object) -> str:
    if value is None or value == "" or value == []:
        return "-"
    text = ", ".join(value) if isinstance(value, list) else str(value)
    return text if len(text) <= 32 else text[:31] + "…"


def doctor_main(argv: list[str]) -> int:
    """``mkflash-tui doctor``: what the server a run would use is, and whether a run would work (exit 0 or 3)."""
    parser = _Parser(prog="mkflash-tui doctor", description="Check the server a run would use: what it is, its "
                     "models, context per request, slots, structured output, streamed usage, one small call's "
                     "latency and the key. Exit 0 when a run would work, 3 when it would not.")  # fmt: skip
    add_run_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON report on stdout")
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except UsageError as exc:
        return _fail(str(exc))
    from .doctor import run_doctor

    return run_doctor(settings, as_json=args.json, stdout=sys.stdout, stderr=sys.stderr)


def _fail(message: str) -> int:
    sys.stderr.write(f"mkflash-tui: {message}\n")
    return EXIT_USAGE


def generate_main(argv: list[str]) -> int:
    args = generate_parser().parse_args(argv)
    names: list[str] = args.input
    if args.to_anki and "://" not in args.to_anki:
        if names:
            return _fail(f"--to-anki takes an address like http://127.0.0.1:8765, not {args.to_anki!r}.")
        names, args.to_anki = [args.to_anki], ""  # "--to-anki notes.md": the file, and the default address
    if not names and not args.demo and not args.from_list:
        return _fail("give a file to read (or - for stdin, or --demo); see mkflash-tui generate --help.")
    from .shelf import is_shelf

    if is_shelf(names, args.from_list):
        return shelf_main(args, names)
    args.input = names[0] if names else None
    settings = _generate_settings(args)
    if isinstance(settings, int):
        return settings
    from concurrent.futures import ThreadPoolExecutor

    from .core.chunking import ChunkingError
    from .core.sources import SourceError
    from .headless import run_headless
    from .job import discover_server, load_document, prepare

    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            server = pool.submit(discover_server, settings)  # while the input is read
            document = load_document(settings)
            job = prepare(settings, document, server=server.result())
    except (SourceError, ChunkingError) as exc:
        from .headless import stop_early

        return stop_early(None, str(exc), EXIT_USAGE, sys.stdout, sys.stderr, as_json=settings.json)
    except KeyboardInterrupt:
        sys.stderr.write("mkflash-tui: interrupted while reading the input; nothing was sent.\n")
        return _exit_now(EXIT_INTERRUPTED)
    return _run_then_exit(run_headless, job)


def _generate_settings(args: argparse.Namespace):
    """``generate``'s settings, with what they warn of said (or the usage error's exit code); the SDK starts
    loading in the background when calls will be made."""
    try:
        settings = settings_from_args(args)
    except UsageError as exc:
        return _fail(str(exc))
    if settings.config_warning:
        sys.stderr.write(f"mkflash-tui: {settings.config_warning}\n")
    if settings.ignored_offline():
        sys.stderr.write(f"mkflash-tui: the offline generator ignores {' and '.join(settings.ignored_offline())}: "
                         "it cards the text as written, in its own language.\n")  # fmt: skip
    if settings.online and not settings.dry_run:
        _preload_openai()
    return settings


def shelf_main(args: argparse.Namespace, names: list[str]) -> int:
    """``generate`` over many documents: gather them, say how many, read them, run them as one job."""
    if "-" in names:
        return _fail("stdin (-) is one document; give it alone, or give files and folders.")
    if args.demo:
        return _fail("--demo uses the bundled sample text; give either files or --demo, not both.")
    args.input = None
    settings = _generate_settings(args)
    if isinstance(settings, int):
        return settings
    from . import format as fmt
    from .core.sources import SourceError
    from .core.sources.gather import gather
    from .job import discover_server
    from .shelf import prepare_shelf
    from .shelf_headless import run_shelf_headless

    try:
        gathered = gather(names, exclude=args.exclude, from_list=args.from_list)
    except SourceError as exc:
        return _fail(str(exc))
    for note in gathered.notes:
        sys.stderr.write(f"mkflash-tui: {note}\n")
    if not gathered.inputs:
        for _, reason in gathered.skipped:
            sys.stderr.write(f"mkflash-tui: skipped: {reason}\n")
        where = ", ".join(str(f) for f in gathered.folders) or "the list"
        return _fail(f"{where}: no documents to read there (text, Markdown, reStructuredText, HTML, PDF, EPUB or "
                     "subtitles).")  # fmt: skip
    sys.stderr.write(f"mkflash-tui: {fmt.plural(len(gathered.inputs), 'document')} to read\n")
    inputs = names + ([f"list:{args.from_list}"] if args.from_list else [])
    if settings.online and not settings.dry_run and settings.yes and settings.max_cost is None and not settings.batch:
        # Nothing to ask before the first call: each document is sent as soon as it is read.
        from .shelf import Shelf
        from .shelf_headless import run_shelf_streaming

        shelf = Shelf(settings, inputs, [], list(gathered.skipped))
        return _run_then_exit(run_shelf_streaming, shelf, gathered, server=discover_server(settings))
    try:
        shelf = prepare_shelf(settings, gathered, inputs, server=discover_server(settings))
    except KeyboardInterrupt:
        sys.stderr.write("mkflash-tui: interrupted while reading the inputs; nothing was sent.\n")
        return _exit_now(EXIT_INTERRUPTED)
    return _run_then_exit(run_shelf_headless, shelf)


def _run_then_exit(run, *args, **kwargs) -> NoReturn:
    """``run(*args, **kwargs)``'s exit code (130 on Ctrl+C before its own handler is in place), then leave."""
    try:
        code = run(*args, **kwargs)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    _exit_now(code)


def _exit_now(code: int) -> NoReturn:
    """Leave without the interpreter's teardown (~0.25 s with the SDK loaded); everything is written by now."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def app_main(argv: list[str]) -> int:
    args = app_parser().parse_args(argv)
    names = list(args.input)
    if "-" in names:
        return _fail("the app reads keys from the terminal; for stdin use: mkflash-tui generate - -o deck.apkg")
    from .shelf import is_shelf

    shelf = is_shelf(names, args.from_list)
    if shelf and args.demo:
        return _fail("--demo uses the bundled sample text; give either files or --demo, not both.")
    args.input = None if shelf or not names else names[0]
    try:
        settings = settings_from_args(args, remembered=True)
    except UsageError as exc:
        return _fail(str(exc))
    gathered = None
    if shelf:
        from .core.sources import SourceError
        from .core.sources.gather import gather

        try:
            gathered = gather(names, exclude=args.exclude, from_list=args.from_list)
        except SourceError as exc:
            return _fail(str(exc))
        if not gathered.inputs:
            where = ", ".join(str(f) for f in gathered.folders) or "the list"
            return _fail(f"{where}: no documents to read there (text, Markdown, reStructuredText, HTML, PDF, EPUB "
                         "or subtitles).")  # fmt: skip
        names += [f"list:{args.from_list}"] if args.from_list else []
    elif settings.input and not settings.input.lower().startswith(("http://", "https://")):
        from .core.sources import SourceError, check_readable

        try:
            check_readable(settings.input)
        except SourceError as exc:
            return _fail(str(exc))
    if not (sys.stdin.isatty() and sys.stdout.isatty()) and not os.environ.get("TEXTUAL_DRIVER"):  # serve: a web driver
        return _fail("the app needs a terminal; for scripts use: mkflash-tui generate FILE -o deck.apkg")
    from .tui.app import run_app

    return run_app(settings, shelf=(names, gathered) if gathered is not None else None)
