"""Benchmark: mkflash-tui's whole ``generate`` process against the bare ``AsyncOpenAI`` client, side by side.

Both sides run as child processes of this script against one fake server (its own process, so its work does
not count against either side) and send the same requests: the bare client replays the exact bodies
mkflash-tui sent in a recorded warm-up run, through ``AsyncOpenAI`` with the aiohttp transport: the summary
request first, then every chunk request under one ``asyncio.Semaphore`` and ``asyncio.gather`` (the seed's
pattern: no store, no parsing, no export). It replays them both ways: streamed (``stream=True``, as the
issue's figures were defined) and as mkflash-tui sent them (a headless run asks for plain answers, which cost
the SDK far less than a stream of small events). Both run from compiled modules, as an installed package does
(a checkout run with PYTHONDONTWRITEBYTECODE would compile mkflash-tui's on every start). Each child's wall
time, CPU time (user + system, from ``wait4``) and peak RSS are measured from outside; every figure is the
median of ``--repeat`` runs, alternating the sides.

Prints two scenarios:
  - throughput: 2,500 chunks at concurrency 256 and 0.2 s latency: requests per second, CPU ms per chunk,
    peak memory, and mkflash-tui's rate and CPU as a share / multiple of the bare client's
    [targets: rate >= 70 %, CPU per chunk <= 1.5 x, memory <= 200 MB];
  - overhead: 100 chunks at latency 0, concurrency >= chunks: whole-process wall time against the seed's
    pattern [target <= 1.1 x];
and, with ``--memory 10000``, peak memory at a larger size (to see it grow linearly).

    python tests/bench/bench_throughput.py [--chunks 2500] [--concurrency 256] [--latency 0.2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench_engine import CHUNK_TOKENS, make_text  # noqa: E402

# The fake server, in its own process. It prints its URL; "dump PATH" on stdin writes the bodies it has
# received as JSON lines and answers "ok"; "reset" forgets them.
SERVER = """
import json, sys
sys.path.insert(0, {tests!r})
from fake_openai import FakeOpenAI
server = FakeOpenAI(latency={latency}, chars_per_delta={chars}).start()
print(server.base_url, flush=True)
for line in sys.stdin:
    command, _, arg = line.strip().partition(" ")
    if command == "dump":
        with open(arg, "w") as out:
            for body in list(server.requests):
                out.write(json.dumps(body) + "\\n")
    elif command == "reset":
        server.requests.clear()
    print("ok", flush=True)
"""

# The bare client: the seed's pattern over the same bodies.
BARE = """
import asyncio, json, sys
import openai

async def main(path, base_url, concurrency, streamed):
    bodies = [json.loads(line) for line in open(path)]
    flagged = [(body.pop("summary", False), body) for body in bodies]
    summary = [body for first, body in flagged if first]
    bodies = [body for first, body in flagged if not first]
    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", http_client=openai.DefaultAioHttpClient(),
                                max_retries=0)
    gate = asyncio.Semaphore(concurrency)
    known = {"model", "messages", "temperature", "max_tokens", "max_completion_tokens", "response_format",
              "seed", "top_p", "stream_options"}

    async def one(body, plain=False):
        kwargs = {k: v for k, v in body.items() if k in known}
        extra = {k: v for k, v in body.items() if k not in known and k != "stream"}
        async with gate:
            if plain or not streamed:
                completion = await client.chat.completions.create(**kwargs, extra_body=extra or None)
                return completion.choices[0].message.content
            stream = await client.chat.completions.create(**kwargs, stream=True, extra_body=extra or None)
            parts = []
            async for event in stream:
                if event.choices and event.choices[0].delta.content:
                    parts.append(event.choices[0].delta.content)
            return "".join(parts)

    for body in summary:  # the one call for shared context goes first, as in mkflash-tui
        await one(body, plain=True)
    answers = await asyncio.gather(*(one(body) for body in bodies))
    await client.close()
    print(json.dumps({"chunks": len(answers), "chars": sum(map(len, answers))}))

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "stream"))
"""


@dataclass
class Measure:
    wall: float
    cpu: float
    rss_mb: float
    chunks: int


class Server:
    def __init__(self, latency: float, chars: int) -> None:
        code = SERVER.format(tests=str(HERE.parent), latency=latency, chars=chars)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.base_url = self.proc.stdout.readline().strip()

    def command(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


def popen_wait4(argv: list[str], env: dict[str, str]) -> Measure:
    """Run ``argv`` to its end; its wall time, CPU time and peak RSS measured from outside."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv[:4])} … failed ({proc.returncode}): {err.read().decode()[-2000:]}")
        report = json.loads(out.read().decode().strip().splitlines()[-1])
    cpu = usage.ru_utime + usage.ru_stime
    return Measure(wall, cpu, usage.ru_maxrss / 1024, int(report["chunks"]))


