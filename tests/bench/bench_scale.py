"""How the cost of an offline run grows with its input: seconds per MB at 1, 5, 20 and 50 MB.

Runs the real CLI (``mkflash-tui generate``, offline generator, a fresh session store each time) on Markdown
texts of distinct sentences and prints wall seconds and seconds per MB. A run whose cost grows linearly shows
about the same seconds per MB at every size. Not part of the test suite.

    python tests/bench/bench_scale.py [--sizes 1,5,20,50]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = [
    "magma",
    "crust",
    "mantle",
    "basalt",
    "granite",
    "erosion",
    "glacier",
    "delta",
    "estuary",
    "plateau",
    "canyon",
    "aquifer",
    "sediment",
    "quartz",
    "feldspar",
    "mica",
    "tectonic",
    "subduction",
    "volcano",
    "caldera",
    "geyser",
    "fault",
    "rift",
    "ridge",
    "trench",
    "island",
    "atoll",
    "lagoon",
    "reef",
]


def make_text(megabytes: float, seed: int = 1) -> str:
    rng = random.Random(seed)
    parts: list[str] = ["# A Long Field Guide"]
    size = 0
    section = 0
    while size < megabytes * 2**20:
        section += 1
        sentences = []
        for _ in range(8):
            a, b, c = rng.sample(WORDS, 3)
            sentences.append(
                f"The {a} of region {section} is formed when {b} meets {c} at {rng.randint(1, 9999)} metres."
            )
        block = f"## Region {section}\n\n" + " ".join(sentences)
        parts.append(block)
        size += len(block) + 2
    return "\n\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,5,20,50", help="input sizes in MB, comma-separated")
    args = parser.parse_args()
    print(f"{'MB':>5} {'chunks':>7} {'cards':>7} {'seconds':>8} {'s/MB':>6}")
    for megabytes in (float(x) for x in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "guide.md").write_text(make_text(megabytes))
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "mkflash_tui", "generate", "guide.md", "-o", "guide.apkg", "--json",
                 "--data-dir", str(folder / "data")],
                cwd=folder, capture_output=True, text=True,
            )  # fmt: skip
            seconds = time.perf_counter() - started
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                raise SystemExit(proc.returncode)
            report = json.loads(proc.stdout)
            print(f"{megabytes:5g} {report['chunks']:7} {report['cards']:7} {seconds:8.1f} {seconds / megabytes:6.2f}")


if __name__ == "__main__":
    main()
