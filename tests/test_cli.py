"""The real `mkflash-tui generate` process: flags, reports and every exit code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from anki_check import AnkiCollection
from conftest import run_cli, sections
from fake_openai import FakeOpenAI, Fault, chunk_of

REPORT_KEYS = {
    "chunks", "cards", "failed_chunks", "failures", "requests", "prompt_tokens", "completion_tokens",
    "estimated_cost_usd", "cost_usd", "wall_seconds", "output",
}  # fmt: skip


def online(server: FakeOpenAI, *extra: str) -> list[str]:
    return ["--base-url", server.base_url, "--api-key", "sk-cli-test", "--model", "test-model", *extra]


def test_offline_by_default_writes_an_importable_deck(tmp_path: Path) -> None:
    src = tmp_path / "notes.md"
    src.write_text(sections(3))
    proc = run_cli("generate", str(src), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report.keys() >= REPORT_KEYS
    assert report["provider"] == "offline" and report["requests"] == 0 and report["failed_chunks"] == 0
    assert report["output"] == "notes.apkg" and (tmp_path / "notes.apkg").exists()
    assert "offline generator" in proc.stderr
    anki = AnkiCollection(tmp_path / "anki")
    anki.import_apkg(tmp_path / "notes.apkg")
    notes = anki.notes()
    assert len(notes) == report["cards"] > 0
    assert {d for n in notes for d in n.decks} == {"Test Document"}  # the document's own title
    anki.close()


def test_online_json_report_and_stdin(tmp_path: Path, server: FakeOpenAI) -> None:
    out = tmp_path / "deck.apkg"
    proc = run_cli("generate", "-", "-o", str(out), "--json", "--chunk-tokens", "200", *online(server),
                   input=sections(4).encode())  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["provider"] == "openai"
    assert report["requests"] == len(server.requests) == report["chunks"] + 1
    assert report["prompt_tokens"] > 0 and report["completion_tokens"] > 0
    assert report["cost_usd"] == 0.0  # an unknown model on this machine: free (a hosted one: unknown, never made up)
    assert report["wall_seconds"] > 0 and report["output"] == str(out)
    assert all(h.get("authorization") == "Bearer sk-cli-test" for h in server.headers)
    assert "sk-cli-test" not in proc.stdout + proc.stderr


def test_dry_run_sends_nothing(tmp_path: Path, server: FakeOpenAI) -> None:
    src = tmp_path / "n.md"
    src.write_text(sections(5))
    proc = run_cli("generate", str(src), "--dry-run", "--json", "--model", "gpt-4o-mini", "--api-key", "sk-x",
                   "--base-url", server.base_url)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["chunks"] >= 1 and report["input_tokens"] > 0 and report["estimated_cost_usd"] > 0
    assert server.requests == [] and not (tmp_path / "n.apkg").exists()


def test_some_chunks_fail_exit_1_deck_still_written(tmp_path: Path) -> None:
    src = tmp_path / "n.md"
    src.write_text(sections(5))
    with FakeOpenAI() as server:
        server.fault_for = lambda n, body: (
            Fault(status=400, message="bad chunk") if "part 2 fact" in (chunk_of(body) or "") else None
        )
        proc = run_cli("generate", str(src), "-o", str(tmp_path / "d.apkg"), "--json", "--chunk-tokens", "150",
                       *online(server))  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["failed_chunks"] >= 1 and "bad chunk" in report["failures"][0]["reason"]
    assert report["cards"] > 0 and (tmp_path / "d.apkg").exists()
    assert "chunks failed" in proc.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["generate", "missing.md"], "no such file"),
        (["generate", "nothing"], "nothing: no documents to read there"),
        (["generate", "empty.md"], "no text"),
        (["generate", "blob.bin"], "binary"),
        (["generate", "ok.md", "--concurrency", "0"], "at least 1"),
        (["generate", "ok.md", "--chunk-tokens", "100", "--overlap-tokens", "80"], "at most half"),
        (["generate", "ok.md", "--provider", "openai"], "needs an API key"),
        (["generate"], "give a file"),
    ],
)
def test_bad_usage_exit_2_one_sentence(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "empty.md").write_text("  \n")
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "ok.md").write_text(sections(1))
    (tmp_path / "nothing").mkdir()  # a folder with no document in it
    (tmp_path / "nothing" / "figure.png").write_bytes(b"\x89PNG")
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 3


def test_existing_output_needs_force(tmp_path: Path) -> None:
    (tmp_path / "ok.md").write_text(sections(2))
    (tmp_path / "ok.apkg").write_bytes(b"precious")
    proc = run_cli("generate", "ok.md", cwd=tmp_path)
    assert proc.returncode == 2 and "already exists" in proc.stderr
    assert (tmp_path / "ok.apkg").read_bytes() == b"precious"
    assert run_cli("generate", "ok.md", "--force", cwd=tmp_path).returncode == 0
    assert (tmp_path / "ok.apkg").read_bytes() != b"precious"


def test_max_cost_refuses_before_sending(tmp_path: Path, server: FakeOpenAI) -> None:
    (tmp_path / "ok.md").write_text(sections(20))
    proc = run_cli("generate", "ok.md", "--max-cost", "0.000001", "--base-url", server.base_url, "--api-key", "k",
                   "--model", "gpt-4o", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2 and "--max-cost" in proc.stderr
    assert server.requests == []


@pytest.mark.parametrize(
    "server_kwargs,fault,message",
    [
        ({"api_key": "right-key"}, None, "rejected the API key from --api-key"),
        ({"models": {"other-model"}}, None, "does not know model 'test-model'"),
        ({}, Fault(status=429, code="insufficient_quota", message="You exceeded your current quota"), "no quota"),
    ],
)
def test_refused_runs_stop_once_exit_3(tmp_path: Path, server_kwargs, fault, message) -> None:
    (tmp_path / "ok.md").write_text(sections(10))
    with FakeOpenAI(**server_kwargs, fault_for=(lambda n, b: fault) if fault else None) as server:
        proc = run_cli("generate", "ok.md", "--chunk-tokens", "120", *online(server), cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert message in proc.stderr
    assert proc.stderr.count(message) == 1  # one message, not one per chunk
    assert len(server.requests) <= 2
    assert "Traceback" not in proc.stderr


def test_ctrl_c_writes_what_finished_exit_130(tmp_path: Path) -> None:
    (tmp_path / "ok.md").write_text(sections(6))
    with FakeOpenAI() as server:
        first = "part 0 fact"
        hold = server.hold(lambda body: chunk_of(body) is not None and first not in chunk_of(body))
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        command = [sys.executable, "-m", "mkflash_tui", "generate", "ok.md", "--json", "--chunk-tokens", "120"]
        proc = subprocess.Popen(
            [*command, *online(server)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert hold.wait_arrived(3, timeout=30)
        # Progress goes to stderr line by line (not a terminal): the unheld first chunk's END line says its
        # answer is in and committed; only held requests are left in flight.
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("END chunk"):
                break
        assert seen and seen[-1].startswith("END chunk 1/"), seen
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
        hold.release()
    assert proc.returncode == 130, stderr
    report = json.loads(stdout)
    assert report["cards"] > 0 and report["output"] == "ok.apkg"
    anki = AnkiCollection(tmp_path / "anki")
    anki.import_apkg(tmp_path / "ok.apkg")
    assert len(anki.notes()) == report["cards"]
    anki.close()


def test_expensive_run_asks_first_and_yes_starts_it(tmp_path: Path) -> None:
    (tmp_path / "big.md").write_text(sections(400, sentences=40))
    with FakeOpenAI() as server:
        args = ["generate", "big.md", "--base-url", server.base_url, "--api-key", "k", "--model", "gpt-4o"]
        proc = run_cli(*args, cwd=tmp_path)
        assert proc.returncode == 2 and "Pass --yes or --max-cost" in proc.stderr and "estimated $" in proc.stderr
        assert server.requests == []
        proc = run_cli(*args, "--yes", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["estimated_cost_usd"] > 0.5 and report["cost_usd"] is not None


def test_the_app_checks_its_input_before_opening(tmp_path: Path) -> None:
    (tmp_path / "ok.md").write_text(sections(1))
    (tmp_path / "empty").mkdir()
    for args, message in (
        (["missing.md"], "missing.md: no such file."),
        (["empty"], "empty: no documents to read there"),
        (["ok.md", "missing.md"], "missing.md does not exist."),
        (["."], "the app needs a terminal"),  # a folder is a shelf: read in the app
        (["--demo", "."], "give either files or --demo"),
        (["-"], "for stdin use: mkflash-tui generate -"),
        (["ok.md"], "the app needs a terminal"),  # run_cli has no terminal
    ):
        proc = run_cli(*args, cwd=tmp_path)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_a_tiny_chunk_size_with_the_demo_names_the_flag_the_user_gave(tmp_path: Path) -> None:
    proc = run_cli("generate", "--demo", "--chunk-tokens", "10", cwd=tmp_path)
    assert proc.returncode == 2 and "--chunk-tokens must be at least 64" in proc.stderr, proc.stderr
