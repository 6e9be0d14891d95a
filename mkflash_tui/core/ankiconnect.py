"""Send cards straight into a running Anki through the AnkiConnect add-on (blocking; faces call it in a thread).

Two ways in, one result:

- **Our own package** (``importPackage``), when Anki runs on this machine and AnkiConnect imports it: the notes
  keep our GUIDs and our note types' fixed ids, so a later ``.apkg`` import updates them and never doubles them,
  and Anki's own rule applies (a note is updated only when our copy is newer: an edit made in Anki survives a
  re-push of an unchanged card). The counts come from the notes of our note types before and after.
- **Note by note** (``addNotes``, ``updateNoteFields``, in batches through ``multi``) otherwise. Our note types
  are the ones with their fixed ids if a package of ours was imported there, else made with ``createModel``
  (same names, fields, templates and styling; AnkiConnect cannot give them our ids). Such notes get Anki's own
  GUIDs.

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
from .export import export_cards, note_types
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
    moved: int = 0  # notes pushed before whose cards went to the deck (or subdeck) they belong in now
    method: str = ""  # "import" (our package) or "notes" (note by note)
    reasons: list[str] = field(default_factory=list)  # why notes were skipped, one line each
    stamps: NoteStamps = field(default_factory=dict)  # what the package path wrote, for the store

    def as_dict(self) -> dict[str, Any]:
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged, "stale": self.stale,
                "skipped": self.skipped, "moved": self.moved, "method": self.method}  # fmt: skip

    def describe(self) -> str:
        text = (f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, {self.stale} stale, "
                f"{self.skipped} skipped")  # fmt: skip
        return text + (f", {self.moved} moved to their deck" if self.moved else "")


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
         stamps: NoteStamps | None, prune: bool = False, readd: bool = False, use_import: bool = True,
         claimed: set[int] | frozenset[int] = frozenset(),
         ) -> tuple[PushReport, dict[str, tuple[int, str]], list[str]]:  # fmt: skip
    """Send ``cards`` (what an export writes, stale ones included) to ``anki``.

    ``known``: guid -> (Anki note id, content sent) from earlier pushes to this Anki; ``stamps``: what earlier
    exports wrote (None: no store). Returns the report, the notes to remember (guid -> (note id, content)) and
    the guids to forget; ``claimed``: the notes other sessions' cards became, which a card of the same text
    never takes over. Raises AnkiConnectError.
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
        imported = _push_package(anki, send, cards, options, stamps, earlier, report, claimed)
    if imported is None:
        remember = _push_notes(anki, send, stamps, {g: known[g] for g in earlier if g not in gone}, report, claimed)
    else:
        remember = imported
    _follow_decks(anki, [p for p in send if p.guid in earlier and p.guid in remember], remember, report)
    stale_notes = [remember[p.guid][0] for p in send if p.card_id in stale_ids and p.guid in remember]
    if stale_notes:
        card_ids = anki.invoke("findCards", query="nid:" + ",".join(str(n) for n in stale_notes))
        if card_ids:
            anki.invoke("suspend", cards=card_ids)
        report.stale += len(stale_notes)
    return report, remember, forget


def _follow_decks(anki: AnkiConnect, pushed: list[NotePayload], remember: dict[str, tuple[int, str]],
                  report: PushReport) -> None:  # fmt: skip
    """Notes pushed before go where their cards belong now: a deck renamed (``--deck``, the export dialog), a
    subdeck that follows its chapter. Neither an import nor a field update moves a card. One search per deck
    finds the cards of its notes that are elsewhere (notesInfo lists a note's cards only in some servers)."""
    by_deck: dict[str, list[int]] = {}
    for payload in pushed:
        by_deck.setdefault(payload.deck, []).append(remember[payload.guid][0])
    decks = sorted(by_deck)
    searches = [("findCards", {"query": f"nid:{','.join(map(str, by_deck[d]))} -({deck_query(d)})"}) for d in decks]
    found = anki.multi(searches) if searches else []
    moves = [(deck, [int(c) for c in cards]) for deck, (cards, _) in zip(decks, found, strict=True) if cards]
    if not moves:
        return
    answers = anki.multi([("changeDeck", {"cards": cards, "deck": deck}) for deck, cards in moves])
    for (deck, cards), (_, error) in zip(moves, answers, strict=True):
        if error:
            report.reasons.append(f"not moved to {deck}: {error}")
        else:
            report.moved += len(set(by_deck[deck]) & set(_notes_of(anki, cards)))


