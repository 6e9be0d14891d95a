"""Each real server's dialect (tests/dialects.py), end to end through the real AsyncOpenAI client and the CLI.

What is checked is what a user of that server meets: how many requests a refusal costs, whether a cut stream is
ever taken for an answer, and the one sentence a refusal becomes.
"""

from __future__ import annotations

import json

import pytest
from conftest import run_cli, sections
from dialects import LlamaCppPython, LlamaServer, LmStudio, Ollama, Vllm
from fake_openai import FakeOpenAI, Fault, chunk_of, is_summary

from mkflash_tui.config import Settings
from mkflash_tui.core.models import ChunkFinished, ChunkRetrying, Notice, Summary
from mkflash_tui.core.sources import parse_bytes
from mkflash_tui.core.store import open_store
from mkflash_tui.job import prepare


def make_job(server: FakeOpenAI, text: str, **overrides):
    settings = Settings(provider="openai", model="test-model", base_url=server.base_url, api_key="sk-test",
                        chunk_tokens=120, overlap_tokens=0, concurrency=4)  # fmt: skip
    for key, value in overrides.items():
        setattr(settings, key, value)
    document = parse_bytes(text.encode(), name="t.md", stem="t", suffix=".md")
    return prepare(settings, document)


def formats(server: FakeOpenAI) -> list[str | None]:
    return [(b.get("response_format") or {}).get("type") for b in server.requests]


async def run_to_end(job, **kwargs):
    run = job.make_run(**kwargs)
    events = []
    run.subscribe(events.append)
    await run.run()
    await run.aclose()
    return run, events


# ---------------------------------------------------------------- llama-cpp-python


async def test_llama_cpp_python_refuses_json_schema_with_a_500_and_costs_one_request() -> None:
    with FakeOpenAI(dialect=LlamaCppPython()) as server:
        job = make_job(server, sections(5))
        run, events = await run_to_end(job, stream=False)
    assert run.counts()["done"] == len(job.chunks) and run.cards()
    assert formats(server).count("json_schema") == 1 and server.refused == [0]  # the summary, and only it
    assert set(formats(server)[1:]) == {"json_object"}
    assert run.provider.capabilities.format_mode == "json_object_schema"
    assert all("schema" in b["response_format"] for b in server.requests[1:])  # the schema goes along
    assert run.stats.requests == len(server.requests) == len(job.chunks) + 2  # no attempt spent on retries
    retry_reasons = [e.reason for e in events if isinstance(e, ChunkRetrying)]
    assert not retry_reasons  # the summary absorbed the refusal


async def test_a_refusal_costs_one_request_even_when_every_chunk_goes_at_once() -> None:
    """No summary call to learn from (a kept summary): the first chunk call probes, the others wait for it."""
    with FakeOpenAI(dialect=LlamaCppPython(slots=None)) as server:
        job = make_job(server, sections(6), concurrency=8)
        job.kept_summary = Summary("T", "S")
        run, events = await run_to_end(job, stream=False)
    assert run.counts()["done"] == len(job.chunks)
    assert formats(server).count("json_schema") == 1 and len(server.refused) == 1
    assert not server.summary_requests()
    # The refused call was sent again at once; it counted no failed attempt.
    retries = [e for e in events if isinstance(e, ChunkRetrying)]
    assert len(retries) == 1 and retries[0].wait == 0 and "json_schema" in retries[0].reason


async def test_the_calls_that_waited_for_the_probe_go_together_once_it_is_answered() -> None:
    with FakeOpenAI(latency=0.3) as server:
        job = make_job(server, sections(8), concurrency=16)
        job.kept_summary = Summary("T", "S")
        run, _ = await run_to_end(job, stream=False)
    assert run.counts()["done"] == len(job.chunks) >= 6
    assert server.peak_in_flight == len(job.chunks) - 1  # one probe, then all the rest at once (not in turn)


