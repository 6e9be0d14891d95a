"""PDF: its pages' text, located by page; title from its metadata."""

from __future__ import annotations

import io
import re

from ..models import Block, Document
from .base import SourceError, _normalise_newlines


def _read_pdf(data: bytes, *, name: str, stem: str) -> Document:
    where = "stdin" if name == "-" else name
    try:
        import logging

        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

        logging.getLogger("pypdf").setLevel(logging.ERROR)
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception:
                raise SourceError(f"{where} is an encrypted PDF; decrypt it first.") from None
        blocks: list[Block] = []
        for number, page in enumerate(reader.pages, start=1):
            page_text = _normalise_newlines(page.extract_text() or "")
            for para in re.split(r"\n\s*\n", page_text):
                para = para.strip()
                if para:
                    blocks.append(Block(para, (), number))
        meta_title = ""
        try:
            meta_title = (reader.metadata.title or "") if reader.metadata else ""
        except Exception:
            meta_title = ""
    except SourceError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise SourceError(f"{where} is not a readable PDF ({type(exc).__name__}).") from None
    if not any(b.text.strip() for b in blocks):
        raise SourceError(f"{where} has no text layer (a scanned PDF?); run OCR on it first.")
    return Document(tuple(blocks), title=" ".join(meta_title.split()) or stem, name=name, stem=stem, kind="pdf")
