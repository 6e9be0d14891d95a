"""Reading inputs: structure kept, bad input refused with one sentence."""

from __future__ import annotations

import io
import os

import pytest

from mkflash_tui.core.sources import SourceError, parse_bytes, read_source


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A minimal, valid PDF whose pages carry the given text (one line each); empty strings make blank pages."""
    objects: list[bytes] = []
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, text in enumerate(pages):
        content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode() if text else b""
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {page_ids[i] + 1} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    info_id = None
    if title:
        objects.append(f"<< /Title ({title}) >>".encode())
        info_id = len(objects)
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + obj + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    info = f" /Info {info_id} 0 R" if info_id else ""
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def test_markdown_headings_become_paths() -> None:
    text = "# Book\n\n## Chapter 1\n\nIntro text.\n\n### Part A\n\nDeep text.\n\n## Chapter 2\n\nMore text.\n"
    doc = parse_bytes(text.encode(), name="b.md", stem="b", suffix=".md")
    assert doc.title == "Book"
    assert [(b.headings, b.text) for b in doc.blocks] == [
        (("Chapter 1",), "Intro text."),
        (("Chapter 1", "Part A"), "Deep text."),
        (("Chapter 2",), "More text."),
    ]


def test_setext_headings_and_code_fences() -> None:
    text = "Title Here\n==========\n\nBody.\n\n```\n# not a heading\n```\n"
    doc = parse_bytes(text.encode(), name="t.txt", stem="t", suffix=".txt")
    assert doc.title == "Title Here"
    assert "# not a heading" in doc.text


def test_title_falls_back_to_file_stem() -> None:
    doc = parse_bytes(b"Just some words here.", name="notes.txt", stem="notes", suffix=".txt")
    assert doc.title == "notes"


def test_html_text_only_with_title_and_headings() -> None:
    page = (
        "<html><head><title>The Page</title><style>body{color:red}</style></head><body>"
        "<script>alert('x')</script><h1>Main</h1><p>First &amp; foremost.</p><h2>Sub</h2><p>Second.</p>"
        "<noscript>enable js</noscript></body></html>"
    )
    doc = parse_bytes(page.encode(), name="p.html", stem="p", suffix=".html")
    assert doc.title == "Main"  # the page's own heading: <title> often carries the site's name too
    assert "alert" not in doc.text and "color" not in doc.text and "enable js" not in doc.text
    assert [(b.headings, b.text) for b in doc.blocks] == [((), "First & foremost."), (("Sub",), "Second.")]
    untitled = parse_bytes(page.replace("h1", "p").replace("h2", "p").encode(), name="p.html", stem="p", suffix=".html")
    assert untitled.title == "The Page"


def test_pdf_pages_and_metadata_title() -> None:
    doc = parse_bytes(
        make_pdf(["First page text.", "Second page text."], title="PDF Title"), name="d.pdf", stem="d", suffix=".pdf"
    )
    assert doc.title == "PDF Title"
    assert [(b.page, b.text) for b in doc.blocks] == [(1, "First page text."), (2, "Second page text.")]


def test_pdf_without_text_layer() -> None:
    with pytest.raises(SourceError, match="no text layer"):
        parse_bytes(make_pdf(["", ""]), name="scan.pdf", stem="scan", suffix=".pdf")


def test_broken_pdf() -> None:
    with pytest.raises(SourceError, match="not a readable PDF"):
        parse_bytes(b"%PDF-1.4\nthis is not really a pdf", name="x.pdf", stem="x", suffix=".pdf")


def test_latin1_and_cp1252_are_decoded() -> None:
    text = "Café déjà vu — “quoted” naïve façade. " * 20
    doc = parse_bytes(text.encode("cp1252"), name="w.txt", stem="w", suffix=".txt")
    assert "Café déjà vu" in doc.text and "naïve façade" in doc.text
    doc = parse_bytes("Grüße aus Köln, schöne Straße. ".encode("latin-1") * 20, name="l.txt", stem="l", suffix=".txt")
    assert "Grüße aus Köln" in doc.text
    doc = parse_bytes("Привет, как дела? Это тест. ".encode("cp1251") * 20, name="r.txt", stem="r", suffix=".txt")
    assert "Привет, как дела?" in doc.text


@pytest.mark.parametrize(
    "data,message",
    [
        (b"", "no text"),
        (b"   \n\n\t  \n", "no text"),
        (bytes(range(256)) * 10, "binary"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 100, "binary"),
    ],
)
def test_unreadable_content(data: bytes, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        parse_bytes(data, name="x.txt", stem="x", suffix=".txt")


def test_missing_file_directory_and_permission(tmp_path, monkeypatch) -> None:
    with pytest.raises(SourceError, match="no such file"):
        read_source(str(tmp_path / "nope.md"))
    with pytest.raises(SourceError, match="is a directory"):
        read_source(str(tmp_path))
    locked = tmp_path / "locked.md"
    locked.write_text("secret")
    # Tests run as root here, where chmod 000 does not stop reads: have the OS say no instead.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(SourceError, match="permission denied"):
        read_source(str(locked))


def test_stdin() -> None:
    doc = read_source("-", stdin=io.BytesIO(b"# From Stdin\n\nHello there."))
    assert doc.title == "From Stdin" and doc.stem == "stdin" and doc.text == "Hello there."
