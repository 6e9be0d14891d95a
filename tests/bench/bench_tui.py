"""Benchmark: the Textual app under hundreds of streaming chunks (not part of the test suite).

Prints, from one run:
  - event-loop lag while 500 chunk calls stream from the fake server (p50 / p99 / max of how late a 10 ms
    timer fires, sampled from the first chunk start to the last chunk end); target p99 <= 50 ms;
  - event-to-board delay: from a chunk's START or END event to the first repaint of its panel in the new
    state (visible panels, in-process), while 500 chunks stream; target max <= 250 ms;
  - key-to-screen latency measured from outside: the real ``mkflash-tui FILE`` in tmux, 266 chunks streaming
    slowly at concurrency 500; a key is sent with ``tmux send-keys`` and ``tmux capture-pane`` is polled until
    the screen shows its effect (p50 / p90 / max for switching views, and for ``d`` in Review); target
    p90 <= 100 ms; and the same switches with the Timeline (key 3) as the other view, in the same rounds: its
    p90 within 20 ms of the switches with the Timeline hidden;
  - the same from outside on a shelf: 50 documents of 40 chunks (2,000) streaming at concurrency 500 (view
    switches, ↓ to the next document in the list, ``d`` in Review); target p90 <= 100 ms;
  - time from process start to first paint of the real ``mkflash-tui FILE`` in a pseudo-terminal; target
    <= 0.7 s (median of 5).

The fake server runs in its own process so that its work does not count against the app's loop.

    python tests/bench/bench_tui.py [--skip-lag] [--skip-keys] [--skip-shelf] [--skip-paint]
"""

from __future__ import annotations

import asyncio
import os
import pty
import re
import select
import shlex
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench_engine import make_text  # noqa: E402

CHUNKS = 500
KEY_CHUNKS = 266
SERVER = """
import random, sys, time
sys.path.insert(0, {tests!r})
from fake_openai import FakeOpenAI
rng = random.Random(1)
from fake_openai import is_summary
padding = lambda body: 0 if is_summary(body) or rng.random() < {short} else {padding}
server = FakeOpenAI(latency=lambda body: rng.uniform({low}, {high}), chars_per_delta={chars},
                    delta_delay={delta_delay}, stream_padding=padding).start()
print(server.base_url, flush=True)
for line in sys.stdin:  # any line: how many deltas the server has written, and when
    print(server.events_sent, time.perf_counter(), flush=True)
"""


def start_server(low: float = 0.5, high: float = 3.0, delta_delay: float = 0.0, chars: int = 6,
                 padding: int = 0, short: float = 1.0) -> tuple[subprocess.Popen, str]:  # fmt: skip
    """The fake server in its own process; ``padding`` spaces open all but a ``short`` share of card answers."""
    code = SERVER.format(tests=str(HERE.parent), low=low, high=high, delta_delay=delta_delay, chars=chars,
                         padding=padding, short=short)  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def events_sent(server: subprocess.Popen) -> tuple[int, float]:
    """The deltas the server has streamed so far, and the time it said so."""
    server.stdin.write("stats\n")
    server.stdin.flush()
    count, when = server.stdout.readline().split()
    return int(count), float(when)


