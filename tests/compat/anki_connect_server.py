"""mkflash-tui against a real third-party AnkiConnect: ``anki-connect-server`` 0.5.0 from PyPI (a headless
AnkiConnect over Anki's own library; Python >= 3.12; it declares no licence, so it is only installed here, in a
venv of its own in the user cache, never a dependency). Its ``importPackage`` does not work, so every push goes
note by note.

    python tests/compat/anki_connect_server.py     # skips (exit 0, saying so) without a Python >= 3.12

Steps, each checked in a copy of the server's collection with Anki's library, and with the deck written beside
it imported into a fresh collection: the first push into an empty collection (note types made, notes in), a
second push adds nothing, a renamed deck moves the notes, a second document that repeats the first's facts has
them flagged in-collection, and --skip-known leaves them out.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VERSION = "0.5.0"
sys.path.insert(0, str(ROOT / "tests"))


def cache_dir() -> Path:
    base = os.environ.get("MKFLASH_COMPAT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mkflash-tui", "compat")  # fmt: skip
    return Path(base)


def python312() -> str | None:
    """A Python >= 3.12 on this machine: on the PATH, or one pyenv installed."""
    for name in ("python3.13", "python3.12"):
        found = shutil.which(name)
        if found and subprocess.run([found, "-c", "import venv"], capture_output=True).returncode == 0:
            return found
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[2-9]*/bin/python")))
    return candidates[-1] if candidates else None


def server_venv(python: str) -> Path:
    venv = cache_dir() / f"anki-connect-server-{VERSION}"
    exe = venv / "bin" / "anki-connect-server"
    if not exe.exists():
        print(f"acs: installing anki-connect-server {VERSION} into {venv}", flush=True)
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        # httpx: imported by its anki_wrapper.py but not declared by 0.5.0
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"anki-connect-server=={VERSION}", "httpx"],
                       check=True)  # fmt: skip
    return exe


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Failed(Exception):
    pass


def check(condition: bool, what: str) -> None:
    if not condition:
        raise Failed(what)


def main() -> int:
    python = python312()
    if python is None:
        print("acs: skipped: no Python >= 3.12 here (anki-connect-server needs one)")
        return 0
    exe = server_venv(python)
    from anki.collection import Collection, ImportAnkiPackageOptions, ImportAnkiPackageRequest

    from mkflash_tui.job import demo_bytes

    work = Path(tempfile.mkdtemp(prefix="mkflash-acs-"))
    port = free_port()
    collection = work / "server" / "collection.anki2"
    collection.parent.mkdir()
    env = {**os.environ, "ANKICONNECT_PORT": str(port), "ANKICONNECT_COLLECTION_PATH": str(collection)}
    log = (work / "server.log").open("w")
    server = subprocess.Popen([str(exe), "api"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    url = f"http://127.0.0.1:{port}"
    ours = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "OPENAI_BASE_URL"}
    ours.update(MKFLASH_DATA_DIR=str(work / "data"), MKFLASH_CONFIG=str(work / "config.toml"))

    def push(source: Path, *flags: str) -> dict:
        deck = work / f"{source.stem}.apkg"
        proc = subprocess.run([sys.executable, "-m", "mkflash_tui", "generate", str(source), "--to-anki", url,
                               "-o", str(deck), "--force", "--json", *flags],
                              capture_output=True, text=True, env=ours, cwd=work, timeout=300)  # fmt: skip
        check("Traceback" not in proc.stderr, f"a traceback: {proc.stderr[-800:]}")
        check(proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-800:]}")
        report = json.loads(proc.stdout)
        check(report["anki"].get("method") == "notes", f"pushed by {report['anki']}")
        scratch = work / f"import-{time.monotonic_ns()}"
        scratch.mkdir()
        col = Collection(str(scratch / "c.anki2"))  # the deck written beside the push imports cleanly
        try:
            col.import_anki_package(ImportAnkiPackageRequest(package_path=str(deck),
                                                             options=ImportAnkiPackageOptions()))  # fmt: skip
            check(len(col.find_notes("")) == report["cards"], "the deck written beside the push")
        finally:
            col.close()
        return report

    def server_collection():
        """A copy of the server's collection, opened with Anki's library (the server keeps its own open)."""
        copy = work / f"copy-{time.monotonic_ns()}"
        copy.mkdir()
        for suffix in ("", "-wal"):
            if Path(f"{collection}{suffix}").exists():
                shutil.copyfile(f"{collection}{suffix}", copy / f"collection.anki2{suffix}")
        return Collection(str(copy / "collection.anki2"))

    steps = 0
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                check(time.monotonic() < deadline and server.poll() is None, "the server never listened")
                time.sleep(0.2)
        volcanoes = work / "volcanoes.md"
        volcanoes.write_bytes(demo_bytes())

        first = push(volcanoes)
        col = server_collection()
        try:
            types = {name: col.models.by_name(name) for name in ("mkflash Basic", "mkflash Cloze")}
            check(all(types.values()), "mkflash-tui's note types were made")
            cloze = types["mkflash Cloze"]
            check([f["name"] for f in cloze["flds"]] == ["Text", "Back Extra", "Source", "Context"],
                  "the cloze note type's fields")  # fmt: skip
            # anki-connect-server 0.5.0's create_model (anki_wrapper.py) never sets the type isCloze asks for, as
            # AnkiConnect does: its cloze type is a standard one (one card per note, c1 alone).
            kind = "a cloze type" if cloze["type"] == 1 else "a standard type: the server ignores isCloze"
            check(len(col.find_notes("")) == first["cards"] == first["anki"]["added"], "every card is a note")
        finally:
            col.close()
        steps += 1
        print(f"ok   first push into an empty collection: {first['anki']}; mkflash Cloze is {kind}", flush=True)

        second = push(volcanoes)
        check(second["anki"]["added"] == 0 and second["anki"]["unchanged"] == first["cards"], str(second["anki"]))
        steps += 1
        print(f"ok   second push adds nothing: {second['anki']}", flush=True)

        renamed = push(volcanoes, "--deck", "Earth::Volcanoes")
        col = server_collection()
        try:
            decks = {col.decks.name(col.get_card(c).did) for c in col.find_cards("")}
        finally:
            col.close()
        check(renamed["anki"]["moved"] == first["cards"] and decks == {"Earth::Volcanoes"}, f"{decks}")
        steps += 1
        print(f"ok   a renamed deck moves the notes: {renamed['anki']}", flush=True)

        other = work / "lecture-3.md"
        text = demo_bytes().decode().replace("# How Volcanoes Work", "# Lecture 3: volcanoes")
        other.write_text("\n".join(line for line in text.splitlines() if not line.startswith("## ")))
        flagged = push(other, "--deck", "Lecture 3")
        check(flagged["in_collection"] and flagged["in_collection"] >= 3, f"in_collection {flagged['in_collection']}")
        steps += 1
        print(f"ok   an overlapping second document: {flagged['in_collection']} cards flagged in-collection",
              flush=True)  # fmt: skip

        skipped = push(other, "--deck", "Lecture 3", "--skip-known")
        check(skipped["anki"]["added"] + skipped["in_collection"] >= skipped["cards"], str(skipped["anki"]))
        check(skipped["cards"] == flagged["cards"] - flagged["in_collection"], "--skip-known leaves them out")
        steps += 1
        print(f"ok   --skip-known leaves {skipped['in_collection']} out: {skipped['anki']}", flush=True)
    except Failed as exc:
        print(f"FAIL {exc}\n       server log: {work / 'server.log'}", flush=True)
        return 1
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    print(f"acs: {steps} of 5 steps passed against anki-connect-server {VERSION}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
