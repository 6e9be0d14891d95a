"""Send cards straight into a running Anki through the AnkiConnect add-on (blocking; faces call it in a thread).

Two ways in, one result:

- **Our own package** (``importPackage``), when Anki runs on this machine and AnkiConnect imports it: the notes
  keep our GUIDs and our note types' fixed ids, so a later ``.apkg`` import updates them and never doubles them,
  and Anki's own rule applies (a note is updated only when our copy is newer: an edit made in Anki survives a
  re-push of an unchanged card). The counts come from the notes of our note types before and after.
- **Note by note** (``addNotes``, ``updateNoteFields``, in batches through ``multi``) otherwise. Our note types
  must already be in that collection with their fixed ids (AnkiConnect cannot make a note type with a given
  id): one ``.apkg`` made by mkflash-tui, imported once, brings them. Such notes get Anki's own GUIDs.

Either way the Anki note id of every card is kept in the store (by AnkiConnect's address), so a card pushed
twice is one note; stale cards are tagged ``mkflash::stale`` and suspended (deleted with ``prune``); notes the
user deleted in Anki are not added again unless ``readd``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .deck import (
    BASIC_MODEL_ID,
    CLOZE_MODEL_ID,
    REVERSED_MODEL_ID,
    STALE_TAG,
    ExportFormat,
    ExportOptions,
    NotePayload,
    NoteStamps,
    note_payloads,
)
from .export import export_cards
from .models import Card

DEFAULT_URL = "http://127.0.0.1:8765"
API_VERSION = 6  # the protocol version we speak; older add-ons answer in other shapes
TIMEOUT = 30.0
BATCH = 200  # actions per ``multi`` request
MAX_ANSWER_BYTES = 64 * 2**20
OUR_MODELS = (BASIC_MODEL_ID, REVERSED_MODEL_ID, CLOZE_MODEL_ID)
OUR_NOTES_QUERY = " or ".join(f"mid:{m}" for m in OUR_MODELS)


class AnkiConnectError(Exception):
    """Anki cannot be reached or refuses; one sentence for the user. Nothing of the session is lost."""


@dataclass(slots=True)
class PushReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0  # stale notes tagged and suspended (or deleted, with prune)
    skipped: int = 0  # deleted in Anki (not added again without readd), or refused by Anki
    method: str = ""  # "import" (our package) or "notes" (note by note)
    reasons: list[str] = field(default_factory=list)  # why notes were skipped, one line each
    stamps: NoteStamps = field(default_factory=dict)  # what the package path wrote, for the store

    def as_dict(self) -> dict[str, Any]:
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged, "stale": self.stale,
                "skipped": self.skipped, "method": self.method}  # fmt: skip

    def describe(self) -> str:
        text = (f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, {self.stale} stale, "
                f"{self.skipped} skipped")  # fmt: skip
        return text


class AnkiConnect:
    """One AnkiConnect server: ``invoke`` an action, or ``multi`` many in one request."""

    def __init__(self, url: str = DEFAULT_URL, key: str | None = None, timeout: float = TIMEOUT) -> None:
        self.url = url.rstrip("/") or DEFAULT_URL
        self.key = key or None
        self.timeout = timeout

    def __repr__(self) -> str:  # never the key
        return f"AnkiConnect({self.url!r})"

    @property
    def local(self) -> bool:
        """Anki runs on this machine: it can read a file we write."""
        try:
            host = urlsplit(self.url).hostname or ""
        except ValueError:
            return False
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def invoke(self, action: str, **params: Any) -> Any:
        body: dict[str, Any] = {"action": action, "version": API_VERSION, "params": params}
        if self.key:
            body["key"] = self.key
        request = urllib.request.Request(self.url, data=json.dumps(body).encode("utf-8"),
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data = response.read(MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as exc:
            if exc.code == 403:
                raise AnkiConnectError(self._key_sentence()) from None
            raise AnkiConnectError(f"{self.url} does not answer as AnkiConnect does (HTTP {exc.code}): check the "
                                   "address (ANKICONNECT_URL or --to-anki URL).") from None  # fmt: skip
        except TimeoutError:
            raise AnkiConnectError(f"AnkiConnect at {self.url} did not answer within {self.timeout:g} s "
                                   "(is Anki showing a dialog?).") from None  # fmt: skip
        except (urllib.error.URLError, OSError, ValueError):
            raise AnkiConnectError(f"nothing answers at {self.url}: is Anki running, with the AnkiConnect add-on "
                                   "(code 2055492159) installed?") from None  # fmt: skip
        try:
            answer = json.loads(data[:MAX_ANSWER_BYTES])
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or "result" not in answer or "error" not in answer:
            raise AnkiConnectError(f"{self.url} does not answer as AnkiConnect does: check the address "
                                   "(ANKICONNECT_URL or --to-anki URL).")  # fmt: skip
        if answer["error"] is not None:
            raise AnkiConnectError(self._error_sentence(action, str(answer["error"])))
        return answer["result"]

    def multi(self, actions: list[tuple[str, dict[str, Any]]]) -> list[tuple[Any, str | None]]:
        """(result, error) of each action, sent ``BATCH`` at a time."""
        out: list[tuple[Any, str | None]] = []
        for start in range(0, len(actions), BATCH):
            part = [{"action": a, "params": p} for a, p in actions[start : start + BATCH]]
            results = self.invoke("multi", actions=part)
            if not isinstance(results, list) or len(results) != len(part):
                raise AnkiConnectError(f"AnkiConnect at {self.url} answered a batch in a shape mkflash-tui cannot "
                                       "read; update the add-on.")  # fmt: skip
            for result in results:
                if isinstance(result, dict) and set(result) <= {"result", "error"} and "error" in result:
                    out.append((result.get("result"), result["error"]))
                else:
                    out.append((result, None))
        return out

    def check(self) -> None:
        """Anki is there, speaks our version and takes our key. Raises AnkiConnectError."""
        version = self.invoke("version")
        if not isinstance(version, int) or version < API_VERSION:
            raise AnkiConnectError(f"AnkiConnect at {self.url} speaks version {version}; mkflash-tui needs version "
                                   f"{API_VERSION} or later: update the add-on (Tools › Add-ons).")  # fmt: skip

    def _key_sentence(self) -> str:
        if self.key:
            return f"AnkiConnect at {self.url} refused the API key: set ANKICONNECT_KEY to the key in its settings."
        return f"AnkiConnect at {self.url} needs an API key: set ANKICONNECT_KEY to the key in its settings."

    def _error_sentence(self, action: str, error: str) -> str:
        low = error.lower()
        if "api key" in low or "apikey" in low:
            return self._key_sentence()
        if "unsupported action" in low:
            return (f"AnkiConnect at {self.url} does not know {action!r}: update the add-on "
                    "(Tools › Add-ons › Check for updates).")  # fmt: skip
        return f"AnkiConnect refused {action}: {error.strip().rstrip('.')}."


# ---------------------------------------------------------------------- pushing


def push(anki: AnkiConnect, cards: list[Card], options: ExportOptions, *, known: dict[str, tuple[int, str]],
         stamps: NoteStamps | None, prune: bool = False, readd: bool = False,
         use_import: bool = True) -> tuple[PushReport, dict[str, tuple[int, str]], list[str]]:  # fmt: skip
    """Send ``cards`` (what an export writes, stale ones included) to ``anki``.

    ``known``: guid -> (Anki note id, content sent) from earlier pushes to this Anki; ``stamps``: what earlier
    exports wrote (None: no store). Returns the report, the notes to remember (guid -> (note id, content)) and
    the guids to forget. Raises AnkiConnectError.
    """
    anki.check()
    payloads = note_payloads(cards, options)
    stale_ids = {c.id for c in cards if c.stale}
    # Notes pushed before and deleted in Anki since: the user's choice, kept unless readd.
    earlier = {p.guid: known[p.guid][0] for p in payloads if p.guid in known}
    present = _existing(anki, earlier.values())
    gone = {g for g, nid in earlier.items() if nid not in present}
    report = PushReport()
    forget: list[str] = []
    if gone and not readd:
        report.skipped += len(gone)
        report.reasons.append(f"{len(gone)} deleted in Anki (--readd adds them again)")
    elif gone:
        forget.extend(gone)
    send = [p for p in payloads if readd or p.guid not in gone]
    if prune:
        doomed = [p for p in send if p.card_id in stale_ids]
        send = [p for p in send if p.card_id not in stale_ids]
        ids = [earlier[p.guid] for p in doomed if p.guid in earlier and p.guid not in gone]
        if ids:
            anki.invoke("deleteNotes", notes=ids)
        report.stale += len(doomed)
        forget.extend(p.guid for p in doomed)
    imported = None
    if use_import and anki.local:
        imported = _push_package(anki, send, cards, options, stamps, earlier, report)
    if imported is None:
        remember = _push_notes(anki, send, stamps, {g: known[g] for g in earlier if g not in gone}, report)
    else:
        remember = imported
    stale_notes = [remember[p.guid][0] for p in send if p.card_id in stale_ids and p.guid in remember]
    if stale_notes:
        card_ids = anki.invoke("findCards", query="nid:" + ",".join(str(n) for n in stale_notes))
        if card_ids:
            anki.invoke("suspend", cards=card_ids)
        report.stale += len(stale_notes)
    return report, remember, forget


def _existing(anki: AnkiConnect, note_ids: Iterable[int]) -> set[int]:
    ids = list(note_ids)
    if not ids:
        return set()
    found = anki.invoke("findNotes", query="nid:" + ",".join(str(i) for i in ids))
    return {int(n) for n in found or ()}


def _ours(anki: AnkiConnect) -> dict[int, dict[str, Any]]:
    """Every note of our note types in the collection: note id -> its notesInfo."""
    ids = anki.invoke("findNotes", query=OUR_NOTES_QUERY) or []
    out: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), 1000):
        for info in anki.invoke("notesInfo", notes=ids[start : start + 1000]) or ():
            if isinstance(info, dict) and "noteId" in info:
                out[int(info["noteId"])] = info
    return out


def _first_field(info: dict[str, Any]) -> str:
    fields = info.get("fields") or {}
    first = min(fields.values(), key=lambda f: f.get("order", 0), default={"value": ""})
    return str(first.get("value", ""))


def _push_package(anki: AnkiConnect, send: list[NotePayload], cards: list[Card], options: ExportOptions,
                  stamps: NoteStamps | None, earlier: dict[str, int],
                  report: PushReport) -> dict[str, tuple[int, str]] | None:  # fmt: skip
    """Import our own package into the running Anki; None when AnkiConnect will not import it."""
    by_id = {c.id: c for c in cards}
    chosen = [by_id[p.card_id] for p in send]
    before = _ours(anki)
    with tempfile.TemporaryDirectory(prefix="mkflash-anki-") as folder:
        os.chmod(folder, 0o755)  # Anki runs as this user, but let it read the file whatever its umask
        path = Path(folder) / "mkflash.apkg"
        options = ExportOptions(options.deck, options.title, options.source_stem, options.tags, options.reverse,
                                options.subdecks, ExportFormat.APKG, force=True)  # fmt: skip
        result = export_cards(chosen, path, options, stamps=stamps) if chosen else None
        if result is None:
            report.method = "import"
            return {}
        try:
            anki.invoke("importPackage", path=str(path))
        except AnkiConnectError as exc:
            if "api key" in str(exc).lower() or "nothing answers" in str(exc):
                raise
            return None  # AnkiConnect would not import it: note by note instead
    after = _ours(anki)
    report.method = "import"
    report.stamps = result.stamps
    remember: dict[str, tuple[int, str]] = {}
    # Notes we have no id for: the one the import added, else the one already there (an .apkg imported by
    # hand carries the same GUIDs, so the import updated it in place).
    by_front: dict[tuple[str, str], int] = {}
    for nid, info in sorted(after.items(), key=lambda item: item[0] in before):
        by_front.setdefault((str(info.get("modelName", "")), _first_field(info)), nid)
    names = {int(m): n for n, m in (anki.invoke("modelNamesAndIds") or {}).items()}
    for payload in send:
        nid = earlier.get(payload.guid)
        if nid is None or nid not in after:
            nid = by_front.pop((names.get(payload.model_id, ""), payload.fields[0]), None)
        if nid is None:
            report.skipped += 1
            report.reasons.append("a note Anki did not import")
            continue
        remember[payload.guid] = (nid, payload.content)
        if nid not in before:
            report.added += 1
        elif before[nid].get("mod") != after[nid].get("mod"):
            report.updated += 1
        else:
            report.unchanged += 1
    return remember


def _push_notes(anki: AnkiConnect, send: list[NotePayload], stamps: NoteStamps | None,
                known: dict[str, tuple[int, str]], report: PushReport) -> dict[str, tuple[int, str]]:  # fmt: skip
    """Add and update note by note, in batches; our note types must be in the collection already."""
    report.method = "notes"
    names = {int(m): n for n, m in (anki.invoke("modelNamesAndIds") or {}).items()}
    missing = {p.model_id for p in send} - set(names)
    if missing:
        raise AnkiConnectError(
            f"the Anki at {anki.url} does not have mkflash-tui's note types yet, and AnkiConnect there will not "
            "import a package: import one deck made by mkflash-tui into it once (File › Import), then send again."
        )
    stamps = stamps or {}
    remember: dict[str, tuple[int, str]] = {}
    existing = _ours(anki)
    by_front: dict[tuple[int, str], int] = {}
    name_to_id = {n: m for m, n in names.items()}
    for nid, info in existing.items():
        by_front.setdefault((name_to_id.get(str(info.get("modelName")), 0), _first_field(info)), nid)
    updates: list[NotePayload] = []
    new: list[NotePayload] = []
    for payload in send:
        if payload.guid in known:
            nid, sent = known[payload.guid]
        else:
            # Already in Anki from an .apkg import (or an earlier push we have no record of): take that note.
            nid = by_front.get((payload.model_id, payload.fields[0]))
            sent = stamps.get(payload.guid, ("", 0))[0] if nid is not None else ""
        if nid is None:
            new.append(payload)
            continue
        remember[payload.guid] = (nid, payload.content)
        if sent == payload.content:
            report.unchanged += 1  # unchanged on our side: whatever was edited in Anki stays
        else:
            updates.append(payload)
            remember[payload.guid] = (nid, payload.content)
    if updates:
        actions = [("updateNoteFields", {"note": {"id": remember[p.guid][0],
                                                  "fields": dict(zip(p.field_names, p.fields, strict=True))}})
                   for p in updates]  # fmt: skip
        for payload, (_, error) in zip(updates, anki.multi(actions), strict=True):
            if error:
                report.skipped += 1
                report.reasons.append(f"not updated: {error}")
                del remember[payload.guid]
            else:
                report.updated += 1
        tag_actions = [("addTags", {"notes": [remember[p.guid][0]], "tags": " ".join(p.tags)})
                       for p in updates if p.guid in remember and p.tags]  # fmt: skip
        untag = [remember[p.guid][0] for p in updates if p.guid in remember and STALE_TAG not in p.tags]
        if untag:
            tag_actions.append(("removeTags", {"notes": untag, "tags": STALE_TAG}))
        anki.multi(tag_actions)
    if new:
        for deck in sorted({p.deck for p in new}):
            anki.invoke("createDeck", deck=deck)
        notes = [{"deckName": p.deck, "modelName": names[p.model_id],
                  "fields": dict(zip(p.field_names, p.fields, strict=True)), "tags": list(p.tags),
                  "options": {"allowDuplicate": False, "duplicateScope": "deck"}} for p in new]  # fmt: skip
        try:
            checks = anki.invoke("canAddNotesWithErrorDetail", notes=notes)
        except AnkiConnectError as exc:
            if "does not know" not in str(exc):
                raise
            checks = None  # an older AnkiConnect: addNotes answers null for each note it cannot add
        addable = []
        for payload, note, check in zip(new, notes, checks or [{}] * len(new), strict=True):
            if isinstance(check, dict) and check.get("canAdd", True):
                addable.append((payload, note))
            else:
                report.skipped += 1
                why = check.get("error", "refused") if isinstance(check, dict) else check
                report.reasons.append(f"not added: {why}")
        for start in range(0, len(addable), BATCH):
            part = addable[start : start + BATCH]
            ids = anki.invoke("addNotes", notes=[n for _, n in part])
            for (payload, _), nid in zip(part, ids or [None] * len(part), strict=True):
                if nid is None:  # older AnkiConnect: null for each note it could not add
                    report.skipped += 1
                    report.reasons.append("not added: Anki refused the note")
                    continue
                remember[payload.guid] = (int(nid), payload.content)
                report.added += 1
    return remember
