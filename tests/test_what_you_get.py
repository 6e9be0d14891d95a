"""What you review is what you get (issue 25): titles a person would choose, numbers that add up, words that say
what happened, and the behaviour a user expects of the headless run."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import ROOT, run_cli, sections
from fake_openai import FakeOpenAI

from mkflash_tui.core.sources import parse_bytes, read_source

DATA = ROOT / "tests" / "data"


# ---------------------------------------------------------------- titles


def html(body: str, title: str = "") -> bytes:
    return f"<html><head><title>{title}</title></head><body><main>{body}</main></body></html>".encode()


def test_a_pages_title_tag_names_it_when_no_one_heading_heads_it() -> None:
    page = html("<h1>1. Introduction</h1><p>An atomic commit either happens completely or not at all.</p>"
                "<h1>2. Hardware Assumptions</h1><p>Disks write in sectors of 512 bytes or more.</p>",
                "Atomic Commit In SQLite")  # fmt: skip
    document = parse_bytes(page, name="sqlite-atomiccommit.html", stem="sqlite-atomiccommit", suffix=".html")
    assert document.title == "Atomic Commit In SQLite" and document.has_title
    assert [b.headings for b in document.blocks] == [("1 Introduction",), ("2 Hardware Assumptions",)]


def test_a_sphinx_page_loses_its_permalink_signs_and_its_sites_name() -> None:
    document = read_source(str(DATA / "fidelity" / "python-tutorial-controlflow.html"))
    assert document.title == "4 More Control Flow Tools"
    labels = {h for b in document.blocks for h in b.headings}
    assert "4.3 The range() Function" in labels
    assert not [h for h in labels if "¶" in h or h.endswith(".")]


def test_a_markdown_file_of_many_sections_is_not_named_after_its_first(tmp_path: Path) -> None:
    text = "\n\n".join(f"# Section {i}\n\nThe section {i} text states a fact of its own." for i in range(13))
    document = parse_bytes(text.encode(), name="notes.md", stem="notes", suffix=".md")
    assert not document.has_title and document.title == "notes"
    (tmp_path / "notes.md").write_text(text)
    with FakeOpenAI() as server:
        proc = run_cli("generate", "notes.md", "--base-url", server.base_url, "--api-key", "k", "--json", "--yes",
                       cwd=tmp_path)  # fmt: skip
    report = json.loads(proc.stdout)
    assert report["deck"] == "A document about things"  # the model's summary names it


def test_one_top_heading_over_the_whole_text_is_its_title() -> None:
    one = parse_bytes(b"# Glaciers\n\nIce moves.\n\n## Moraines\n\nDebris.\n", name="g.md", stem="g", suffix=".md")
    assert one.title == "Glaciers"
    late = parse_bytes(b"Some words first.\n\n# Glaciers\n\nIce moves.\n", name="g.md", stem="g", suffix=".md")
    assert not late.has_title
    reference = read_source(str(DATA / "fidelity" / "python-simple-statements.txt"))
    assert reference.title == "Simple statements"


def test_a_models_title_never_carries_the_prompts_delimiters(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("\n\n".join(f"# Part {i}\n\nThe part {i} text." for i in range(3)))

    def echoing(body):
        return {"title": "<<<DOCUMENT Welcome to the notes", "summary": "DOCUMENT>>> Notes."}

    with FakeOpenAI(summary=echoing) as server:
        proc = run_cli("generate", "notes.md", "--base-url", server.base_url, "--api-key", "k", "--json", "--yes",
                       cwd=tmp_path)  # fmt: skip
    assert json.loads(proc.stdout)["deck"] == "Welcome to the notes"


def test_a_weak_models_placeholder_title_is_not_a_title() -> None:
    from mkflash_tui.core.parsing import parse_summary

    assert parse_summary('{"title": ":title", "summary": "x"}', "notes").title == "notes"
    assert parse_summary('{"title": "Rust (programming)", "summary": "x"}', "notes").title == "Rust (programming)"


def test_sections_of_a_sphinx_page_are_labelled_without_permalinks(tmp_path: Path) -> None:
    path = DATA / "fidelity" / "python-tutorial-controlflow.html"
    proc = run_cli("generate", str(path), "-o", str(tmp_path / "t.apkg"), "--chunk-tokens", "400")
    assert proc.returncode == 0, proc.stderr
    assert "¶" not in proc.stderr and "4.3 The range() Function" in proc.stderr


def test_sections_keep_whole_numbers() -> None:
    document = parse_bytes(b"# 2024 in review\n\nA year.\n", name="y.md", stem="y", suffix=".md")
    assert document.title == "2024 in review"


def test_many_sections_in_text_without_a_title_have_none() -> None:
    document = parse_bytes(sections(3).replace("# Test Document\n\n", "").encode(), name="t.md", stem="t",
                           suffix=".md")  # fmt: skip
    assert not document.has_title


# ---------------------------------------------------------------- numbers that say what happened


def test_ctrl_c_in_a_headless_run_says_what_was_done_and_how_to_go_on(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from fake_openai import chunk_of

    (tmp_path / "n.md").write_text(sections(10))
    with FakeOpenAI() as server:
        late = server.hold(lambda body: chunk_of(body) is not None and "part 0 " not in chunk_of(body)
                           and "part 1 " not in chunk_of(body))  # fmt: skip
        env = {k: v for k, v in __import__("os").environ.items() if not k.endswith("API_KEY")}
        proc = subprocess.Popen([sys.executable, "-m", "mkflash_tui", "generate", "n.md", "--base-url",
                                 server.base_url, "--api-key", "k", "--chunk-tokens", "120", "--yes"],
                                cwd=tmp_path, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
        assert late.wait_arrived(8, timeout=30)
        deadline = time.monotonic() + 10
        while len([b for b in server.requests if chunk_of(b)]) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the two free chunks are answered and committed
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    [line] = [line for line in stderr.splitlines() if "interrupted:" in line]
    import re

    total = int(stderr.split(" chunks with ")[0].rsplit(" ", 1)[1])
    done = int(re.search(r"interrupted: (\d+) of (\d+) chunks done", line).group(1))
    assert 2 <= done < total and f"of {total} chunks done" in line
    assert "run the same command again to continue" in line
    assert "mkflash-tui: wrote" not in stderr and f"{total}/{total} chunks" not in stderr  # nothing says it finished
    listing = run_cli("sessions", cwd=tmp_path)
    assert f" {done}/{total} " in listing.stdout


def test_the_live_bar_never_counts_cancelled_chunks_as_done() -> None:
    import io

    from mkflash_tui.config import Settings
    from mkflash_tui.core.models import ChunkState
    from mkflash_tui.headless import Progress
    from mkflash_tui.job import prepare

    job = prepare(Settings(chunk_tokens=120, overlap_tokens=0), parse_bytes(sections(6).encode(), name="t.md",
                                                                           stem="t", suffix=".md"))  # fmt: skip
    run = job.make_run()
    statuses = list(run.status.values())
    statuses[0].state = ChunkState.DONE
    for status in statuses[1:]:
        status.state = ChunkState.CANCELLED
    stream = io.StringIO()
    Progress(run, stream, live=True)._draw(force=True)
    assert f" 1/{len(statuses)} chunks" in stream.getvalue()
    assert f"{len(statuses) - 1} cancelled" in stream.getvalue()


def test_every_count_adds_up_from_the_chunks_to_the_deck(tmp_path: Path) -> None:
    """Two sections with the same text make the same cards: the second chunk's are repeats. Each END line counts
    what its chunk adds to the deck, and the last line accounts for every card made."""
    import re

    text = sections(4) + "\n## Again\n\n" + sections(1).split("## Part 0\n\n", 1)[1]
    (tmp_path / "n.md").write_text(text)
    with FakeOpenAI() as server:
        proc = run_cli("generate", "n.md", "--base-url", server.base_url, "--api-key", "k", "--chunk-tokens", "120",
                       "--overlap-tokens", "0", "--yes", "--json", "--concurrency", "1", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    kept = [int(m.group(1)) for m in re.finditer(r"END chunk \d+/\d+: (\d+) cards?", proc.stderr)]
    assert sum(kept) == report["cards"]
    assert report["left_out"]["repeats"] >= 1
    assert report["cards_made"] == report["cards"] + report["left_out"]["repeats"] + report["left_out"]["broken"]
    written = next(line for line in proc.stderr.splitlines() if "wrote" in line)
    assert f"wrote {report['cards']} notes" in written and f"{report['cards_made']} cards made" in written
    assert f"{report['left_out']['repeats']} repeats of earlier cards" in written


def test_one_of_a_thing_is_said_in_the_singular(tmp_path: Path) -> None:
    (tmp_path / "n.md").write_text("# One\n\nA moraine is an accumulation of debris carried by a glacier.\n")
    with FakeOpenAI(cards=lambda body: {"cards": [{"type": "basic", "front": "What is a moraine?",
                                                   "back": "Glacial debris", "quote": ""}]}) as server:  # fmt: skip
        proc = run_cli("generate", "n.md", "--base-url", server.base_url, "--api-key", "k", "--yes", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "1 chunk with" in proc.stderr and "wrote 1 note to" in proc.stderr and "1 card made" in proc.stderr
    assert "1 chunks" not in proc.stderr and "1 notes" not in proc.stderr and "1 cards" not in proc.stderr


# ---------------------------------------------------------------- behaviour a user expects


def test_a_deck_this_session_wrote_is_replaced_on_the_next_run(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text(sections(3))
    first = run_cli("generate", "notes.md", "-o", "notes.apkg", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (tmp_path / "notes.md").write_text(sections(4))  # edited
    second = run_cli("generate", "notes.md", "-o", "notes.apkg", "--json", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["exit_code"] == 0
    (tmp_path / "notes.apkg").write_bytes(b"changed by hand")
    third = run_cli("generate", "notes.md", "-o", "notes.apkg", "--json", cwd=tmp_path)
    assert third.returncode == 2 and "already exists" in third.stderr and "--force" in third.stderr
    assert json.loads(third.stdout)["exit_code"] == 2  # --json prints its report on every exit
    (tmp_path / "other.md").write_text(sections(2, prefix="Other"))
    (tmp_path / "other.apkg").write_bytes((tmp_path / "notes.apkg").read_bytes())
    foreign = run_cli("generate", "other.md", "-o", "notes.apkg", cwd=tmp_path)
    assert foreign.returncode == 2  # a file another session wrote is not this one's to replace


def test_json_reports_an_unreadable_input_too(tmp_path: Path) -> None:
    proc = run_cli("generate", "missing.md", "--json", cwd=tmp_path)
    assert proc.returncode == 2
    report = json.loads(proc.stdout)
    assert report["exit_code"] == 2 and "missing.md" in report["error"]


def test_a_run_leaves_nothing_in_the_temp_directory(tmp_path: Path) -> None:
    (tmp_path / "n.md").write_text(sections(2))
    temp, cache = tmp_path / "tmp", tmp_path / "cache"
    temp.mkdir()
    with FakeOpenAI() as server:  # gpt-4o-mini: o200k_base, which cannot be downloaded here
        proc = run_cli("generate", "n.md", "--base-url", server.base_url, "--api-key", "k", "--model", "gpt-4o-mini",
                       "--yes", cwd=tmp_path, env={"TMPDIR": str(temp), "MKFLASH_CACHE_DIR": str(cache)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert list(temp.iterdir()) == []
    assert (cache / "tiktoken-o200k_base.failed").exists()  # remembered where a user's cache belongs


async def test_ctrl_c_in_the_app_says_how_to_quit_in_plain_words(tmp_path: Path, monkeypatch) -> None:
    from tui_support import app_settings, wait_for

    from mkflash_tui.tui.app import make_app

    monkeypatch.chdir(tmp_path)
    app = make_app(app_settings())
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: list(app._notifications), what="the toast")
        [toast] = list(app._notifications)
    assert toast.message == "Press ctrl+q to quit the app" and "[b]" not in toast.message


def test_a_run_refused_before_any_chunk_leaves_no_session(tmp_path: Path) -> None:
    (tmp_path / "n.md").write_text(sections(3))
    with FakeOpenAI(api_key="the-right-one") as server:
        proc = run_cli("generate", "n.md", "--base-url", server.base_url, "--api-key", "sk-wrong-key-0123",
                       "--yes", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 3
    assert "no sessions yet" in run_cli("sessions", cwd=tmp_path).stdout


async def test_the_sessions_dialog_shows_where_each_came_from_and_removes_one(tmp_path: Path, monkeypatch) -> None:
    from tui_support import app_settings, screen_text, wait_for

    from mkflash_tui.core.store import open_store
    from mkflash_tui.tui.app import make_app
    from mkflash_tui.tui.screens.dialogs import SessionsScreen

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.md").write_text(sections(2))
    (tmp_path / "b.md").write_text(sections(2, prefix="Other"))
    assert run_cli("generate", "a.md", cwd=tmp_path).returncode == 0
    assert run_cli("generate", "b.md", cwd=tmp_path).returncode == 0
    app = make_app(app_settings())
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen), what="the sessions")
        text = await screen_text(pilot)
        assert "/a.md" in text and "/b.md" in text and "Delete removes it" in text, text
        await pilot.press("delete")
        assert "Delete again removes" in await screen_text(pilot)
        await pilot.press("delete")
        await pilot.pause()
        assert app.screen.query_one("#sessions").row_count == 1
    store = open_store(None)
    try:
        assert len(store.sessions()) == 1
    finally:
        store.close()
