"""The quality gate over the offline generator's cards on five public texts of different kinds (not part of the
test suite; the texts and their sources are in ``tests/data/quality/``).

Prints per text: the cards the generator made (after exact duplicates, what reached a deck before the gate), the
share flagged by each check, the cards the gate leaves out (near-duplicates and clearly broken cards), and ten
cards picked at random (seeded) from those that remain, with their flags.

    python tests/bench/bench_quality.py [--sample 10] [--text NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data" / "quality"
TEXTS = ["rust-prose.md", "gpl-3.txt", "node-net.md", "rust-ownership.html", "rust-data-types.html", "moliere-fr.txt"]


async def cards_of(path: Path):
    from mkflash_tui.config import Settings
    from mkflash_tui.core.sources import read_source
    from mkflash_tui.job import prepare

    job = prepare(Settings(), read_source(str(path)))
    run = job.make_run()
    await run.run()
    await run.aclose()
    made = []
    seen = set()
    for chunk in run.chunks:
        for card in run.status[chunk.id].cards:
            if card.dedup_key() not in seen:
                seen.add(card.dedup_key())
                made.append(card)
    return made, run.cards(), run.quality


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, default=10)
    parser.add_argument("--text", choices=TEXTS)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent.parent))
    totals = [0, 0, 0]
    for name in [args.text] if args.text else TEXTS:
        made, kept, report = asyncio.run(cards_of(DATA / name))
        flagged = [c for c in kept if c.flags]
        dropped = sum(report["dropped"].values())
        totals[0] += len(made)
        totals[1] += len(kept)
        totals[2] += len(kept) - len(flagged)
        size = (DATA / name).stat().st_size // 1024
        print(f"\n{name} ({size} KB): {len(made)} cards made; the gate leaves out {dropped} "
              f"({', '.join(f'{k} {v}' for k, v in sorted(report['dropped'].items())) or 'none'}); "
              f"{len(kept)} kept, {len(flagged)} of them flagged ({100 * len(flagged) / max(1, len(kept)):.0f} %), "
              f"{len(kept) - len(flagged)} unflagged")  # fmt: skip
        for flag, count in sorted(report["flagged"].items(), key=lambda item: -item[1]):
            print(f"  {flag:<26} {count:>4}  {100 * count / max(1, len(kept)):5.1f} %")
        rng = random.Random(name)
        for card in rng.sample(kept, min(args.sample, len(kept))):
            flags = f"  [{', '.join(card.flags)}]" if card.flags else ""
            print(f"  · {card.front[:100]!r} → {card.back[:60]!r}{flags}")
    print(f"\nall texts: {totals[0]} cards made, {totals[1]} kept, {totals[2]} kept unflagged")


if __name__ == "__main__":
    main()
