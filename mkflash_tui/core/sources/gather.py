"""Many inputs into one list: files, folders (read recursively for the kinds we read), web addresses and list
files, in natural path order, each read once. Nothing here reads a document; it only says which to read.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .base import SourceError
from .web import is_url

# The kinds a folder is searched for (a file named on the command line is read whatever its name).
KINDS = (".txt", ".text", ".md", ".markdown", ".mdown", ".mkd", ".rst", ".html", ".htm", ".xhtml", ".pdf", ".epub",
         ".srt", ".vtt")  # fmt: skip
MAX_INPUTS = 10_000
MAX_LIST_BYTES = 4 * 2**20


@dataclass(slots=True)
class Gathered:
    """What to read, in order, and what was passed over with the sentence saying why."""

    inputs: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)  # the folders given, for the deck's default name
    notes: list[str] = field(default_factory=list)  # what was passed over on purpose (a symlink loop), said once


def natural_key(path: str) -> list:
    """``ch2`` before ``ch10``; letters compared without case."""
    return [int(part) if part.isdigit() else part.casefold() for part in re.split(r"(\d+)", path)]


def gather(names: list[str], *, exclude: list[str] | None = None, from_list: str | None = None) -> Gathered:
    """The inputs ``names`` (files, folders, web addresses) and the lines of ``from_list`` stand for. Raises
    SourceError when a name does not exist or a list cannot be read; a symlink loop, a hidden entry or an
    unsupported kind inside a folder is passed over (a loop is said in ``notes``, a folder that cannot be listed
    in ``skipped``)."""
    exclude = exclude or []
    out = Gathered()
    seen: set[str] = set()
    listed = list(names)
    if from_list:
        listed += _read_list(from_list)

    def add(name: str, key: str) -> None:
        if key in seen or _excluded(name, exclude):
            return
        seen.add(key)
        out.inputs.append(name)
        if len(out.inputs) > MAX_INPUTS:
            raise SourceError(f"more than {MAX_INPUTS:,} documents; give fewer, or --exclude some.")

    for name in listed:
        if is_url(name):
            add(name.strip(), "url:" + name.strip())
            continue
        path = Path(name).expanduser()
        if path.is_dir():
            out.folders.append(path)
            for found in _walk(path, out, exclude):
                add(found, os.path.realpath(found))
        elif path.exists():
            add(name, os.path.realpath(path))
        elif path.is_symlink():
            raise SourceError(f"{name} is a link to something that does not exist.")
        else:
            raise SourceError(f"{name} does not exist.")
    return out


def _walk(top: Path, out: Gathered, exclude: list[str]) -> list[str]:
    """The supported files under ``top``, hidden entries skipped, each folder entered once (a symlink loop is
    refused), in natural order."""
    found: list[str] = []
    entered: set[str] = set()

    def visit(folder: Path) -> None:
        real = os.path.realpath(folder)
        if real in entered:
            out.notes.append(f"{folder} leads back to a folder already read (a symlink loop): not read twice.")
            return
        entered.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: natural_key(e.name))
        except OSError as exc:
            out.skipped.append((str(folder), f"{folder}: cannot list it ({exc.strerror or exc})."))
            return
        files, folders = [], []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = folder / entry.name
            if _excluded(str(path), exclude):
                continue
            try:
                is_dir = entry.is_dir()  # follows links; a dangling link is neither
            except OSError:
                continue
            if is_dir:
                folders.append(path)
            elif entry.is_file() and Path(entry.name).suffix.lower() in KINDS:
                files.append(str(path))
        found.extend(files)  # a folder's own files before its subfolders'
        for sub in folders:
            visit(sub)

    visit(top)
    return found


def _excluded(name: str, patterns: list[str]) -> bool:
    """Whether ``name`` matches a ``--exclude`` glob: by its whole path or by any one of its parts."""
    parts = Path(name).parts
    return any(fnmatch.fnmatch(name, p) or any(fnmatch.fnmatch(part, p) for part in parts) for p in patterns)


def _read_list(name: str) -> list[str]:
    """A list file's paths and addresses, one a line; blank lines and ``#`` comments skipped; relative paths
    are read from the list's folder."""
    try:
        with open(name, "rb") as handle:
            data = handle.read(MAX_LIST_BYTES + 1)
    except OSError as exc:
        raise SourceError(f"{name}: cannot read the list ({exc.strerror or exc}).") from None
    if len(data) > MAX_LIST_BYTES:
        raise SourceError(f"{name} is larger than {MAX_LIST_BYTES // 2**20} MB; a list holds one path a line.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SourceError(f"{name} is not UTF-8 text; a list holds one path or web address a line.") from None
    base = Path(name).expanduser().parent
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        out.append(line if is_url(line) or Path(line).expanduser().is_absolute() else str(base / line))
    return out
