"""EPUB: the chapters in the spine's order, read by the HTML reader; title and author from the book."""

from __future__ import annotations

import io
import zipfile

from ..models import Block, Document
from .base import SourceError, decode_text
from .html import html_blocks

_OPF = "{http://www.idpf.org/2007/opf}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"
MAX_EPUB_ENTRY = 50 * 1024 * 1024  # an entry that unpacks to more than this is not a chapter (a zip bomb?)


def _read_epub(data: bytes, *, name: str, stem: str) -> Document:
    """An EPUB's chapters in reading (spine) order, their headings as sections; navigation and table-of-contents
    documents left out; title and author from the book's metadata."""
    import posixpath
    from xml.etree import ElementTree

    where = "stdin" if name == "-" else name
    try:
        book = zipfile.ZipFile(io.BytesIO(data))
        names = set(book.namelist())
        if "META-INF/encryption.xml" in names and _drm(book.read("META-INF/encryption.xml")):
            raise SourceError(f"{where} is a DRM-protected EPUB; mkflash-tui can read only unprotected books.")
        container = ElementTree.fromstring(book.read("META-INF/container.xml"))
        rootfile = container.find(f".//{_CONTAINER}rootfile")
        if rootfile is None or not rootfile.get("full-path"):
            raise KeyError("rootfile")
        opf_path = rootfile.get("full-path", "")
        package = ElementTree.fromstring(book.read(opf_path))
        base = posixpath.dirname(opf_path)
        title = " ".join((package.findtext(f".//{_DC}title") or "").split())
        author = " ".join((package.findtext(f".//{_DC}creator") or "").split())
        manifest = {
            item.get("id"): item for item in package.iter(f"{_OPF}item") if item.get("id") and item.get("href")
        }
        toc_id = (package.find(f"{_OPF}spine") or ElementTree.Element("spine")).get("toc")
        blocks: list[Block] = []
        for ref in package.iter(f"{_OPF}itemref"):
            item = manifest.get(ref.get("idref"))
            if item is None or ref.get("linear") == "no" or item.get("id") == toc_id:
                continue
            properties = (item.get("properties") or "").split()
            media = item.get("media-type") or ""
            if "nav" in properties or "html" not in media:
                continue  # the table of contents, or an image or stylesheet in the spine
            path = posixpath.normpath(posixpath.join(base, item.get("href", "").split("#")[0]))
            with book.open(path) as entry:  # read with a bound: the size the zip directory states is not trusted
                raw = entry.read(MAX_EPUB_ENTRY + 1)
            if len(raw) > MAX_EPUB_ENTRY:
                raise SourceError(f"{where}: the chapter {path} unpacks to more than 50 MB; is the book broken?")
            chapter, _, _ = html_blocks(decode_text(raw, name=name))
            blocks.extend(chapter)
    except SourceError:
        raise
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, ValueError, OSError, EOFError):
        raise SourceError(f"{where} is not a readable EPUB (a broken or incomplete book file).") from None
    if not any(b.text.strip() for b in blocks):
        raise SourceError(f"{where} has no text in its chapters (only images?).")
    title = title or stem
    if author:
        title = f"{title} — {author}" if title != stem else title
    return Document(tuple(blocks), title=title, name=name, stem=stem, kind="epub")


def _drm(encryption_xml: bytes) -> bool:
    """Whether an EPUB's encryption.xml encrypts more than fonts (font obfuscation is not DRM)."""
    from xml.etree import ElementTree

    try:
        root = ElementTree.fromstring(encryption_xml)
    except ElementTree.ParseError:
        return True
    for data in root.iter("{http://www.w3.org/2001/04/xmlenc#}EncryptedData"):
        method = data.find("{http://www.w3.org/2001/04/xmlenc#}EncryptionMethod")
        algorithm = method.get("Algorithm", "") if method is not None else ""
        reference = data.find(".//{http://www.w3.org/2001/04/xmlenc#}CipherReference")
        uri = (reference.get("URI", "") if reference is not None else "").lower()
        if "obfuscation" in algorithm or "font" in algorithm or uri.endswith((".otf", ".ttf", ".woff", ".woff2")):
            continue
        return True
    return False


# ---------------------------------------------------------------- subtitles