# Streams as real servers send them: one small event per token (4 characters) at about 100 tokens a second per
# stream, after 3 s (with jitter) of prompt processing. A tenth of the answers are short (cards for Review); the
# others are long enough (40 s of writing) that they still pour while the keys are measured.
REAL_STREAM = {"low": 2.5, "high": 3.5, "delta_delay": 0.01, "chars": 4, "padding": 16_000, "short": 0.1}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def loop_lag(path: Path, base_url: str) -> tuple[list[float], list[float]]:
    """Event-loop lag samples and event-to-board delays (seconds) while every chunk streams."""
    from mkflash_tui.cli import app_parser
    from mkflash_tui.config import settings_from_args
    from mkflash_tui.core.models import ChunkFinished, ChunkStarted, ChunkState
    from mkflash_tui.tui.app import make_app
    from mkflash_tui.tui.widgets.chunk_board import ChunkBoard

    flags = [str(path), "--base-url", base_url, "--api-key", "bench", "--chunk-tokens", "300", "--yes",
             "--concurrency", "512", "--cards", str(CHUNKS * 3)]  # fmt: skip
    app = make_app(settings_from_args(app_parser().parse_args(flags), environ={}))
    lags: list[float] = []
    events: dict[tuple[int, ChunkState], float] = {}  # (chunk index, state) -> when the run reported it
    drawn: dict[tuple[int, ChunkState], float] = {}  # … -> when its panel was first drawn so
    panel_line = ChunkBoard._panel_line

    def traced(self, index: int, line: int, width: int):
        if line == 0:
            key = (index, self.run.status[self.ids[index]].state)
            drawn.setdefault(key, time.perf_counter())
        return panel_line(self, index, line, width)

    ChunkBoard._panel_line = traced
    async with app.run_test(size=(160, 48), headless=True) as pilot:
        while app.run_screen is None:
            await pilot.pause(0.05)
        screen = app.run_screen
        run = screen.run
        assert len(run.chunks) == CHUNKS, len(run.chunks)

        def on_event(event) -> None:
            if isinstance(event, ChunkStarted):
                events.setdefault((event.index, ChunkState.RUNNING), time.perf_counter())
            elif isinstance(event, ChunkFinished):
                events.setdefault((event.index, ChunkState.DONE), time.perf_counter())

        run.subscribe(on_event)
        while not any(s.state is not ChunkState.QUEUED for s in run.status.values()):
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        while not screen.finished:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - before - 0.01)
        print(f"  {CHUNKS} chunks streamed in {time.perf_counter() - started:.1f} s, "
              f"{len(run.cards())} cards, {run.counts()['failed']} failed")  # fmt: skip
        await pilot.pause(0.3)
    ChunkBoard._panel_line = panel_line
    visible = {key for key in events if key in drawn}  # panels on screen when their state changed
    delays = [max(0.0, drawn[key] - events[key]) for key in visible]
    return lags, delays


class Tmux:
    """The real app in a tmux session: keys in with send-keys, the screen out with capture-pane."""

    def __init__(self, command: list[str], cwd: str, env: dict[str, str], size: tuple[int, int] = (160, 48)) -> None:
        self.name = f"mkflash-bench-{os.getpid()}"
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        line = f"cd {shlex.quote(cwd)} && env {exports} {' '.join(shlex.quote(c) for c in command)}"
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", str(size[0]), "-y", str(size[1]), line],
                       check=True)  # fmt: skip

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True).stdout

    def send(self, key: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, key], check=True)

    def wait(self, predicate, timeout: float = 10.0) -> tuple[float, str]:
        """Seconds until ``predicate(screen)`` holds, and that screen."""
        started = time.perf_counter()
        while True:
            text = self.screen()
            if predicate(text):
                return time.perf_counter() - started, text
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"the screen never changed as expected:\n{text}")
            time.sleep(0.005)  # poll, but leave the two cores to the app and the server (resolution ~8 ms)

    def timed_key(self, key: str, predicate, timeout: float = 10.0) -> float:
        started = time.perf_counter()
        self.send(key)
        self.wait(predicate, timeout)
        return time.perf_counter() - started

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def in_review(text: str) -> bool:
    return any("type" in line and "front" in line and "back" in line for line in text.splitlines())


def in_generate(text: str) -> bool:
    return any(marker in text for marker in ("START chunk", "END   chunk", "START summary"))


def in_timeline(text: str) -> bool:
    return "a column" in text and any(line.startswith("seconds ") for line in text.splitlines())


def _detail(text: str) -> list[str]:
    """The detail pane: what stands right of the table's border on each line."""
    return [line.rsplit("│", 1)[1].strip() for line in text.splitlines() if "│" in line]


_TAB = re.compile(r"2 Review \((\d+)\)")
_DONE = re.compile(r"(\d+)/(\d+) chunks")


def _cards_on_tab(text: str) -> int:
    match = _TAB.search(text)
    return int(match.group(1)) if match else 0