async def test_the_servers_error_text_is_one_line_without_its_file_paths() -> None:
    with FakeOpenAI(dialect=LlamaCppPython(slots=None)) as server:
        job = make_job(server, sections(2), concurrency=2)
        job.kept_summary = Summary("T", "S")
        _, events = await run_to_end(job, stream=False)
    reason = next(e.reason for e in events if isinstance(e, ChunkRetrying))
    assert "response_format.type: Input should be 'text' or 'json_object'" in reason
    assert "\n" not in reason and "app.py" not in reason and "site-packages" not in reason and "File" not in reason


def test_what_worked_is_kept_per_server_and_model_and_fresh_asks_again(tmp_path) -> None:
    (tmp_path / "n.md").write_text(sections(4))
    with FakeOpenAI(dialect=LlamaCppPython()) as server:
        args = ("generate", "n.md", "--base-url", server.base_url, "--model", "m", "--chunk-tokens", "120",
                "--json", "--yes", "--force")  # fmt: skip
        first = run_cli(*args, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["server"] == {"format_mode": "json_object_schema", "one_at_a_time": False,
                                                      "learned": "this run"}  # fmt: skip
        assert formats(server).count("json_schema") == 1
        (tmp_path / "n.md").write_text(sections(4, prefix="Other"))  # new text: every chunk is sent again
        second = run_cli(*args, cwd=tmp_path)
        assert second.returncode == 0, second.stderr
        assert json.loads(second.stdout)["server"]["learned"] == "an earlier run"
        assert formats(server).count("json_schema") == 1  # nothing spent on finding it out again
        third = run_cli(*args, "--fresh", cwd=tmp_path)
        assert third.returncode == 0, third.stderr
        assert formats(server).count("json_schema") == 2  # --fresh forgets what was learned
        # Another model on the same server is another entry.
        fourth = run_cli(*[a if a != "m" else "m2" for a in args], cwd=tmp_path)
        assert fourth.returncode == 0 and formats(server).count("json_schema") == 3


async def test_streams_cut_when_another_request_arrives_are_never_answers() -> None:
    """llama-cpp-python ends a running stream with [DONE] and no finish_reason whenever another request waits.
    Those answers are retried, the run goes to one request at a time and says so once, and the cards are
    exactly those of a server that never cuts."""
    text = sections(6, sentences=10)
    with FakeOpenAI(dialect=LlamaCppPython(), chars_per_delta=6, delta_delay=0.004) as server:
        job = make_job(server, text, concurrency=4)
        run, events = await run_to_end(job, stream=True)
        cut = server.cut_streams
    with FakeOpenAI(dialect=LlamaCppPython(interrupt_requests=False)) as calm:
        reference, _ = await run_to_end(make_job(calm, text, concurrency=4), stream=True)
    assert cut >= 1
    assert run.counts()["done"] == len(job.chunks)
    notices = [e.text for e in events if isinstance(e, Notice)]
    assert len(notices) == 1 and "--interrupt_requests False" in notices[0] and "one request at a time" in notices[0]
    assert run.limiter.limit == 1
    assert [(c.front, c.back) for c in run.cards()] == [(c.front, c.back) for c in reference.cards()]
    assert not [s for s in run.status.values() if s.state.value == "failed"]


def test_one_request_at_a_time_is_remembered_for_the_next_run(tmp_path) -> None:
    from mkflash_tui.core.providers.base import Capabilities
    from mkflash_tui.core.store import cache_key

    store = open_store(None)
    try:
        with FakeOpenAI(dialect=LlamaCppPython()) as server:
            identity = ("openai", server.base_url, "m")
            store.save_server_facts(cache_key("server", *identity), {"format_mode": "json_object_schema",
                                                                     "one_at_a_time": True})  # fmt: skip
            (tmp_path / "n.md").write_text(sections(3))
            proc = run_cli("generate", "n.md", "--base-url", server.base_url, "--model", "m", "--chunk-tokens",
                           "120", "--yes", cwd=tmp_path)  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            assert "one request at a time (as learned in an earlier run)" in proc.stderr
            assert server.peak_in_flight == 1 and formats(server).count("json_schema") == 0
        assert Capabilities.from_dict(store.server_facts(cache_key("server", *identity))).one_at_a_time
    finally:
        store.close()


# ---------------------------------------------------------------- real model output


@pytest.mark.parametrize("content", ["", "   \n", '{"type": "flashcard", "front": "", "back": "", "quote": ""}',
                                     '{"cards": []}'])  # fmt: skip
async def test_an_empty_or_cardless_answer_is_no_cards_said_once_never_retried(content: str) -> None:
    with FakeOpenAI(fault_for=lambda n, body: Fault(content=content) if chunk_of(body) else None) as server:
        job = make_job(server, sections(3))
        run, events = await run_to_end(job, stream=False)
    assert run.counts()["done"] == len(job.chunks) and run.cards() == []
    assert len(server.chunk_requests()) == len(job.chunks)  # one request each: no repair, no retry
    finished = [e for e in events if isinstance(e, ChunkFinished)]
    assert len(finished) == len(job.chunks) and all(e.note for e in finished)
    assert not [e for e in events if isinstance(e, ChunkRetrying)]


async def test_a_single_card_object_is_one_card() -> None:
    card = {"type": "basic", "front": "What does element 0x1 weigh?", "back": "1 gram", "quote": ""}
    with FakeOpenAI(fault_for=lambda n, body: Fault(content=json.dumps(card)) if chunk_of(body) else None) as server:
        job = make_job(server, sections(1))
        run, _ = await run_to_end(job, stream=True)
    assert [(c.front, c.back) for c in run.cards()] == [(card["front"], card["back"])]
    assert len(server.chunk_requests()) == 1


def test_no_cards_anywhere_says_so_per_chunk_without_blaming_the_input(tmp_path) -> None:
    (tmp_path / "n.md").write_text(sections(3))
    with FakeOpenAI(fault_for=lambda n, body: Fault(content="") if chunk_of(body) else None) as server:
        proc = run_cli("generate", "n.md", "--base-url", server.base_url, "--api-key", "k", "--chunk-tokens", "120",
                       "--yes", cwd=tmp_path)  # fmt: skip
    chunks = int(proc.stderr.split(" chunks with ")[0].rsplit(" ", 1)[1])
    assert proc.stderr.count("no cards (the model's answer was empty)") == chunks
    assert "has nothing to make cards from" not in proc.stderr
    assert f"gpt-4o-mini made no cards from any of the {chunks} chunks of n.md" in proc.stderr


# ---------------------------------------------------------------- context windows, in every server's words


def _overflow_run(tmp_path, dialect, *flags: str):
    (tmp_path / "n.md").write_text(sections(4, sentences=12))
    with FakeOpenAI(dialect=dialect) as server:
        proc = run_cli("generate", "n.md", "--base-url", server.base_url, "--model", dialect.model_id, "--api-key",
                       "k", "--chunk-tokens", "400", "--yes", "--json", *flags, cwd=tmp_path)  # fmt: skip
    return proc, server


@pytest.mark.parametrize(
    ("dialect", "stated"),
    [
        (LlamaServer(ctx=4096, parallel=4), True),  # /props: 1,024 per slot
        (LlamaCppPython(window=900, slots=None), False),  # says nothing: learned from its first refusal
        (Vllm(window=1024), True),  # max_model_len
        (LmStudio(window=1024, slots=None), True),  # the loaded instance's context_length
        (Ollama(window=1024, context_shift=False), True),  # /api/ps context_length
    ],
    ids=lambda d: getattr(d, "name", ""),
)
def test_chunks_are_fitted_to_the_servers_window_and_it_is_said_once(tmp_path, dialect, stated) -> None:
    proc, server = _overflow_run(tmp_path, dialect)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["chunks_with_cards"] == report["chunks"] and report["failed_chunks"] == 0
    said = [line for line in proc.stderr.splitlines() if "the server's context is" in line]
    assert len(said) == 1, proc.stderr
    assert "1,024 tokens per request" in said[0] or not stated
    if stated:
        assert not server.refused  # fitted before the first call: nothing refused
        assert report["server_info"]["window"] == 1024
    else:
        refused = [chunk_of(server.requests[n]) for n in server.refused if chunk_of(server.requests[n])]
        # Chunks already in flight meet the refusal once each; it teaches the window, and no part is refused.
        assert refused and len(refused) == len(set(refused)) <= report["chunks"]
        answered = [chunk_of(b) for i, b in enumerate(server.requests) if chunk_of(b) and i not in server.refused]
        assert not set(answered) & set(refused)
    assert all(chunk_of(server.requests[n]) is None or n in server.refused for n in server.refused)


@pytest.mark.parametrize("dialect", [LlamaServer(ctx=600, parallel=4), LlamaCppPython(window=150, slots=None)],
                         ids=lambda d: d.name)  # fmt: skip
def test_a_window_too_small_for_any_part_is_one_sentence_with_its_numbers(tmp_path, dialect) -> None:
    proc, _ = _overflow_run(tmp_path, dialect)
    assert proc.returncode in (2, 3), proc.stderr
    assert "Traceback" not in proc.stderr
    assert "150 tokens" in proc.stderr or "context is 150" in proc.stderr or "150 tokens per request" in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "context" in line and "tokens" in line]
    assert len(lines) >= 1 and ("larger context" in proc.stderr)