def _notes_of(anki: AnkiConnect, cards: list[int]) -> list[int]:
    return [int(n) for n in anki.invoke("findNotes", query="cid:" + ",".join(map(str, cards))) or ()]


def deck_query(deck: str) -> str:
    """An Anki search for the cards in ``deck`` itself (not its subdecks); the name's quotes, backslashes and
    wildcards escaped."""
    name = deck.replace("\\", "\\\\").replace('"', '\\"').replace("*", "\\*").replace("_", "\\_")
    return f'"deck:{name}" -"deck:{name}::*"'


def _existing(anki: AnkiConnect, note_ids: Iterable[int]) -> set[int]:
    ids = list(note_ids)
    if not ids:
        return set()
    found = anki.invoke("findNotes", query="nid:" + ",".join(str(i) for i in ids))
    return {int(n) for n in found or ()}


def _ours(anki: AnkiConnect, names: Iterable[str] = ()) -> dict[int, dict[str, Any]]:
    """Every note of our note types in the collection (by their fixed ids, and by ``names``: those a push made
    there): note id -> its notesInfo."""
    query = " or ".join([OUR_NOTES_QUERY, *(f'"note:{name}"' for name in sorted(set(names)))])
    ids = anki.invoke("findNotes", query=query) or []
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
                  stamps: NoteStamps | None, earlier: dict[str, int], report: PushReport,
                  claimed: set[int] | frozenset[int]) -> dict[str, tuple[int, str]] | None:  # fmt: skip
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
        if nid in claimed:
            continue
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


def _note_types(anki: AnkiConnect, wanted: set[int], report: PushReport) -> dict[int, str]:
    """The name each of our note types has in this Anki: the one with our fixed id (a package of ours imported
    there), else the one of our name (made by an earlier push), else one made now with ``createModel`` — the
    same fields, templates and styling (its id is Anki's: AnkiConnect cannot set one). Raises AnkiConnectError
    when a note type of our name has other fields."""
    by_id = {int(m): n for n, m in (anki.invoke("modelNamesAndIds") or {}).items()}
    names = set(by_id.values())
    out: dict[int, str] = {}
    created = []
    for kind in note_types():
        if kind.model_id not in wanted:
            continue
        if kind.model_id in by_id:
            out[kind.model_id] = by_id[kind.model_id]
            continue
        fields = [f["name"] for f in kind.fields]
        if kind.name in names:
            theirs = anki.invoke("modelFieldNames", modelName=kind.name) or []
            if list(theirs) != fields:
                raise AnkiConnectError(
                    f"the Anki at {anki.url} has a note type named {kind.name!r} with other fields "
                    f"({', '.join(map(str, theirs))}; mkflash-tui's are {', '.join(fields)}): rename that note type "
                    "in Anki (Tools › Manage Note Types), then send again."
                )
        else:
            anki.invoke("createModel", modelName=kind.name, inOrderFields=fields, css=kind.css,
                        isCloze=kind.model_type == kind.CLOZE,
                        cardTemplates=[{"Name": t["name"], "Front": t["qfmt"], "Back": t["afmt"]}
                                       for t in kind.templates])  # fmt: skip
            created.append(kind.name)
        out[kind.model_id] = kind.name
    if created:
        report.reasons.append(
            f"made mkflash-tui's note types in that Anki ({', '.join(created)}): its notes carry Anki's own GUIDs, "
            "so keep sending to it rather than importing .apkg files of the same cards there"
        )
    return out


def _push_notes(anki: AnkiConnect, send: list[NotePayload], stamps: NoteStamps | None,
                known: dict[str, tuple[int, str]], report: PushReport,
                claimed: set[int] | frozenset[int] = frozenset()) -> dict[str, tuple[int, str]]:  # fmt: skip
    """Add and update note by note, in batches; our note types are made first where the collection lacks them."""
    report.method = "notes"
    names = _note_types(anki, {p.model_id for p in send}, report)
    stamps = stamps or {}
    remember: dict[str, tuple[int, str]] = {}
    existing = _ours(anki, names.values())
    by_front: dict[tuple[int, str], int] = {}
    name_to_id = {n: m for m, n in names.items()}
    for nid, info in existing.items():
        if nid in claimed:
            continue
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
