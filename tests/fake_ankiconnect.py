"""A real HTTP server on 127.0.0.1 that speaks AnkiConnect's protocol (version 6) over a real Anki collection,
run by Anki's own ``anki`` library: what ``--to-anki`` and "Send to Anki" are tested against.

    with FakeAnkiConnect(tmp_path) as anki:
        ... mkflash-tui generate notes.md --to-anki anki.url ...
        anki.notes()                      # what the collection holds now

``refuse_import`` makes ``importPackage`` fail as a remote or locked-down AnkiConnect would (the note-by-note
path is then used), ``key`` demands an API key, ``version`` answers as an older add-on, and ``null_on_failure``
makes ``addNotes`` answer like older AnkiConnect versions (null for each note it could not add).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from anki.collection import Collection, ImportAnkiPackageOptions, ImportAnkiPackageRequest
from anki_check import ImportedNote


class FakeAnkiConnect:
    def __init__(self, folder: Path, *, refuse_import: bool = False, key: str | None = None, version: int = 6,
                 null_on_failure: bool = False, refuse_note=None) -> None:  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
        self.col = Collection(str(folder / "collection.anki2"))
        self.refuse_import = refuse_import
        self.key = key
        self.version = version
        self.null_on_failure = null_on_failure  # an older AnkiConnect (no canAddNotesWithErrorDetail either)
        self.refuse_note = refuse_note  # fields -> bool: notes Anki will not add (a full disk, a broken field...)
        self.lock = threading.Lock()
        self.actions: list[str] = []  # every action asked for, in order (the actions inside multi too)
        self.requests = 0
        self._server: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        assert self._server is not None
        self._url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self._url

    def start(self) -> FakeAnkiConnect:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length))
                except ValueError:
                    body = None
                answer = fake.answer(body)
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-ankiconnect", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering (as Anki does when it quits); the collection closes with the first stop."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        with self.lock:
            self.col.close()

    def __enter__(self) -> FakeAnkiConnect:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ for tests

    def notes(self) -> list[ImportedNote]:
        with self.lock:
            out = []
            for nid in self.col.find_notes(""):
                note = self.col.get_note(nid)
                cards = note.cards()
                decks = {self.col.decks.name(c.did) for c in cards}
                out.append(ImportedNote(note.guid, note.note_type()["name"], dict(note.items()), list(note.tags),
                                        decks, [c.id for c in cards]))  # fmt: skip
            return out

    def suspended(self) -> set[int]:
        """Note ids with every card suspended."""
        with self.lock:
            out = set()
            for nid in self.col.find_notes(""):
                cards = self.col.get_note(nid).cards()
                if cards and all(c.queue == -1 for c in cards):
                    out.add(nid)
            return out

    def note_ids(self) -> dict[str, int]:
        with self.lock:
            return {self.col.get_note(nid).guid: nid for nid in self.col.find_notes("")}

    def edit_in_anki(self, guid: str, field: str, value: str) -> None:
        """What the user does in Anki's editor: the note's field changes and its mod time moves on."""
        with self.lock:
            for nid in self.col.find_notes(""):
                note = self.col.get_note(nid)
                if note.guid == guid:
                    note[field] = value
                    self.col.update_note(note)
                    return
        raise KeyError(guid)

    def delete_in_anki(self, guid: str) -> None:
        with self.lock:
            nid = next(n for n in self.col.find_notes("") if self.col.get_note(n).guid == guid)
            self.col.remove_notes([nid])

    def import_apkg(self, path: Path) -> None:
        with self.lock:
            self._import(str(path))

    # ------------------------------------------------------------------ the protocol

    def answer(self, body: Any) -> dict[str, Any]:
        self.requests += 1
        if not isinstance(body, dict) or "action" not in body:
            return {"result": None, "error": "invalid request"}
        if self.key is not None and body.get("key") != self.key:
            return {"result": None, "error": "valid api key must be provided"}
        try:
            with self.lock:
                result = self.act(str(body["action"]), body.get("params") or {})
        except Exception as exc:  # AnkiConnect answers every failure as {"error": "..."}
            return {"result": None, "error": str(exc)}
        return {"result": result, "error": None}

    def act(self, action: str, params: dict[str, Any]) -> Any:
        self.actions.append(action)
        col = self.col
        if action == "version":
            return self.version
        if action == "multi":
            out = []
            for item in params.get("actions", []):
                try:
                    out.append({"result": self.act(item["action"], item.get("params") or {}), "error": None})
                except Exception as exc:
                    out.append({"result": None, "error": str(exc)})
            return out
        if action == "deckNames":
            return [d.name for d in col.decks.all_names_and_ids()]
        if action == "createDeck":
            return col.decks.id(params["deck"])
        if action == "getDecks":  # deck name -> the given cards in it
            decks: dict[str, list[int]] = {}
            for card in params["cards"]:
                decks.setdefault(col.decks.name(col.get_card(card).did), []).append(card)
            return decks
        if action == "changeDeck":  # AnkiConnect makes the deck if it is missing
            col.set_deck(params["cards"], col.decks.id(params["deck"]))
            return None
        if action == "modelNamesAndIds":
            return {m.name: m.id for m in col.models.all_names_and_ids()}
        if action == "modelNames":
            return [m.name for m in col.models.all_names_and_ids()]
        if action == "modelFieldNames":
            model = col.models.by_name(params["modelName"])
            if model is None:
                raise Exception(f"model was not found: {params['modelName']}")
            return [f["name"] for f in model["flds"]]
        if action == "createModel":
            return self.create_model(**params)
        if action == "findNotes":
            return list(col.find_notes(params["query"]))
        if action == "findCards":
            return list(col.find_cards(params["query"]))
        if action == "notesInfo":
            return [self._info(nid) for nid in params["notes"]]
        if action == "canAddNotesWithErrorDetail" and not self.null_on_failure:
            return [self._can_add(n) for n in params["notes"]]
        if action == "addNotes":
            return self._add_notes(params["notes"])
        if action == "updateNoteFields":
            note = col.get_note(params["note"]["id"])
            for name, value in params["note"]["fields"].items():
                note[name] = value
            col.update_note(note)
            return None
        if action == "addTags":
            col.tags.bulk_add(params["notes"], params["tags"])
            return None
        if action == "removeTags":
            col.tags.bulk_remove(params["notes"], params["tags"])
            return None
        if action == "suspend":
            col.sched.suspend_cards(params["cards"])
            return True
        if action == "deleteNotes":
            col.remove_notes(params["notes"])
            return None
        if action == "importPackage":
            if self.refuse_import:
                raise Exception("Import failed: the package is not on this machine")
            self._import(params["path"])
            return True
        raise Exception("unsupported action")

    def create_model(self, modelName: str, inOrderFields: list[str], cardTemplates: list[dict[str, str]],
                     css: str | None = None, isCloze: bool = False) -> dict[str, Any]:  # fmt: skip
        """AnkiConnect's createModel, as its source has it (FooSoft/anki-connect, plugin/__init__.py): its
        errors, a cloze type when asked, the fields in order, the styling, a template per card ("Card N" unless
        named); the note type gets an id of Anki's choosing."""
        if len(inOrderFields) == 0:
            raise Exception("Must provide at least one field for inOrderFields")
        if len(cardTemplates) == 0:
            raise Exception("Must provide at least one card for cardTemplates")
        mm = self.col.models
        if modelName in [n.name for n in mm.all_names_and_ids()]:
            raise Exception("Model name already exists")
        model = mm.new(modelName)
        if isCloze:
            model["type"] = 1  # MODEL_CLOZE
        for name in inOrderFields:
            mm.add_field(model, mm.new_field(name))
        if css is not None:
            model["css"] = css
        for number, card in enumerate(cardTemplates, 1):
            template = mm.new_template(card.get("Name", f"Card {number}"))
            template["qfmt"], template["afmt"] = card["Front"], card["Back"]
            mm.add_template(model, template)
        mm.add(model)
        return dict(mm.by_name(modelName))

    def rename_model(self, old: str, new: str) -> None:
        """What a user does in Tools › Manage Note Types › Rename."""
        with self.lock:
            model = self.col.models.by_name(old)
            model["name"] = new
            self.col.models.save(model)

    def _import(self, path: str) -> None:
        request = ImportAnkiPackageRequest(package_path=path,
                                           options=ImportAnkiPackageOptions(with_scheduling=True))  # fmt: skip
        self.col.import_anki_package(request)

    def _info(self, nid: int) -> dict[str, Any]:
        try:
            note = self.col.get_note(nid)
        except Exception:
            return {}
        fields = {name: {"value": value, "order": i} for i, (name, value) in enumerate(note.items())}
        return {"noteId": nid, "modelName": note.note_type()["name"], "tags": list(note.tags), "fields": fields,
                "mod": note.mod, "cards": [c.id for c in note.cards()]}  # fmt: skip

    def _new_note(self, spec: dict[str, Any]):
        model = self.col.models.by_name(spec["modelName"])
        if model is None:
            raise Exception(f"model was not found: {spec['modelName']}")
        note = self.col.new_note(model)
        for name, value in spec["fields"].items():
            note[name] = value
        note.tags = list(spec.get("tags", []))
        return note

    def _can_add(self, spec: dict[str, Any]) -> dict[str, Any]:
        try:
            note = self._new_note(spec)
        except Exception as exc:
            return {"canAdd": False, "error": str(exc)}
        check = note.fields_check()  # 1 empty, 2 duplicate (of its first field, in its note type), ...
        if check == 2 and (spec.get("options") or {}).get("duplicateScope") == "deck":
            # AnkiConnect's duplicateScope "deck": a duplicate only of a note with that first field in that deck.
            same = self.col.find_notes(f'"deck:{spec["deckName"]}" "note:{spec["modelName"]}"')
            check = 2 if any(self.col.get_note(n).fields[0] == note.fields[0] for n in same) else 0
        if check != 0:
            return {"canAdd": False, "error": "cannot create note because it is a duplicate"}
        if self.refuse_note is not None and self.refuse_note(spec["fields"]):
            return {"canAdd": False, "error": "cannot create note: refused"}
        return {"canAdd": True}

    def _add_notes(self, specs: list[dict[str, Any]]) -> list[int | None]:
        if not self.null_on_failure:  # current AnkiConnect: all or nothing
            refused = [c["error"] for c in map(self._can_add, specs) if not c["canAdd"]]
            if refused:
                raise Exception(f"{refused[0]}")
        out: list[int | None] = []
        for spec in specs:
            try:
                note = self._new_note(spec)
                check = self._can_add(spec)
                if not check["canAdd"]:
                    raise Exception(check["error"])
                self.col.add_note(note, self.col.decks.id(spec["deckName"]))
                out.append(note.id)
            except Exception:
                if not self.null_on_failure:
                    raise  # current AnkiConnect: all or nothing
                out.append(None)
        return out


if __name__ == "__main__":  # a standalone AnkiConnect over a throwaway collection, for trying the app by hand
    import argparse
    import tempfile
    import time

    parser = argparse.ArgumentParser(description="Serve AnkiConnect's protocol on 127.0.0.1 over a new collection.")
    parser.add_argument("--folder", type=Path, help="where the collection lives (default: a new temporary folder)")
    parser.add_argument("--refuse-import", action="store_true", help="answer importPackage with an error")
    parser.add_argument("--key", help="demand this API key")
    args = parser.parse_args()
    fake = FakeAnkiConnect(args.folder or Path(tempfile.mkdtemp(prefix="fake-anki-")), refuse_import=args.refuse_import,
                           key=args.key).start()  # fmt: skip
    print(fake.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
