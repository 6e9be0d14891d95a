"""Benchmark: the whole `mkflash-tui generate` process against the fake server (not part of the test suite).

Prints, from one run:
  - process overhead: wall time at latency 0 (100 chunks, --concurrency >= chunks);
  - what 1 s of latency added: wall(latency 1) - wall(latency 0), as a multiple of the ideal 2 s
    (one summary call + one wave of chunk calls);
  - for comparison, 10 chunks run serially (--concurrency 1) at latency 1.

    python tests/bench/bench_engine.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fake_openai import FakeOpenAI

CHUNK_TOKENS = 300


def make_text(chunks: int) -> str:
    # Each section is ~215 tokens, so with --chunk-tokens 300 (and its overlap) every section is one chunk.
    sections = []
    for i in range(chunks):
        body = " ".join(f"Fact {j} of part {i} says that item {i}-{j} has property {j * 7 % 13}." for j in range(12))
        sections.append(f"## Part {i}\n\n{body}")
    return "# Benchmark\n\n" + "\n\n".join(sections)


def run_cli(path: Path, server: FakeOpenAI, concurrency: int) -> tuple[float, dict]:
    out = path.with_suffix(".apkg")
    started = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkflash_tui",
            "generate",
            str(path),
            "-o",
            str(out),
            "--force",
            "--json",
            "--base-url",
            server.base_url,
            "--model",
            "fake-model",
            "--api-key",
            "bench",
            "--chunk-tokens",
            str(CHUNK_TOKENS),
            "--overlap-tokens",
            "0",
            "--concurrency",
            str(concurrency),
            "--fresh",  # every run really calls the server (the store would answer a repeated text)
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "OPENAI_API_KEY": "", "MKFLASH_DATA_DIR": str(path.parent / "data")},
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, json.loads(proc.stdout)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "bench100.md"
        big.write_text(make_text(100))
        small = Path(tmp) / "bench10.md"
        small.write_text(make_text(10))

        with FakeOpenAI(latency=0.0) as server:
            run_cli(big, server, 256)  # warm the page cache and .pyc files
            wall0, report0 = run_cli(big, server, 256)
        with FakeOpenAI(latency=1.0) as server:
            wall1, report1 = run_cli(big, server, 256)
            peak = server.peak_in_flight
        with FakeOpenAI(latency=1.0) as server:
            serial, report_serial = run_cli(small, server, 1)

    chunks = report1["chunks"]
    added = wall1 - wall0
    print(f"chunks: {chunks} (requests {report1['requests']}, peak in flight at the server {peak})")
    print(f"process overhead (latency 0, whole process): {wall0:.2f} s   [target <= 0.50 s]")
    print(f"  of which the process reported wall_seconds {report0['wall_seconds']:.2f} s")
    print(
        f"latency 1 s: wall {wall1:.2f} s; latency added {added:.2f} s = {added / 2.0:.3f} x ideal 2 s"
        "   [target <= 1.05]"
    )
    print(f"serial, 10 chunks at --concurrency 1: {serial:.2f} s ({report_serial['chunks']} chunks)")
    print(f"speed-up of the concurrent run over serial, per chunk: {(serial / 10) / (wall1 / chunks):.1f} x")


if __name__ == "__main__":
    main()
