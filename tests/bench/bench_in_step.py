"""The second run of an edited document: what is sent, and what Anki does with the deck on re-import.

Makes a Markdown text of about 100 chunks (default settings: 1,500-token chunks), runs the real CLI against the
loopback chat-completions server, imports the deck into a fresh Anki collection with Anki's own library and
gives every card a review history; then edits three paragraphs (at a fifth, a half and four fifths of the text),
runs again and imports again. Prints the requests of each run and, for the re-import, the notes added, updated
(content changed), unchanged and stale, and whether any earlier note lost its id or its review history. Not part
of the test suite.

    python tests/bench/bench_in_step.py [--paragraphs 2000] [--edits 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from anki_check import AnkiCollection  # noqa: E402
from bench_scale import WORDS  # noqa: E402
from fake_openai import WANT_RE, FakeOpenAI, chunk_of, is_summary  # noqa: E402

NOUNS = WORDS  # the geology words bench_scale.py writes its texts with
VERBS = ["shapes", "carries", "cools", "erodes", "feeds", "lifts", "buries", "splits", "warms", "drains"]


def paragraph(rng: random.Random, i: int) -> str:
    sentences = []
    for j in range(rng.randint(3, 7)):
        a, b = rng.sample(NOUNS, 2)
        sentences.append(f"In survey {i}.{j} the {a} {rng.choice(VERBS)} the {b} at site {rng.randint(1, 9999)}.")
    return " ".join(sentences)


def spread_cards(body: dict) -> dict:
    """A model that cards sentences from the whole chunk (evenly spaced), not only from its start."""
    chunk = chunk_of(body) or ""
    wanted = next((int(m.group(1)) for msg in body["messages"] if (m := WANT_RE.search(str(msg["content"])))), 3)
    sentences = [s for s in chunk.replace("\n", " ").split(". ") if len(s.split()) >= 4]
    step = max(1.0, len(sentences) / max(1, wanted))
    picked = [sentences[int(i * step)] for i in range(min(wanted, len(sentences)))]
    cards = [{"type": "basic", "front": f"What happened in {' '.join(s.split()[:3])}?", "back": s, "quote": s}
             for s in picked]  # fmt: skip
    return {"cards": cards}


def text(paragraphs: list[str]) -> str:
    parts = ["# Survey Notes"]
    for i, p in enumerate(paragraphs):
        if i % 25 == 0:
            parts.append(f"## Region {i // 25}")
        parts.append(p)
    return "\n\n".join(parts) + "\n"


def generate(server: FakeOpenAI, cwd: Path) -> dict:
    env = {**os.environ, "MKFLASH_DATA_DIR": str(cwd / "data")}
    env.pop("OPENAI_API_KEY", None)
    args = [sys.executable, "-m", "mkflash_tui", "generate", "notes.md", "--base-url", server.base_url,
            "--api-key", "sk-bench", "--yes", "--json", "--force", "-o", "notes.apkg"]  # fmt: skip
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout)


def snapshot(anki: AnkiCollection) -> dict[str, tuple[int, int, bool, tuple]]:
    """guid -> (note id, note mod, stale tag, review history of its cards)."""
    out = {}
    for nid in anki.col.find_notes(""):
        note = anki.col.get_note(nid)
        history = tuple((c.id, c.ivl, c.due, c.reps) for c in note.cards())
        out[note.guid] = (note.id, note.mod, "mkflash::stale" in note.tags, history)
    return out


def study(anki: AnkiCollection) -> None:
    for i, cid in enumerate(anki.col.find_cards("")):
        card = anki.col.get_card(cid)
        card.type = card.queue = 2
        card.ivl, card.due, card.reps = 10 + i % 50, 400 + i, 3
        anki.col.update_card(card)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paragraphs", type=int, default=1100)
    parser.add_argument("--edits", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(7)
    paragraphs = [paragraph(rng, i) for i in range(args.paragraphs)]
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(cards=spread_cards) as server:
        work = Path(tmp)
        (work / "notes.md").write_text(text(paragraphs))
        first = generate(server, work)
        first_requests = len(server.requests)
        anki = AnkiCollection(work / "anki")
        anki.import_apkg(work / "notes.apkg")
        study(anki)
        before = snapshot(anki)

        for k in range(1, args.edits + 1):
            at = len(paragraphs) * k // (args.edits + 1)
            paragraphs[at] = paragraphs[at].replace(" the ", " the newly measured ")
        (work / "notes.md").write_text(text(paragraphs))
        anki.col.close()  # Anki's import happens later in another second: mod times are whole seconds
        mark = len(server.requests)
        second = generate(server, work)
        sent = server.requests[mark:]
        anki = AnkiCollection(work / "anki")
        anki.import_apkg(work / "notes.apkg")
        after = snapshot(anki)
        anki.close()
        fresh = AnkiCollection(work / "deck-only")
        fresh.import_apkg(work / "notes.apkg")
        in_deck = {n.guid for n in fresh.notes()}
        fresh.close()

    added = set(after) - set(before)
    kept = set(before) & set(after)
    updated = [g for g in kept if after[g][1] != before[g][1]]
    lost_history = [g for g in kept if after[g][3] != before[g][3] or after[g][0] != before[g][0]]
    stale = [g for g in after if after[g][2]]
    print(f"document: {len(text(paragraphs)) // 1024} KB, {first['chunks']} chunks, {args.edits} paragraphs edited")
    print(f"first run:  {first_requests} requests, {first['cards']} notes")
    chunk_calls = sum(chunk_of(b) is not None for b in sent)
    print(f"second run: {len(sent)} requests ({chunk_calls} chunks, {sum(is_summary(b) for b in sent)} summary); "
          f"changes {second['changes']}")  # fmt: skip
    print(f"re-import:  {len(added)} notes added, {len(updated)} updated, {len(kept) - len(updated)} unchanged, "
          f"{len(stale)} stale; {len(after)} notes in the collection (the deck has {second['cards']})")  # fmt: skip
    print(f"earlier notes that lost their id or review history: {len(lost_history)}")
    left_out = set(before) - in_deck
    print(f"earlier notes the new deck leaves out (neither current nor stale): {len(left_out)}")


if __name__ == "__main__":
    main()
