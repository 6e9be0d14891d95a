"""The offline generator and the quality gate on public texts of different kinds (not part of the test suite; the
texts, their sources, the tuning/held-out split and the rubric are in ``tests/data/quality/``).

Prints first the usable shares graded by hand, blind (``blind_grades.json``, with the key in ``blind_key.json``):
held-out and tuned, the generator as it is against the one before issue 35 (``cards_old.json``). Then per text:
the cards the generator makes now (after exact duplicates, what reached a deck before the gate), the share
flagged by each check, the cards the gate leaves out, and ten cards picked at random (seeded), with their flags.

    python tests/bench/bench_quality.py [--sample 10] [--text NAME]
    python tests/bench/bench_quality.py --blind 2      # writes round 2's blind sample to grade (overwrites its key)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data" / "quality"
SPLIT = json.loads((DATA / "split.json").read_text())
TEXTS = SPLIT["tuning"] + SPLIT["held_out"] + SPLIT["held_out_next"]


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


def as_rows(cards) -> list[dict]:
    return [{"type": c.kind.value, "front": c.front, "back": c.back} for c in cards]


ROUNDS = {  # round: (its files' prefix, the texts it draws from with the cards per text of each generator)
    "1": ("blind", (("held_out", SPLIT["held_out"], 20), ("tuning", SPLIT["tuning"][6:], 8))),
    "2": ("blind2", (("held_out", SPLIT["held_out_next"], 15),)),
}


def write_blind(round_: str) -> None:
    """A sample of the old and the new generator's cards on a round's texts, shuffled together with ids that do
    not tell which is which; the key goes to its own file."""
    prefix, parts = ROUNDS[round_]
    old = json.loads((DATA / "cards_old.json").read_text())
    rng = random.Random(35 + int(round_) - 1)
    pool, key = [], {}
    for part, texts, per_text in parts:
        for name in texts:
            new = as_rows(asyncio.run(cards_of(DATA / name))[1])
            for maker, rows in (("old", [{k: r[k] for k in ("type", "front", "back")} for r in old[name]]),
                                ("new", new)):  # fmt: skip
                for row in rng.sample(rows, min(per_text, len(rows))):
                    pool.append({"text": name, "set": part, **row})
                    key[len(pool) - 1] = maker
    order = list(range(len(pool)))
    rng.shuffle(order)
    cards = [{"id": f"{prefix[-1] if round_ != '1' else ''}b{i:03d}", **pool[j]} for i, j in enumerate(order)]
    (DATA / f"{prefix}_cards.json").write_text(json.dumps(cards, ensure_ascii=False, indent=1) + "\n")
    blind_key = {card["id"]: key[j] for card, j in zip(cards, order, strict=True)}
    (DATA / f"{prefix}_key.json").write_text(json.dumps(blind_key, indent=1) + "\n")
    print(f"{len(cards)} cards to grade in {prefix}_cards.json; the key is in {prefix}_key.json")


def print_shares() -> None:
    for round_, (prefix, parts) in ROUNDS.items():
        grades_file = DATA / f"{prefix}_grades.json"
        if not grades_file.exists():
            print(f"round {round_}: no blind grades yet ({grades_file.name})")
            continue
        cards = {c["id"]: c for c in json.loads((DATA / f"{prefix}_cards.json").read_text())}
        key = json.loads((DATA / f"{prefix}_key.json").read_text())
        grades = json.loads(grades_file.read_text())["grades"]
        print(f"round {round_}: usable share, graded blind by hand (tests/data/quality/RUBRIC.md), "
              f"old generator against the one of this round:")  # fmt: skip
        print(f"  {'text':<24}{'set':<10}{'old':>14}{'new':>14}")
        totals: dict[tuple[str, str], list[int]] = {}
        for part, texts, _ in parts:
            for name in texts:
                cells = []
                for maker in ("old", "new"):
                    ids = [i for i, c in cards.items() if c["text"] == name and key[i] == maker and i in grades]
                    usable = sum(1 for i in ids if grades[i]["usable"])
                    total = totals.setdefault((part, maker), [0, 0])
                    total[0] += usable
                    total[1] += len(ids)
                    cells.append(f"{usable}/{len(ids)} {100 * usable / len(ids):3.0f} %" if ids else "")
                print(f"  {name:<24}{part:<10}{cells[0]:>14}{cells[1]:>14}")
        for part, _, _ in parts:
            counts = [totals.get((part, maker), [0, 0]) for maker in ("old", "new")]
            cells = [f"{u}/{n} {100 * u / max(1, n):3.0f} %" for u, n in counts]
            print(f"  {'all ' + part:<34}{cells[0]:>14}{cells[1]:>14}")
    print("  (the six texts tuned on before issue 35: old 61 %, offline_graded.json)\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, default=10)
    parser.add_argument("--text", choices=TEXTS)
    parser.add_argument("--blind", choices=ROUNDS, help="write round N's blind sample to grade (overwrites its key)")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent.parent))
    if args.blind:
        write_blind(args.blind)
        return
    print_shares()
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
