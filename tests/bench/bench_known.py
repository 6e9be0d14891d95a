"""How long comparing new cards with a collection takes (``core.known``): 10,000 notes of a user's collection
(basic and cloze, as text after the bulk read) in one index, and the cards of a 100-chunk run compared with
them. Prints the seconds of each step; run: python tests/bench/bench_known.py [--notes N] [--cards N]."""

from __future__ import annotations

import argparse
import random
import time

from mkflash_tui.core.known import KnownIndex, KnownNote, field_text
from mkflash_tui.core.models import Card, CardKind

TEXT = ("magma viscosity basalt caldera tephra lahar hotspot mantle crust plate eruption vent cone ash gas "
        "pressure chamber fluid rock layer slope flow current scale index volume island chain ridge trench "
        "subduction rift fault quake wave energy heat density mineral crystal silica iron oxygen water")
WORDS = TEXT.split()


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--cards", type=int, default=1_000)
    args = parser.parse_args()
    rng = random.Random(7)
    started = time.perf_counter()
    notes = []
    for i in range(args.notes):
        if i % 3 == 0:
            words = sentence(rng, 12).split()
            words[5] = "{{c1::" + words[5] + "}}"
            notes.append(KnownNote(i, f"g{i}", "Deck", field_text("<div>" + " ".join(words) + "</div>"), ""))
        else:
            notes.append(KnownNote(i, f"g{i}", "Deck", field_text(f"What is <b>{sentence(rng, 4)}</b>?"),
                                   field_text(sentence(rng, 8))))  # fmt: skip
    texts = time.perf_counter() - started
    started = time.perf_counter()
    index = KnownIndex(notes)
    built = time.perf_counter() - started
    cards = []
    for i in range(args.cards):
        source = notes[rng.randrange(len(notes))] if i % 10 == 0 else None  # one card in ten repeats a note
        if source is not None:
            kind = CardKind.CLOZE if "{{c1::" in source.front else CardKind.BASIC
            cards.append(Card(f"c{i}", "k", 0, i, source.front, source.back, "", kind))
        else:
            cards.append(Card(f"c{i}", "k", 0, i, f"What is {sentence(rng, 5)}?", sentence(rng, 7), "", CardKind.BASIC))
    started = time.perf_counter()
    marked = index.mark(cards)
    compared = time.perf_counter() - started
    print(f"{args.notes:,} notes: fields as text {texts:.3f} s, index {built:.3f} s; {args.cards:,} cards "
          f"compared in {compared:.3f} s ({marked} in the collection); index + compare {built + compared:.3f} s")


if __name__ == "__main__":
    main()
