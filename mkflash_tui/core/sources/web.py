"""Read a web page (or a PDF, EPUB, text or subtitle file served by URL) into a ``Document``.

The fetch follows redirects, is bounded in time as a whole (a server that drips bytes forever is cut off) and in
size (what the server says about its size is not trusted), and refuses content that is not text with one
sentence. Only the page's main content is kept (see ``html.html_blocks``).
"""

from __future__ import annotations

import posixpath
import time
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message

from .base import SourceError

FETCH_TIMEOUT = 30.0  # seconds for the whole fetch
MAX_FETCH_BYTES = 20 * 1024 * 1024
USER_AGENT = "mkflash-tui (flashcards from text; +https://pypi.org/project/mkflash-tui/)"

_READERS = {
    "text/html": ".html",
    "application/xhtml+xml": ".html",
    "text/plain": ".txt",
    "text/markdown": ".md",
    "text/x-markdown": ".md",
    "application/pdf": ".pdf",
    "application/epub+zip": ".epub",
    "text/vtt": ".vtt",
    "application/x-subrip": ".srt",
    "text/srt": ".srt",
}


def is_url(text: str) -> bool:
    return text.strip().lower().startswith(("http://", "https://"))


def fetch(url: str, *, timeout: float = FETCH_TIMEOUT, max_bytes: int = MAX_FETCH_BYTES) -> tuple[bytes, str, str]:
    """The body at ``url``, with the stem and suffix it is read by (the dispatcher chooses the reader). Raises
    SourceError with one sentence."""
    url = url.strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceError(f"{url} is not a web address mkflash-tui can fetch (http:// or https://).")
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "text/html,*/*;q=0.8"})
    try:
        with urllib.request.urlopen(request, timeout=min(timeout, 15.0)) as response:
            final_url = response.geturl()
            headers: Message = response.headers
            body = _read_bounded(response, url, deadline, timeout, max_bytes)
    except SourceError:
        raise
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            # urllib gives up on a redirect loop (or more than ten redirects) with a text of three lines.
            raise SourceError(f"{url} redirects in a loop (or too many times); open it in a browser to find the "
                              "page's own address.") from None  # fmt: skip
        reason = " ".join(str(exc.reason).split())[:200]
        raise SourceError(f"{url}: the server answered {exc.code} {reason}.") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            raise SourceError(f"{url} did not answer within {timeout:g} s.") from None
        raise SourceError(f"cannot reach {parts.hostname} ({_reason(reason)}).") from None
    except TimeoutError:
        raise SourceError(f"{url} did not finish within {timeout:g} s.") from None
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot fetch {url} ({_reason(exc)}).") from None
    media = (headers.get_content_type() or "").lower() if headers.get("Content-Type") else ""
    path = urllib.parse.urlsplit(final_url).path
    stem = posixpath.splitext(posixpath.basename(path.rstrip("/")))[0] or parts.hostname.split(".")[0]
    suffix = _READERS.get(media, "")
    if not suffix:
        path_suffix = posixpath.splitext(path)[1].lower()
        if media and not media.startswith("text/") and media not in ("application/octet-stream", ""):
            raise SourceError(
                f"{url} is {media}, not a page or document mkflash-tui can read (HTML, text, PDF, EPUB, subtitles)."
            )
        suffix = path_suffix if path_suffix in (".md", ".txt", ".srt", ".vtt", ".pdf", ".epub", ".html") else ""
    charset = headers.get_content_charset() if headers.get("Content-Type") else None
    if charset and suffix in (".html", ".txt", ".md", ".vtt", ".srt", ""):
        try:
            body = body.decode(charset).encode("utf-8")
        except (LookupError, UnicodeDecodeError):
            pass  # a wrong or unknown charset: let the reader detect it
    return body, stem, suffix


def _read_bounded(response, url: str, deadline: float, timeout: float, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise SourceError(f"{url} did not finish within {timeout:g} s.")
        piece = response.read1(65536)
        if not piece:
            return b"".join(chunks)
        size += len(piece)
        if size > max_bytes:
            raise SourceError(f"{url} is larger than {max_bytes // 2**20} MB; mkflash-tui reads pages up to that.")
        chunks.append(piece)


def _reason(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason) or type(reason).__name__
