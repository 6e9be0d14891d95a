"""Benchmark: a shelf of documents in one `mkflash-tui generate` against the fake server (not part of the suite).

Prints, from one run: 50 documents of 20 chunks each (1,000 chunk calls and 50 summaries) at latency 1 s with
--concurrency 100, against the ideal for one limit over every document: one wave of summaries, then the chunk
calls in waves of 100 (1 + 10 = 11 s); the same shelf at latency 0, the process's own time; and the shelf run
again on the server the first run learned (no format probe before the first wave).

    python tests/bench/bench_shelf.py [--documents 50] [--chunks 20] [--concurrency 100]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import CHUNK_TOKENS
from fake_openai import FakeOpenAI

WORDS = ["amber", "basalt", "cobalt", "delta", "ember", "fjord", "granite", "harbor", "iris", "jasper", "kelp",
         "lagoon", "marble", "nectar", "onyx", "prairie", "quartz", "raven", "saffron", "tundra", "umber", "violet",
         "willow", "xenon", "yarrow", "zephyr", "acorn", "birch", "cedar", "dune"]  # fmt: skip


def make_document(d: int, chunks: int) -> str:
    """A document of ``chunks`` sections (~215 tokens each: one chunk each at CHUNK_TOKENS), in words of its own,
    so no card repeats another document's."""
    rng = random.Random(d)
    sections = []
    for i in range(chunks):
        body = " ".join(f"The {rng.choice(WORDS)} {rng.choice(WORDS)} of volume {d} part {i} holds "
                        f"{rng.randint(1, 999)} {rng.choice(WORDS)} stones." for _ in range(12))  # fmt: skip
        sections.append(f"## Part {i}\n\n{body}")
    return f"# Volume {d}\n\n" + "\n\n".join(sections)


def run_shelf(folder: Path, server: FakeOpenAI, concurrency: int, *, known: bool = False) -> tuple[float, dict]:
    """One run; ``known``: the server as an earlier run left it in the store (its response format known, no
    probe), every call made again all the same (--no-cache); else a first run on a new server (--fresh)."""
    started = time.perf_counter()
    args = [sys.executable, "-m", "mkflash_tui", "generate", str(folder), "-o", str(folder.parent / "shelf.apkg"),
            "--force", "--json", "--no-cache" if known else "--fresh", "--yes", "--base-url", server.base_url,
            "--model", "fake-model", "--api-key", "bench", "--chunk-tokens", str(CHUNK_TOKENS), "--overlap-tokens", "0",
            "--concurrency", str(concurrency)]  # fmt: skip
    proc = subprocess.run(
        args,
        capture_output=True,
        text=True,
        env={**os.environ, "OPENAI_API_KEY": "", "MKFLASH_DATA_DIR": str(folder.parent / "data")},
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=50)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "shelf"
        folder.mkdir()
        for d in range(args.documents):
            (folder / f"doc{d:03}.md").write_text(make_document(d, args.chunks))
        with FakeOpenAI(latency=0.0) as server:
            run_shelf(folder, server, args.concurrency)  # warm the page cache and .pyc files
            wall0, _ = run_shelf(folder, server, args.concurrency)
        with FakeOpenAI(latency=1.0) as server:
            wall1, report = run_shelf(folder, server, args.concurrency)
            peak = server.peak_in_flight
            known, report_known = run_shelf(folder, server, args.concurrency, known=True)
    chunks = report["chunks"]
    ideal = math.ceil(args.documents / args.concurrency) + math.ceil(chunks / args.concurrency)
    print(f"{args.documents} documents, {chunks} chunks, {report['cards']} cards, {report['requests']} requests; "
          f"peak in flight at the server {peak} (limit {args.concurrency})")  # fmt: skip
    print(f"latency 0 (the process's own time): {wall0:.2f} s")
    print(f"latency 1 s: wall {wall1:.2f} s = {wall1 / ideal:.3f} x the ideal {ideal} s   [target <= 1.3]")
    print(f"  latency added {wall1 - wall0:.2f} s = {(wall1 - wall0) / ideal:.3f} x ideal")
    print(f"the same server run again (its format known, no probe; every call made again, "
          f"{report_known['requests']} requests): wall {known:.2f} s = {known / ideal:.3f} x the ideal")


if __name__ == "__main__":
    main()