def python_env(**extra: str) -> dict[str, str]:
    """The children's environment: compiled modules kept (in a folder of this run's), as an installed package's
    are, whatever PYTHONDONTWRITEBYTECODE says here; the warm-up run writes them."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(PYCACHE), **extra}


PYCACHE = Path(tempfile.gettempdir()) / "mkflash-bench-pycache"


def mkflash(path: Path, server: Server, concurrency: int, data: Path) -> Measure:
    argv = [
        sys.executable, "-m", "mkflash_tui", "generate", str(path), "-o", str(path.with_suffix(".apkg")),
        "--force", "--json", "--fresh", "--base-url", server.base_url, "--model", "fake-model",
        "--api-key", "bench", "--chunk-tokens", str(CHUNK_TOKENS), "--overlap-tokens", "0",
        "--concurrency", str(concurrency),
    ]  # fmt: skip
    env = python_env(OPENAI_API_KEY="", MKFLASH_DATA_DIR=str(data), MKFLASH_CONFIG=str(data / "c.toml"))
    return popen_wait4(argv, env)


def bare(bodies: Path, server: Server, concurrency: int, mode: str) -> Measure:
    argv = [sys.executable, "-c", BARE, str(bodies), server.base_url, str(concurrency), mode]
    return popen_wait4(argv, python_env())


def record(path: Path, tmp: Path, latency: float, chars: int, concurrency: int) -> tuple[Path, int]:
    """A warm-up run of mkflash-tui on a server of its own; the chunk bodies it sent, for the bare client."""
    server = Server(latency, chars)
    try:
        mkflash(path, server, concurrency, tmp / "warm")
        dump = tmp / f"{path.stem}.all.jsonl"
        server.command(f"dump {dump}")
    finally:
        server.close()
    bodies = tmp / f"{path.stem}.jsonl"
    count = 0
    with open(dump) as src, open(bodies, "w") as out:
        for line in src:
            if "<<<CHUNK" in line:
                out.write(line)
                count += 1
            elif "<<<DOCUMENT" in line:  # the summary: sent first, alone, on both sides
                out.write(json.dumps({**json.loads(line), "summary": True}) + "\n")
    return bodies, count


SIDES = ("mkflash-tui", "bare, stream=True", "bare, as sent")


def scenario(name: str, chunks: int, concurrency: int, latency: float, repeat: int, chars: int, tmp: Path) -> dict:
    """Each side's median wall, CPU and peak RSS over ``repeat`` alternating runs, and its runs' wall times."""
    path = tmp / f"{name}.md"
    path.write_text(make_text(chunks))
    bodies, count = record(path, tmp, latency, chars, concurrency)
    server = Server(latency, chars)
    runs: dict[str, list[Measure]] = {side: [] for side in SIDES}
    try:
        for i in range(repeat):
            runs[SIDES[0]].append(mkflash(path, server, concurrency, tmp / f"{name}-{i}"))
            runs[SIDES[1]].append(bare(bodies, server, concurrency, "stream"))
            runs[SIDES[2]].append(bare(bodies, server, concurrency, "plain"))
    finally:
        server.close()
    for side, measures in runs.items():
        if any(m.chunks != count for m in measures):  # a side that did less work would look faster
            raise SystemExit(f"{side} answered {[m.chunks for m in measures]} chunks, not {count}")
    result: dict = {"chunks": count}
    for side, measures in runs.items():
        result[side] = {k: statistics.median(getattr(m, k) for m in measures) for k in ("wall", "cpu", "rss_mb")}
        result[side]["runs"] = ", ".join(f"{m.wall:.2f}" for m in measures)
    return result


def throughput(args: argparse.Namespace, tmp: Path) -> None:
    r = scenario("throughput", args.chunks, args.concurrency, args.latency, args.repeat, args.chars_per_delta, tmp)
    n = r["chunks"]
    print(f"throughput: {n} chunks, concurrency {args.concurrency}, latency {args.latency} s, median of {args.repeat}")
    for side in SIDES:
        m = r[side]
        print(
            f"  {side:<18} {m['wall']:6.2f} s wall {m['cpu']:6.2f} s CPU {n / m['wall']:5.0f} chunks/s "
            f"{m['cpu'] / n * 1000:5.2f} ms CPU/chunk  peak {m['rss_mb']:3.0f} MB  (runs {m['runs']})"
        )
    ours = r[SIDES[0]]
    for side in SIDES[1:]:
        rate = r[side]["wall"] / ours["wall"]
        cpu = ours["cpu"] / r[side]["cpu"]
        print(f"  against {side}: rate {rate:.0%} [target >= 70 %], CPU per chunk {cpu:.2f} x [target <= 1.5 x]")
    print(f"  peak memory {ours['rss_mb']:.0f} MB   [target <= 200 MB]")


def overhead(args: argparse.Namespace, tmp: Path) -> None:
    repeat = max(args.repeat, 3)
    r = scenario("overhead", 100, 256, 0.0, repeat, args.chars_per_delta, tmp)
    print(f"overhead: {r['chunks']} chunks at latency 0, whole process, median of {repeat}")
    for side in SIDES:
        print(f"  {side:<18} {r[side]['wall']:.2f} s  (runs {r[side]['runs']})")
    ours = r[SIDES[0]]["wall"]
    for side in SIDES[1:]:
        print(f"  against the seed's pattern, {side}: {ours / r[side]['wall']:.2f} x   [target <= 1.1 x]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2500)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chars-per-delta", type=int, default=12, help="characters in each streamed event")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--memory", type=int, default=0, help="also report peak memory at this many chunks")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if not args.skip_throughput:
            throughput(args, tmp)
        if not args.skip_overhead:
            overhead(args, tmp)
        if args.memory:
            r = scenario("memory", args.memory, args.concurrency, args.latency, 1, args.chars_per_delta, tmp)
            print(f"memory at {r['chunks']} chunks: " + ", ".join(f"{s} {r[s]['rss_mb']:.0f} MB" for s in SIDES))


if __name__ == "__main__":
    main()
