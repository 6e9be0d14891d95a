"""The run's calls drawn on a time axis: ``generate --timeline run.svg`` (or ``.html``), parsed back — one bar
per attempt at its times, the waits, repairs and answers from the store, the calls in flight and the ideal."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from conftest import run_cli, sections
from fake_openai import FakeOpenAI, Fault, chunk_of, is_summary

SVG = "{http://www.w3.org/2000/svg}"


def bars(svg: str) -> list[dict]:
    root = ET.fromstring(svg)
    return [dict(r.attrib) for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]


def test_the_timeline_has_a_bar_per_attempt_at_its_times_with_its_waits_repairs_and_cache(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text(sections(4))
    attempts: dict[str, int] = {}

    def faults(number: int, body: dict) -> Fault | None:
        if is_summary(body):
            return None
        which = chunk_of(body) or ""
        attempts[which] = attempts.get(which, 0) + 1
        if "The part 0 fact 0" in which and attempts[which] == 1:
            return Fault(status=429, message="Rate limit reached", headers={"retry-after-ms": "300"})
        if "The part 1 fact 0" in which and attempts[which] == 1:
            return Fault(malformed=True)
        return None

    with FakeOpenAI(latency=0.05, fault_for=faults) as server:
        flags = ("--base-url", server.base_url, "--api-key", "sk-test", "--chunk-tokens", "120", "--overlap-tokens",
                 "0", "--yes", "--json")  # fmt: skip
        first = run_cli("generate", "notes.md", "--timeline", "run.svg", *flags, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        report = json.loads(first.stdout)
        drawn = bars((tmp_path / "run.svg").read_text())
        calls = [b for b in drawn if b["data-kind"] in ("attempt", "repair")]
        assert len(calls) == len([b for b in server.requests if b.get("messages")])  # one bar per request sent
        assert sum(b["data-lane"] == "-1" for b in calls) == 1  # the summary's call
        chunk_lanes = {b["data-lane"] for b in calls if b["data-lane"] != "-1"}
        assert len(chunk_lanes) == report["chunks"]
        for bar in drawn:
            assert 0 <= float(bar["data-start"]) <= float(bar["data-end"])
        limited = sorted((b for b in drawn if b["data-lane"] == "0"), key=lambda b: float(b["data-start"]))
        assert [b["data-kind"] for b in limited] == ["attempt", "wait", "attempt"]
        assert limited[0]["data-outcome"] == "failed" and limited[-1]["data-outcome"] == "answered"
        assert float(limited[1]["data-end"]) - float(limited[1]["data-start"]) >= 0.3  # the Retry-After, waited
        assert float(limited[1]["data-start"]) >= float(limited[0]["data-end"]) - 1e-3
        assert [b["data-kind"] for b in drawn if b["data-lane"] == "1"][-1] == "repair"
        root = ET.fromstring((tmp_path / "run.svg").read_text())
        assert root.find(f"{SVG}line[@class='ideal']") is not None
        assert root.find(f"{SVG}polyline[@class='in-flight']") is not None
        assert "rate limit" in "".join(t.text or "" for t in root.iter(f"{SVG}title")).lower()  # tooltips say why

        again = run_cli("generate", "notes.md", "--timeline", "again.html", *flags, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        page = (tmp_path / "again.html").read_text()
        assert page.startswith("<!DOCTYPE html>") and "http" not in page.replace("http://www.w3.org/2000/svg", "")
        svg = page[page.index("<svg") : page.index("</svg>") + 6]
        assert {b["data-kind"] for b in bars(svg)} == {"cache"} and len(bars(svg)) == report["chunks"]


def test_a_timeline_of_another_kind_is_one_sentence() -> None:
    result = run_cli("generate", "--demo", "--timeline", "run.png")
    assert result.returncode == 2 and "--timeline writes an .svg or an .html file" in result.stderr


def overlap(calls: list[dict]) -> int:
    """The most calls in flight at once among ``calls`` (bars of attempts and repairs)."""
    changes = sorted([(float(b["data-start"]), 1) for b in calls] + [(float(b["data-end"]), -1) for b in calls])
    most = now = 0
    for _, step in changes:  # at one instant an end comes before a start: (t, -1) sorts first
        now += step
        most = max(most, now)
    return most


def test_a_folder_is_one_picture_a_lane_per_document_chunk_on_one_clock(tmp_path: Path) -> None:
    """Both ways a shelf runs — each document sent as it is read, and all read first (--max-cost) — draw every
    document's calls on the first run's clock, named by document, under the one limit they share."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "alpha.md").write_text(sections(3, prefix="Alpha"))
    (notes / "beta.md").write_text(sections(2, prefix="Beta"))
    (notes / "empty.md").write_text("")
    refused: list[int] = []

    def faults(number: int, body: dict) -> Fault | None:
        if not refused and "The beta 1 fact 0" in (chunk_of(body) or ""):
            refused.append(number)
            return Fault(status=429, message="Rate limit reached", headers={"retry-after-ms": "300"})
        return None

    with FakeOpenAI(latency=0.1, fault_for=faults) as server:
        flags = ("--base-url", server.base_url, "--api-key", "sk-test", "--chunk-tokens", "120", "--overlap-tokens",
                 "0", "--concurrency", "2", "--yes", "--json", "-o", "course.apkg")  # fmt: skip
        proc = run_cli("generate", "notes", "--timeline", "shelf.svg", *flags, cwd=tmp_path)
        report = json.loads(proc.stdout)
        assert proc.returncode == 1, proc.stderr  # empty.md skipped
        assert "the run's calls drawn in shelf.svg" in proc.stderr
        svg = (tmp_path / "shelf.svg").read_text()
        drawn = bars(svg)
        calls = [b for b in drawn if b["data-kind"] in ("attempt", "repair")]
        assert len(calls) == len(server.requests)  # one bar per request, of every document
        documents = report["documents"]
        for number, document in enumerate(documents):
            mine = [b for b in calls if b["data-document"] == str(number)]
            assert sum(b["data-lane"] == "-1" for b in mine) == 1  # its summary
            assert len({b["data-lane"] for b in mine} - {"-1"}) == document["chunks"]
        assert overlap(calls) <= 2  # one limit across the documents, as the server counted it
        assert server.peak_in_flight <= 2
        beta = next(i for i, d in enumerate(documents) if d["input"].endswith("beta.md"))
        root = ET.fromstring(svg)
        lane = sorted((r for r in root.iter(f"{SVG}rect") if r.get("data-document") == str(beta)
                       and r.get("data-lane") == "1"), key=lambda r: float(r.get("data-start")))  # fmt: skip
        assert [r.get("data-outcome") for r in lane if r.get("data-kind") == "attempt"] == ["failed", "answered"]
        waited = [r for r in lane if "retry-after" in r.find(f"{SVG}title").text]  # the 429's Retry-After
        assert len(waited) == 1 and float(waited[0].get("data-end")) - float(waited[0].get("data-start")) >= 0.3
        names = [t.text for t in root.iter(f"{SVG}text")]
        assert str(Path("notes") / "beta.md") + ": chunk 2" in names and "2 documents" in names[0]
        wall = report["wall_seconds"]
        assert all(0 <= float(b["data-start"]) <= float(b["data-end"]) <= wall for b in drawn)

        read_first = run_cli("generate", "notes", "--timeline", "again.html", "--max-cost", "5", *flags,
                             "--fresh", cwd=tmp_path)  # fmt: skip
        assert read_first.returncode == 1, read_first.stderr
        page = (tmp_path / "again.html").read_text()
        again = bars(page[page.index("<svg") : page.index("</svg>") + 6])
        assert {b["data-document"] for b in again} == {"0", "1"}
        assert overlap([b for b in again if b["data-kind"] in ("attempt", "repair")]) <= 2
