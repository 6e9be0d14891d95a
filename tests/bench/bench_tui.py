"""Benchmark: the Textual app under 500 streaming chunks (not part of the test suite).

Prints, from one run:
  - event-loop lag while 500 chunk calls stream from the fake server (p50 / p99 / max of how late a 10 ms
    timer fires, sampled from the first chunk start to the last chunk end); target p99 <= 50 ms;
  - time from process start to first paint of the real ``mkflash-tui FILE`` in a pseudo-terminal; target
    <= 0.7 s (median of 5).

The fake server runs in its own process so that its work does not count against the app's loop.

    python tests/bench/bench_tui.py
"""

from __future__ import annotations

import asyncio
import os
import pty
import select
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
SERVER = """
import random, sys, time
sys.path.insert(0, {tests!r})
from fake_openai import FakeOpenAI
rng = random.Random(1)
server = FakeOpenAI(latency=lambda body: rng.uniform(0.5, 3.0), chars_per_delta=6).start()
print(server.base_url, flush=True)
time.sleep(3600)
"""


def start_server() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER.format(tests=str(HERE.parent))], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    return proc, proc.stdout.readline().strip()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def loop_lag(path: Path, base_url: str) -> list[float]:
    from mkflash_tui.cli import app_parser
    from mkflash_tui.config import settings_from_args
    from mkflash_tui.core.models import ChunkState
    from mkflash_tui.tui.app import make_app

    flags = [str(path), "--base-url", base_url, "--api-key", "bench", "--chunk-tokens", "300", "--yes",
             "--concurrency", "512", "--cards", str(CHUNKS * 3)]  # fmt: skip
    app = make_app(settings_from_args(app_parser().parse_args(flags), environ={}))
    lags: list[float] = []
    async with app.run_test(size=(160, 48), headless=True) as pilot:
        while app.run_screen is None:
            await pilot.pause(0.05)
        screen = app.run_screen
        run = screen.run
        assert len(run.chunks) == CHUNKS, len(run.chunks)
        while not any(s.state is not ChunkState.QUEUED for s in run.status.values()):
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        while not screen.finished:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - before - 0.01)
        print(f"  {CHUNKS} chunks streamed in {time.perf_counter() - started:.1f} s, "
              f"{len(run.cards())} cards, {run.counts()['failed']} failed")  # fmt: skip
        # Switching views with 1500 cards must stay quick too.
        await pilot.press("2")
        await pilot.pause(0.2)
    return lags


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
    os.environ["MKFLASH_DATA_DIR"] = tempfile.mkdtemp(prefix="mkflash-bench-")  # nothing answered from a cache
    server, base_url = start_server()
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "bench.md"
            path.write_text(make_text(CHUNKS))
            os.chdir(folder)
            print(f"event-loop lag, {CHUNKS} chunks streaming (160x48, headless):")
            lags = asyncio.run(loop_lag(path, base_url))
            ms = [lag * 1000 for lag in lags]
            print(f"  samples {len(ms)}: p50 {statistics.median(ms):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, "
                  f"max {max(ms):.1f} ms (target p99 <= 50 ms)")  # fmt: skip
            paints = [first_paint(path, base_url) for _ in range(5)]
            print(f"first paint of `mkflash-tui FILE`: median {statistics.median(paints):.2f} s "
                  f"(runs: {', '.join(f'{p:.2f}' for p in paints)}; target <= 0.7 s)")  # fmt: skip
    finally:
        server.kill()


if __name__ == "__main__":
    main()