def _chunks_done(text: str) -> tuple[int, int]:
    match = _DONE.search(text)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def key_latency(
    folder: Path, base_url: str, server: subprocess.Popen
) -> tuple[list[float], list[float], list[float], tuple[int, int], float]:
    """Key-to-screen seconds while chunks stream (tmux): view switches between Review and Generate, the same
    between Review and the Timeline (in alternate rounds, so both meet the same part of the run), and ``d`` in
    Review; the chunks done at the end, and the deltas a second the server streamed while keys were measured."""
    path = folder / "keys.md"
    path.write_text(make_text(KEY_CHUNKS))
    env = {"MKFLASH_DATA_DIR": tempfile.mkdtemp(prefix="mkflash-bench-"), "OPENAI_API_KEY": "bench",
           "TERM": "xterm-256color"}  # fmt: skip
    command = [sys.executable, "-m", "mkflash_tui", str(path), "--base-url", base_url, "--chunk-tokens", "300",
               "--concurrency", "500", "--cards", str(KEY_CHUNKS * 3), "--yes"]  # fmt: skip
    tmux = Tmux(command, str(folder), env)
    switches: list[float] = []
    timeline: list[float] = []
    deletes: list[float] = []
    try:
        tmux.wait(lambda text: "in flight" in text and in_generate(text), timeout=30)
        tmux.wait(lambda text: _cards_on_tab(text) >= 20, timeout=60)  # the short answers are in
        first = events_sent(server)
        for _ in range(25):
            for other, shown, times in (("1", in_generate, switches), ("3", in_timeline, timeline)):
                times.append(tmux.timed_key("2", in_review))
                time.sleep(0.15)
                times.append(tmux.timed_key(other, shown))
                time.sleep(0.15)
        tmux.send("2")
        tmux.wait(in_review)
        for _ in range(30):
            # ``d`` has taken effect on screen when the detail pane shows another card (the highlighted row is
            # gone and the next card is shown in full).
            before = _detail(tmux.screen())
            deletes.append(tmux.timed_key("d", lambda text, b=before: _detail(text) != b))
            time.sleep(0.15)
        still = _chunks_done(tmux.screen())
        last = events_sent(server)
    finally:
        tmux.close()
    return switches, timeline, deletes, still, (last[0] - first[0]) / (last[1] - first[1])


SHELF_DOCUMENTS, SHELF_CHUNKS = 50, 40  # 2,000 chunks across 50 documents
_DOCUMENT_LINE = re.compile(r"^\s+\d+ [○◐●✕] \S", re.M)  # a line of the shelf's document list


def in_shelf_generate(text: str) -> bool:
    return bool(_DOCUMENT_LINE.search(text)) and not in_review(text)


def shelf_key_latency(folder: Path, base_url: str) -> tuple[dict[str, list[float]], tuple[int, int]]:
    """Key-to-screen seconds on a shelf of 50 documents (2,000 chunks) while they stream (tmux): view switches,
    ↓ in the document list (the board shows the next document's chunks) and ``d`` in Review."""
    shelf = folder / "shelf"
    shelf.mkdir()
    for d in range(SHELF_DOCUMENTS):
        text = make_text(SHELF_CHUNKS).replace("# Benchmark", f"# Document {d}").replace("## Part ", f"## D{d} part ")
        (shelf / f"doc{d:02}.md").write_text(text)
    env = {"MKFLASH_DATA_DIR": tempfile.mkdtemp(prefix="mkflash-bench-"), "OPENAI_API_KEY": "bench",
           "TERM": "xterm-256color"}  # fmt: skip
    command = [sys.executable, "-m", "mkflash_tui", str(shelf), "--base-url", base_url, "--chunk-tokens", "300",
               "--concurrency", "500", "--yes"]  # fmt: skip
    tmux = Tmux(command, str(folder), env)
    times: dict[str, list[float]] = {"switch view (1/2)": [], "↓ next document": [], "d in Review": []}
    try:
        tmux.wait(lambda text: "in flight" in text and in_shelf_generate(text), timeout=60)
        total = _chunks_done(tmux.screen())[1]
        if total != SHELF_DOCUMENTS * SHELF_CHUNKS:
            raise RuntimeError(f"expected {SHELF_DOCUMENTS * SHELF_CHUNKS} chunks, the app has {total}")
        tmux.wait(lambda text: _cards_on_tab(text) >= 20, timeout=90)  # cards are arriving
        for _ in range(15):
            times["switch view (1/2)"].append(tmux.timed_key("2", in_review))
            time.sleep(0.15)
            times["switch view (1/2)"].append(tmux.timed_key("1", in_shelf_generate))
            time.sleep(0.15)
        for d in range(1, 26):
            times["↓ next document"].append(tmux.timed_key("Down", lambda text, d=d: f"D{d} part 0" in text))
            time.sleep(0.15)
        tmux.send("2")
        tmux.wait(in_review)
        for _ in range(25):
            before = _detail(tmux.screen())
            times["d in Review"].append(tmux.timed_key("d", lambda text, b=before: _detail(text) != b))
            time.sleep(0.15)
        still = _chunks_done(tmux.screen())
    finally:
        tmux.close()
    return times, still


