"""Many documents in one run: which files a folder stands for, one deck with a subdeck per document, one limit on
the calls in flight across all of them, and each document resuming and continuing on its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from anki_check import AnkiCollection
from conftest import run_cli, sections
from fake_openai import FakeOpenAI, chunk_of

from mkflash_tui.core.sources import SourceError
from mkflash_tui.core.sources.gather import gather


def test_a_folder_is_its_readable_files_in_natural_order_each_once(tmp_path: Path) -> None:
    top = tmp_path / "course"
    (top / "part 2").mkdir(parents=True)
    (top / ".git").mkdir()
    for name in ("ch10.md", "ch2.md", "Ch1.txt", "notes.rst", "figure.png", ".hidden.md", "part 2/talk.srt"):
        (top / name).write_text("Some text.\n")
    (top / ".git" / "readme.md").write_text("not a document\n")
    (top / "part 2" / "back").symlink_to(top)  # a loop
    (top / "draft.md").write_text("draft\n")
    got = gather([str(top), str(top / "ch2.md")], exclude=["draft*"])
    names = [os.path.relpath(p, top) for p in got.inputs]
    assert names == ["Ch1.txt", "ch2.md", "ch10.md", "notes.rst", "part 2/talk.srt"]
    assert got.folders == [top] and not got.skipped
    assert len(got.notes) == 1 and "symlink loop" in got.notes[0]


def test_a_list_file_reads_its_paths_from_its_own_folder(tmp_path: Path) -> None:
    (tmp_path / "lists").mkdir()
    (tmp_path / "a.md").write_text("A.\n")
    (tmp_path / "lists" / "course.txt").write_text("# the reading\n../a.md\n\nhttps://example.org/page\n")
    got = gather([], from_list=str(tmp_path / "lists" / "course.txt"))
    assert [os.path.realpath(p) if not p.startswith("http") else p for p in got.inputs] == [
        os.path.realpath(tmp_path / "a.md"), "https://example.org/page"]  # fmt: skip
    with pytest.raises(SourceError, match="does not exist"):
        gather([str(tmp_path / "missing.md")])


def shelf_folder(root: Path) -> Path:
    """A folder of five kinds of document (and an empty one), each with its own words."""
    notes = root / "notes"
    notes.mkdir()
    (notes / "alpha.md").write_text(sections(3, prefix="Alpha"))
    (notes / "beta.txt").write_text(sections(3, prefix="Beta").replace("#", ""))
    body = " ".join(f"<p>The gamma {i} fact states that gamma element {i} weighs {i * 7} grams.</p>" for i in range(12))
    page = f"<html><head><title>Gamma Notes</title></head><body><h1>Gamma</h1>{body}</body></html>"
    (notes / "gamma.html").write_text(page)
    cues = "\n".join(f"{i}\n00:00:{i:02d},000 --> 00:00:{i:02d},900\nThe delta {i} fact states that delta item {i} "
                     f"costs {i * 3} coins.\n" for i in range(1, 25))  # fmt: skip
    (notes / "delta.srt").write_text(cues)
    (notes / "epsilon.rst").write_text("Epsilon\n=======\n\n" + sections(2, prefix="Epsilon").split("\n", 2)[2])
    (notes / "empty.md").write_text("")
    return notes


def generate(server: FakeOpenAI, cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_cli("generate", *args, "--base-url", server.base_url, "--api-key", "k", "--chunk-tokens", "120",
                   "--yes", "--json", "-o", "course.apkg", cwd=cwd, timeout=timeout)  # fmt: skip


def test_a_folder_becomes_one_deck_with_a_subdeck_per_document_under_one_limit(tmp_path: Path) -> None:
    notes = shelf_folder(tmp_path)
    with FakeOpenAI(latency=0.15) as server:
        proc = generate(server, tmp_path, "notes", "--concurrency", "3")
        report = json.loads(proc.stdout)
        assert proc.returncode == 1, proc.stderr  # one input skipped
        assert "Traceback" not in proc.stderr
        assert [s["input"] for s in report["skipped"]] == [str(Path("notes") / "empty.md")]
        assert "empty.md" in proc.stderr.split("skipped:")[-1]
        assert len(report["documents"]) == 5 and report["deck"] == "notes"
        assert all(d["done"] == d["chunks"] > 0 and d["cards"] > 0 for d in report["documents"]), report
        assert server.peak_in_flight <= 3 and server.peak_in_flight >= 2
        first_requests = len(server.requests)

        col = AnkiCollection(tmp_path / "col")
        try:
            col.import_apkg(tmp_path / "course.apkg")
            imported = col.notes()
        finally:
            col.close()
        assert len(imported) == report["cards"]
        assert len({n.guid for n in imported}) == len(imported)
        subdecks = {d["deck"] for d in report["documents"]}
        assert len(subdecks) == 5 and all(d.startswith("notes::") for d in subdecks)
        assert {deck for n in imported for deck in n.decks} == subdecks
        per_deck = {d["deck"]: d["cards"] for d in report["documents"]}
        for deck, count in per_deck.items():
            assert sum(1 for n in imported if deck in n.decks) == count
        guids = {n.guid: next(iter(n.decks)) for n in imported}

        listed = run_cli("sessions", cwd=tmp_path)
        assert report["job"] in listed.stdout and listed.stdout.count("alpha.md") == 1

        # Edit one document: only its changed chunks are sent again; every other card keeps its GUID.
        (notes / "beta.txt").write_text((notes / "beta.txt").read_text() + "\n\nA new closing paragraph says that "
                                        "the beta appendix lists nine new facts about zinc.\n")  # fmt: skip
        again = generate(server, tmp_path, "notes", "--concurrency", "3")
        report2 = json.loads(again.stdout)
        assert again.returncode == 1 and report2["job"] == report["job"]
        assert report2["output"] and "could not write" not in again.stderr
        sent = [chunk_of(b) for b in server.requests[first_requests:] if chunk_of(b) is not None]
        assert sent and all("zinc" in text or "Beta" in text or "beta" in text for text in sent), sent
        assert len(sent) <= 2
        col = AnkiCollection(tmp_path / "col2")
        try:
            col.import_apkg(tmp_path / "course.apkg")
            after = {n.guid: next(iter(n.decks)) for n in col.notes()}
        finally:
            col.close()
        beta = next(d["deck"] for d in report["documents"] if d["input"].endswith("beta.txt"))
        kept = {g: d for g, d in guids.items() if d != beta}
        assert all(after.get(g) == d for g, d in kept.items())
        assert len(after) > len(guids)  # the new paragraph's card is in the rewritten deck


def test_the_same_card_in_two_documents_is_kept_once(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    text = sections(2, prefix="Shared")
    (tmp_path / "docs" / "one.md").write_text(text)
    (tmp_path / "docs" / "two.md").write_text(text.replace("# Test Document", "# Second Copy"))
    with FakeOpenAI() as server:
        proc = generate(server, tmp_path, "docs")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stderr
    one, two = report["documents"]
    assert one["cards"] > 0 and report["repeats_across_documents"] >= 1
    assert two["cards"] < one["cards"]
    assert "repeated a card of an earlier document" in proc.stderr


def test_two_documents_with_one_title_get_two_subdecks(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("The first fact states that copper melts at 1085 degrees. " * 3)
    (tmp_path / "a" / "y.txt").write_text("The second fact states that iron melts at 1538 degrees. " * 3)
    with FakeOpenAI() as server:  # the model names both "A document about things"
        proc = generate(server, tmp_path, "a")
    report = json.loads(proc.stdout)
    decks = [d["deck"] for d in report["documents"]]
    assert len(set(decks)) == 2, decks


def test_a_killed_shelf_resumes_without_asking_a_committed_chunk_again(tmp_path: Path) -> None:
    shelf_folder(tmp_path)
    (tmp_path / "notes" / "empty.md").unlink()
    with FakeOpenAI() as server:
        late = server.hold(lambda body: "delta" in (chunk_of(body) or ""))
        env = {k: v for k, v in os.environ.items() if not k.endswith("API_KEY")}
        args = [sys.executable, "-m", "mkflash_tui", "generate", "notes", "--base-url", server.base_url,
                "--api-key", "k", "--chunk-tokens", "120", "--yes", "--json", "-o", "course.apkg"]  # fmt: skip
        proc = subprocess.Popen(args, cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        assert late.wait_arrived(1, timeout=60)
        settled = -1
        while settled != len(server.requests):  # everything not held is answered and committed
            settled = len(server.requests)
            time.sleep(0.7)
        answered = {chunk_of(b) for b in server.requests if chunk_of(b) and "delta" not in chunk_of(b)}
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        late.release()
        first = len(server.requests)
        again = generate(server, tmp_path, "notes")
    report = json.loads(again.stdout)
    assert again.returncode == 0, again.stderr
    asked = [chunk_of(b) for b in server.requests[first:] if chunk_of(b) is not None]
    assert asked and all("delta" in text for text in asked)
    assert not answered & set(asked)
    assert sum(d["from_cache"] for d in report["documents"]) >= len(answered)


def test_a_document_removed_from_the_folder_leaves_its_cards_stale(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "keep.md").write_text(sections(2, prefix="Kept"))
    words = " ".join(f"Comet {i} returns every {i * 11 + 3} years, its orbit tilted {i * 4} degrees." for i in range(7))
    (tmp_path / "docs" / "drop.md").write_text(f"# Dropped\n\n## Comets\n\n{words}\n")
    with FakeOpenAI() as server:
        first = json.loads(generate(server, tmp_path, "docs").stdout)
        (tmp_path / "docs" / "drop.md").unlink()
        before = len(server.requests)
        proc = generate(server, tmp_path, "docs")
        assert len(server.requests) == before  # the kept document is answered from the store
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stderr
    dropped = next(d for d in first["documents"] if d["input"].endswith("drop.md"))
    [gone] = report["gone"]
    assert gone["session"] == dropped["session"] and gone["stale_cards"] == dropped["cards"] > 0
    assert "no longer given" in proc.stderr
    col = AnkiCollection(tmp_path / "col")
    try:
        col.import_apkg(tmp_path / "course.apkg")
        notes = col.notes()
    finally:
        col.close()
    stale = [n for n in notes if "mkflash::stale" in n.tags]
    assert len(stale) == dropped["cards"] and all(n.decks == {dropped["deck"]} for n in stale)
    assert len(notes) == report["cards"] == first["cards"]


def test_the_dry_run_gives_each_document_and_the_total(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text(sections(4, prefix="Alpha"))
    with FakeOpenAI(latency=0.3) as server:
        generate(server, tmp_path, "docs")  # the server's speed is learned from a real run
        (tmp_path / "docs" / "b.md").write_text(sections(6, prefix="Beta"))
        before = len(server.requests)
        proc = run_cli("generate", "docs", "--base-url", server.base_url, "--api-key", "k", "--chunk-tokens", "120",
                       "--dry-run", "--json", cwd=tmp_path)  # fmt: skip
        assert len(server.requests) == before
    report = json.loads(proc.stdout)
    a, b = report["documents"]
    assert a["chunks"] == 0 and "7 answered before" in a["changes"]  # nothing of it to send again
    assert b["chunks"] > 0 and report["chunks"] == a["chunks"] + b["chunks"]
    assert report["input_tokens"] == a["input_tokens"] + b["input_tokens"]
    assert b["estimated_seconds"] and report["estimated_seconds"] >= b["estimated_seconds"]
    text = run_cli("generate", "docs", "--base-url", server.base_url, "--api-key", "k", "--chunk-tokens", "120",
                   "--dry-run", cwd=tmp_path).stdout  # fmt: skip
    assert "docs: 2 documents" in text and "Nothing was sent" in text and "a.md" in text


def test_a_shelf_read_first_and_asked_about_gives_the_same_deck(tmp_path: Path) -> None:
    """--max-cost needs the total before any call: every document is read first, then all run at once."""
    shelf_folder(tmp_path)
    with FakeOpenAI() as server:
        over = run_cli("generate", "notes", "--base-url", server.base_url, "--api-key", "k", "--model", "gpt-4o",
                       "--max-cost", "0.000001", "--json", cwd=tmp_path)  # fmt: skip
        assert over.returncode == 2 and not server.requests
        assert "above --max-cost" in over.stderr and "5 documents" in over.stderr
        proc = run_cli("generate", "notes", "--base-url", server.base_url, "--api-key", "k", "--chunk-tokens", "120",
                       "--max-cost", "5", "--json", "-o", "course.apkg", cwd=tmp_path)  # fmt: skip
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and "each sent as it is read" not in proc.stderr
    assert len(report["documents"]) == 5 and all(d["cards"] for d in report["documents"])
    offline = run_cli("generate", "notes", "--json", "-o", "offline.apkg", cwd=tmp_path)
    assert offline.returncode == 1 and len(json.loads(offline.stdout)["documents"]) == 5
    col = AnkiCollection(tmp_path / "col")
    try:
        col.import_apkg(tmp_path / "offline.apkg")
        decks = {d for n in col.notes() for d in n.decks}
        assert len(decks) == 5 and all(d.startswith("notes::") for d in decks)
    finally:
        col.close()


def test_ctrl_c_stops_every_document_and_keeps_what_was_finished(tmp_path: Path) -> None:
    shelf_folder(tmp_path)
    with FakeOpenAI() as server:
        late = server.hold(lambda body: "delta" in (chunk_of(body) or ""))
        env = {k: v for k, v in os.environ.items() if not k.endswith("API_KEY")}
        args = [sys.executable, "-m", "mkflash_tui", "generate", "notes", "--base-url", server.base_url,
                "--api-key", "k", "--chunk-tokens", "120", "--yes", "--json", "-o", "course.apkg"]  # fmt: skip
        proc = subprocess.Popen(args, cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                text=True)  # fmt: skip
        assert late.wait_arrived(1, timeout=60)
        settled = -1
        while settled != len(server.requests):
            settled = len(server.requests)
            time.sleep(0.7)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        late.release()
    report = json.loads(out)
    assert proc.returncode == 130 and "Traceback" not in err
    assert "run the same command again to continue" in err
    delta = next(d for d in report["documents"] if d["input"].endswith("delta.srt"))
    assert delta["done"] < delta["chunks"]
    assert sum(d["cards"] for d in report["documents"]) == report["cards"] > 0 and report["output"]


def test_a_deck_another_job_wrote_is_not_replaced_without_force(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.md").write_text(sections(1, prefix=name.upper()))
    with FakeOpenAI() as server:
        assert generate(server, tmp_path, "a").returncode == 0
        again = generate(server, tmp_path, "a")  # the job's own deck: replaced
        other = generate(server, tmp_path, "b")
    assert again.returncode == 0
    assert other.returncode == 2 and "course.apkg already exists" in other.stderr
