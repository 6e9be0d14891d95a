"""Hostile input through the real command: one clear sentence and exit 2, or handled correctly; never a traceback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli, sections
from fake_openai import FakeOpenAI, Fault, chunk_of
from test_sources import make_pdf


def one_sentence(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


REFUSED = [
    ("empty.txt", b"", "empty.txt has no text to make cards from"),
    ("blank.md", b"  \n\n\t \n", "blank.md has no text to make cards from"),
    ("blob.txt", bytes(range(256)) * 40, "blob.txt looks like a binary file"),
    ("scan.pdf", make_pdf([""]), "scan.pdf has no text layer"),
    ("broken.pdf", b"%PDF-1.4\nnot really", "broken.pdf"),
]


@pytest.mark.parametrize("name,data,message", REFUSED, ids=[r[0] for r in REFUSED])
def test_unusable_files_get_one_sentence_and_exit_2(tmp_path: Path, name: str, data: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(data)
    proc = run_cli("generate", name, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    one_sentence(proc.stderr)


def test_a_directory_a_missing_file_and_a_missing_output_folder(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "ok.md").write_text(sections(1))
    for args, message in (
        (["notes"], "notes: no documents to read there"),
        (["nowhere.md"], "nowhere.md: no such file"),
        (["ok.md", "-o", "no/such/folder/deck.apkg"], "the folder no/such/folder does not exist"),
        (["ok.md", "-o", "notes"], "notes is a directory; give a file name"),
    ):
        proc = run_cli("generate", *args, cwd=tmp_path)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        one_sentence(proc.stderr)


def test_a_file_without_permission_as_the_os_reports_it(tmp_path: Path) -> None:
    # Root (as in CI here) reads anything, so make the OS refuse: run the CLI with os.access saying no.
    (tmp_path / "locked.md").write_text(sections(1))
    code = ("import os, sys; os.access = lambda *a, **k: False; from mkflash_tui.cli import main; "
            "sys.exit(main(['generate', 'locked.md']))")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "locked.md: permission denied" in proc.stderr
    one_sentence(proc.stderr)


def test_latin1_and_cp1252_files_make_cards(tmp_path: Path) -> None:
    text = "# Café\n\n" + ("La façade du café déjà célèbre attire les touristes. Le naïf garçon sert. "
                            "La photosynthèse a lieu dans les chloroplastes des feuilles. ") * 30  # fmt: skip
    (tmp_path / "fr.txt").write_bytes(text.encode("cp1252"))
    proc = run_cli("generate", "fr.txt", "-o", "fr.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    cards = json.loads((tmp_path / "fr.json").read_text())["cards"]
    assert cards and any("photosynthèse" in c["front"] + c["back"] + c["quote"] for c in cards)


def test_a_1_mb_line_without_spaces(tmp_path: Path) -> None:
    (tmp_path / "line.txt").write_text("x" * 1_000_000)
    proc = run_cli("generate", "line.txt", "--dry-run", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["chunks"] >= 80  # ~125k tokens cut within the 1500-token bound, nothing refused


def test_html_scripts_and_styles_never_reach_a_card(tmp_path: Path) -> None:
    page = ("<html><head><title>Cells</title><style>body{color:red}</style><script>alert('pwned')</script></head>"
            "<body><h1>Cells</h1><p>" + "The mitochondrion makes energy for the cell from sugar and oxygen. " * 8
            + "</p><script>document.write('evil')</script><noscript>enable js</noscript></body></html>")  # fmt: skip
    (tmp_path / "page.html").write_text(page)
    proc = run_cli("generate", "page.html", "-o", "page.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    deck = (tmp_path / "page.json").read_text()
    assert "mitochondrion" in deck and "pwned" not in deck and "evil" not in deck and "color:red" not in deck


def test_escape_sequences_in_a_file_a_model_and_a_server_error_never_reach_stderr_or_the_deck(tmp_path: Path) -> None:
    """A terminal log's colours, a title-setting OSC, a bell: gone from the chunks, the cards and every line printed."""
    body = " ".join(f"Sentence {j} says \x1b[1;31mlava\x1b[0m is hot \x07 in case {j}." for j in range(20))
    (tmp_path / "log.txt").write_text(f"# Build \x1b]0;pwned\x07log\n\n{body}\n\n## Part two\n\n{body}\n")
    failing = Fault(status=400, message="bad \x1b]52;c;ZXZpbA==\x07request \x1b[2Jhere")
    cards = lambda body: {"cards": [{"type": "basic", "front": "What is \x1b[31mhot\x1b[0m?",  # noqa: E731
                                     "back": "Lava\x07", "quote": "lava is hot"}]}  # fmt: skip
    chunks: list[str] = []

    def fault_for(number: int, body: dict) -> Fault | None:  # the first chunk's request fails, with its escapes
        if chunk_of(body) is not None:
            chunks.append(chunk_of(body))
        return failing if chunks and chunk_of(body) == chunks[0] else None

    with FakeOpenAI(cards=cards, fault_for=fault_for) as server:
        proc = run_cli("generate", "log.txt", "--base-url", server.base_url, "--api-key", "sk-test", "--chunk-tokens",
                       "200", "--overlap-tokens", "0", "-o", "log.json", cwd=tmp_path)  # fmt: skip
        sent = " ".join(json.dumps(body) for body in server.requests)
    assert proc.returncode == 1 and "bad request here" in proc.stderr, proc.stderr
    control = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
    assert not control.search(proc.stderr.replace("\r\x1b[K", "")), repr(proc.stderr)  # only our own progress line
    assert "lava is hot" in sent and "\\u001b" not in sent and "\\u0007" not in sent  # nor to the model
    deck = json.loads((tmp_path / "log.json").read_text())
    assert deck["cards"] and all(c["front"] == "What is hot?" and c["back"] == "Lava" for c in deck["cards"])


def test_a_20_mb_text_asks_before_spending(tmp_path: Path) -> None:
    paragraph = "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen in the leaf. " * 20
    (tmp_path / "big.txt").write_text((paragraph + "\n\n") * (20 * 2**20 // (len(paragraph) + 2)))
    assert (tmp_path / "big.txt").stat().st_size >= 20 * 2**20 - 4096
    with FakeOpenAI() as server:
        base = ["generate", "big.txt", "--base-url", server.base_url, "--api-key", "k", "-o", "big.apkg"]
        asked = run_cli(*base, cwd=tmp_path, timeout=120)
        capped = run_cli(*base, "--max-cost", "0.05", cwd=tmp_path, timeout=120)
    assert asked.returncode == 2 and "Pass --yes or --max-cost" in asked.stderr and "estimated $" in asked.stderr
    assert capped.returncode == 2 and "--max-cost" in capped.stderr
    one_sentence(capped.stderr)
    assert server.requests == []  # nothing was sent


def test_deck_names_and_output_paths_with_dots_and_odd_characters(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "ok.md").write_text(sections(2))
    deck = '../../etc/passwd: a <deck> with "quotes" * ? |'
    proc = run_cli("generate", "../ok.md", "--deck", deck, "-o", "../out:*?.json", cwd=tmp_path / "sub")
    assert proc.returncode == 0, proc.stderr
    written = tmp_path / "out:*?.json"  # exactly where the user pointed, nowhere else
    data = json.loads(written.read_text())
    assert data["deck"] == deck and not (tmp_path / "etc").exists()