def first_paint(path: Path, base_url: str) -> float:
    """Seconds from spawning ``mkflash-tui FILE`` in a pty until its first screen text arrives."""
    import fcntl
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", OPENAI_API_KEY="bench")
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "mkflash_tui", str(path), "--base-url", base_url],
                            stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)  # fmt: skip
    os.close(slave)
    seen = b""
    painted = None
    deadline = started + 20
    while time.perf_counter() < deadline:
        ready, _, _ = select.select([master], [], [], 0.01)
        if ready:
            try:
                seen += os.read(master, 65536)
            except OSError:
                break
            if b"mkflash-tui" in seen and painted is None:
                painted = time.perf_counter() - started
                break
    proc.kill()
    proc.wait()
    os.close(master)
    if painted is None:
        raise RuntimeError("the app never painted")
    return painted


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Benchmark the Textual app under load.")
    parser.add_argument("--skip-lag", action="store_true")
    parser.add_argument("--skip-keys", action="store_true")
    parser.add_argument("--skip-paint", action="store_true")
    parser.add_argument("--skip-shelf", action="store_true")
    args = parser.parse_args()
    os.environ["MKFLASH_DATA_DIR"] = tempfile.mkdtemp(prefix="mkflash-bench-")  # nothing answered from a cache
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.md"
        path.write_text(make_text(CHUNKS))
        os.chdir(folder)
        if not args.skip_lag:
            server, base_url = start_server()
            try:
                print(f"event-loop lag, {CHUNKS} chunks streaming (160x48, headless):")
                lags, delays = asyncio.run(loop_lag(path, base_url))
            finally:
                server.kill()
            ms = [lag * 1000 for lag in lags]
            print(f"  samples {len(ms)}: p50 {statistics.median(ms):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, "
                  f"max {max(ms):.1f} ms (target p99 <= 50 ms)")  # fmt: skip
            ms = [d * 1000 for d in delays]
            print(f"event-to-board delay, {len(ms)} START/END events of panels on screen: p50 "
                  f"{statistics.median(ms):.0f} ms, p90 {percentile(ms, 0.9):.0f} ms, max {max(ms):.0f} ms "
                  "(target max <= 250 ms)")  # fmt: skip
        if not args.skip_keys:
            server, base_url = start_server(**REAL_STREAM)
            try:
                print(f"key-to-screen latency, {KEY_CHUNKS} chunks streaming at concurrency 500, one 4-character "
                      "event per token, 100 a second per stream (tmux, 160x48):")  # fmt: skip
                switches, timeline, deletes, streaming, rate = key_latency(Path(folder), base_url, server)
            finally:
                server.kill()
            print(f"  the server streamed {rate:,.0f} events a second while the keys were measured "
                  f"({rate / KEY_CHUNKS:.0f} a stream)")  # fmt: skip
            for name, values in (("switch view (1/2)", switches), ("switch view (3/2)", timeline),
                                 ("d in Review", deletes)):  # fmt: skip
                ms = [v * 1000 for v in values]
                print(f"  {name:<18} n={len(ms)}: p50 {statistics.median(ms):.0f} ms, p90 {percentile(ms, 0.9):.0f} "
                      f"ms, max {max(ms):.0f} ms (target p90 <= 100 ms)")  # fmt: skip
            gap = (percentile(timeline, 0.9) - percentile(switches, 0.9)) * 1000
            print(f"  the Timeline open against hidden: p90 {gap:+.0f} ms (target within 20 ms)")
            print(f"  chunks done when the last key was measured: {streaming[0]}/{streaming[1]}")
        if not args.skip_shelf:
            server, base_url = start_server(0.5, 40.0, 0.15)
            try:
                print(
                    f"key-to-screen latency, a shelf of {SHELF_DOCUMENTS} documents, "
                    f"{SHELF_DOCUMENTS * SHELF_CHUNKS} chunks streaming at concurrency 500 (tmux, 160x48):"
                )
                times, streaming = shelf_key_latency(Path(folder), base_url)
            finally:
                server.kill()
            for name, values in times.items():
                ms = [v * 1000 for v in values]
                print(f"  {name:<18} n={len(ms)}: p50 {statistics.median(ms):.0f} ms, p90 {percentile(ms, 0.9):.0f} "
                      f"ms, max {max(ms):.0f} ms (target p90 <= 100 ms)")  # fmt: skip
            print(f"  chunks done when the last key was measured: {streaming[0]}/{streaming[1]}")
        if not args.skip_paint:
            server, base_url = start_server()
            try:
                paints = [first_paint(path, base_url) for _ in range(5)]
            finally:
                server.kill()
            print(f"first paint of `mkflash-tui FILE`: median {statistics.median(paints):.2f} s "
                  f"(runs: {', '.join(f'{p:.2f}' for p in paints)}; target <= 0.7 s)")  # fmt: skip


if __name__ == "__main__":
    main()