# ---------------------------------------------------------------- other dialects' ways


async def test_lm_studio_takes_json_schema_and_its_string_errors_read_plainly() -> None:
    with FakeOpenAI(dialect=LmStudio(slots=None)) as server:
        job = make_job(server, sections(3))
        run, _ = await run_to_end(job, stream=True)
    assert run.counts()["done"] == len(job.chunks) and set(formats(server)) == {"json_schema"}


def test_a_model_ollama_does_not_have_is_named(tmp_path) -> None:
    (tmp_path / "n.md").write_text(sections(2))
    with FakeOpenAI(dialect=Ollama()) as server:
        proc = run_cli("generate", "n.md", "--base-url", server.base_url, "--model", "llama9", "--chunk-tokens",
                       "120", "--yes", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 3
    assert "does not know model 'llama9'" in proc.stderr
    assert 'model "llama9" not found, try pulling it first' in proc.stderr
    assert proc.stderr.count("mkflash-tui: stopped:") == 1


async def test_ollama_and_vllm_answer_in_their_own_dialect() -> None:
    for dialect in (Ollama(slots=None), Vllm()):
        with FakeOpenAI(dialect=dialect) as server:
            job = make_job(server, sections(3), model=dialect.model_id)
            run, _ = await run_to_end(job, stream=True)
        assert run.counts()["done"] == len(job.chunks) and run.cards(), dialect.name
        assert formats(server)[0] == "json_schema" and is_summary(server.requests[0])


def test_llama_servers_401_and_llama_cpp_pythons_detail_body_read_plainly(tmp_path) -> None:
    from aiohttp import web

    (tmp_path / "n.md").write_text(sections(2))

    class Keyed(LlamaCppPython):
        def refuse(self, body):  # llama-cpp-python with --api_key: FastAPI's HTTPException body
            return web.json_response({"detail": "Invalid API key"}, status=401)

    with FakeOpenAI(dialect=Keyed(slots=None)) as server:
        proc = run_cli("generate", "n.md", "--base-url", server.base_url, "--api-key", "sk-wrong-0123456789",
                       "--chunk-tokens", "120", "--yes", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 3
    assert "rejected the API key from --api-key (401: Invalid API key); check the key or pass --api-key" in proc.stderr
    assert "sk-wrong" not in proc.stderr


async def test_an_answer_that_runs_to_our_bound_is_a_loop_not_a_long_answer() -> None:
    """A small model repeating a quote until the max_tokens we set: its complete cards are kept, and without
    any it is one failed attempt and one more try, never the halves (that would repeat the loop twice)."""
    loop = '{"cards": [{"type": "basic", "front": "What is magma?", "back": "Molten rock", "quote": "' + "again " * 900
    complete = '{"cards": [{"type": "basic", "front": "What is magma?", "back": "Molten rock", "quote": ""}, {"type'

    def looping(content):
        return lambda n, body: Fault(content=content, finish_reason="length") if chunk_of(body) else None

    with FakeOpenAI(fault_for=looping(loop)) as server:
        job = make_job(server, sections(1))
        run, _ = await run_to_end(job, stream=False)
    [status] = run.status.values()
    assert status.state.value == "failed" and "repeated itself" in status.reason
    assert len(server.chunk_requests()) == 2
    assert all(body["max_tokens"] >= 200 for body in server.chunk_requests())
    assert all("assistant" not in [m["role"] for m in b["messages"]] for b in server.chunk_requests())  # no repair
    with FakeOpenAI(fault_for=looping(complete + "x" * 8000)) as server:
        job = make_job(server, sections(1))
        run, _ = await run_to_end(job, stream=True)
    assert [c.front for c in run.cards()] == ["What is magma?"] and len(server.chunk_requests()) == 1


# ---------------------------------------------------------------- knowing the server


@pytest.mark.parametrize(
    ("dialect", "kind", "window", "slots"),
    [
        (LlamaServer(ctx=4096, parallel=4), "llama.cpp", 1024, 4),
        (LlamaCppPython(), "llama-cpp-python", None, None),
        (Ollama(), "ollama", 4096, None),
        (Ollama(loaded=False), "ollama", None, None),  # /api/ps lists a model only once it is loaded
        (Vllm(window=32768), "vllm", 32768, None),
        (LmStudio(window=8192), "lmstudio", 8192, None),
    ],
    ids=lambda d: getattr(d, "name", None) or "",
)
def test_what_each_server_says_about_itself(dialect, kind, window, slots) -> None:
    from mkflash_tui.core.providers.discovery import discover

    with FakeOpenAI(dialect=dialect) as server:
        info = discover(server.base_url, "k", dialect.model_id)
    assert (info.kind, info.window, info.slots) == (kind, window, slots)
    assert dialect.model_id in info.models


def test_nothing_at_the_address_is_unreachable_and_fast() -> None:
    import socket
    import time

    from mkflash_tui.core.providers.discovery import discover

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    info = discover(f"http://127.0.0.1:{port}/v1", None, "m")
    assert not info.reachable and info.window is None and time.monotonic() - started < 3


def test_a_server_with_slots_gets_that_many_calls_in_flight(tmp_path) -> None:
    (tmp_path / "n.md").write_text(sections(8))
    with FakeOpenAI(dialect=LlamaServer(ctx=32768, parallel=2), latency=0.05) as server:
        proc = run_cli("generate", "n.md", "--base-url", server.base_url, "--model", "m", "--chunk-tokens", "120",
                       "--yes", cwd=tmp_path)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "the server serves 2 requests at once: 2 in flight" in proc.stderr
        assert server.peak_in_flight == 2 and server.dialect.peak_waiting == 0  # nothing waited in its queue
        explicit = run_cli("generate", "n.md", "--base-url", server.base_url, "--model", "m2", "--chunk-tokens",
                           "120", "--yes", "--force", "--concurrency", "5", cwd=tmp_path)  # fmt: skip
        assert explicit.returncode == 0 and "at once" not in explicit.stderr and server.peak_in_flight == 5


def test_a_call_waiting_in_the_servers_queue_is_not_a_dead_server(tmp_path) -> None:
    """One slot, four calls at once, each answer 0.6 s, --timeout 1: the fourth waits 1.8 s for its turn."""
    (tmp_path / "n.md").write_text(sections(4))
    with FakeOpenAI(dialect=LlamaCppPython(interrupt_requests=False), latency=0.6) as server:
        proc = run_cli("generate", "n.md", "--base-url", server.base_url, "--model", "m", "--chunk-tokens", "120",
                       "--concurrency", "4", "--timeout", "1", "--yes", "--json", cwd=tmp_path)  # fmt: skip
        assert server.dialect.peak_waiting >= 2  # requests did wait in the server's queue
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["failed_chunks"] == 0 and report["retries"] <= 1  # the summary's format refusal at most
    assert "no complete answer within" not in proc.stderr


def test_a_silently_cut_prompt_stops_the_run_once_with_the_fix(tmp_path) -> None:
    (tmp_path / "n.md").write_text(sections(6, sentences=12))
    with FakeOpenAI(dialect=Ollama(window=300, loaded=False)) as server:  # not loaded: the window is not said
        proc = run_cli("generate", "n.md", "--base-url", server.base_url, "--model", "llama3.2", "--chunk-tokens",
                       "400", "--yes", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    [stopped] = [line for line in proc.stderr.splitlines() if line.startswith("mkflash-tui: stopped:")]
    assert "read only 300 of the about" in stopped and "OLLAMA_CONTEXT_LENGTH" in stopped
    assert "lower --chunk-tokens" in stopped


async def test_a_summary_refused_for_its_length_is_made_with_less_of_the_document() -> None:
    with FakeOpenAI(dialect=LlamaCppPython(window=2048, slots=None)) as server:
        job = make_job(server, sections(60), chunk_tokens=300)
        run = job.make_run(stream=False)
        events = []
        run.subscribe(events.append)
        summary = await run.summarize()
        await run.aclose()
    summaries = server.summary_requests()
    assert summary.summary == "A test summary of the document."  # made, not skipped
    assert len(summaries) >= 2 and summaries[0]["messages"] != summaries[-1]["messages"]
    assert sum(1 for n in server.refused if n < len(server.requests) and is_summary(server.requests[n])) >= 1
    assert any(isinstance(e, Notice) and "2,048 tokens per request" in e.text for e in events)


def test_the_dry_run_says_how_long_from_an_earlier_runs_speed(tmp_path) -> None:
    (tmp_path / "n.md").write_text(sections(6, sentences=10))
    with FakeOpenAI(dialect=LlamaServer(ctx=8192, parallel=1), latency=0.2) as server:
        args = ("n.md", "--base-url", server.base_url, "--model", "m", "--chunk-tokens", "200")
        before = run_cli("generate", *args, "--dry-run", "--json", cwd=tmp_path)
        assert json.loads(before.stdout)["estimated_seconds"] is None  # nothing measured yet: not made up
        assert run_cli("generate", *args, "--yes", cwd=tmp_path).returncode == 0
        (tmp_path / "n.md").write_text(sections(6, sentences=10, prefix="Other"))
        after = run_cli("generate", *args, "--dry-run", cwd=tmp_path)
    assert "one request at a time: about" in after.stdout, after.stdout


# ---------------------------------------------------------------- doctor


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (LlamaServer(ctx=4096, parallel=4), {"structured_output": "json_schema", "streams_usage": True,
                                              "window": 1024, "slots": 4}),
        (LlamaCppPython(slots=None), {"structured_output": "json_object_schema", "streams_usage": False,
                                      "window": None, "slots": None}),
        (LmStudio(slots=None), {"structured_output": "json_schema", "window": 4096}),
    ],
    ids=lambda d: getattr(d, "name", None) or "",
)  # fmt: skip
def test_doctor_reports_each_server_as_it_is(dialect, expected) -> None:
    with FakeOpenAI(dialect=dialect) as server:
        proc = run_cli("doctor", "--base-url", server.base_url, "--model", dialect.model_id, "--json")
        text = run_cli("doctor", "--base-url", server.base_url, "--model", dialect.model_id)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    facts = {**report, **report["server"]}
    assert {k: facts[k] for k in expected} == expected
    assert report["works"] and report["key"] == "not needed" and report["latency_seconds"] is not None
    assert text.returncode == 0 and "a run would work" in text.stdout
    window = f"{expected['window']:,} tokens per request" if expected["window"] else "context            unknown"
    assert window in text.stdout


def test_doctor_says_why_a_run_would_not_work(tmp_path) -> None:
    import socket

    with FakeOpenAI(dialect=LlamaServer(), api_key="the-right-key") as server:
        refused = run_cli("doctor", "--base-url", server.base_url, "--api-key", "sk-wrong-0123456789", "--json")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nothing = run_cli("doctor", "--base-url", f"http://127.0.0.1:{port}/v1")
    assert refused.returncode == 3 and json.loads(refused.stdout)["key"] == "refused"
    assert "sk-wrong" not in refused.stdout
    assert nothing.returncode == 3 and "nothing answers at" in nothing.stdout and "Traceback" not in nothing.stderr
