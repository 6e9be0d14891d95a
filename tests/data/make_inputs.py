"""Sample inputs of every kind mkflash-tui reads, made by this script (nothing copied from elsewhere).

    python tests/data/make_inputs.py OUT_DIR

Writes: ``book.epub`` (EPUB 3 with a navigation document, an NCX, a cover image, a script and chapters whose
reading order differs from their manifest order), ``drm.epub`` (encrypted chapters), ``lecture.srt``,
``lecture.vtt``, ``docs.html`` (a documentation page with a sidebar, a theme menu, key help, a search bar, a
cookie banner and a code block), ``blog.html``, ``reference.rst`` and ``vault.md`` (front matter, wikilinks,
callouts). The tests import ``make_all`` and check what the readers make of each.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

THEME_MENU = ["Auto", "Light", "Rust", "Coal", "Navy", "Ayu"]
KEY_HELP = "Press ← or → to navigate between chapters"
COOKIE = "We use cookies to improve your experience"

CHAPTERS = {
    "ch1.xhtml": ("Rivers", ["A river is a natural stream of fresh water.", "A delta forms at a river's mouth."]),
    "ch2.xhtml": ("Glaciers", ["A glacier is a persistent body of dense ice.", "A moraine is glacial debris."]),
    "ch3.xhtml": ("Deserts", ["A desert receives less than 250 millimetres of rain.", "A dune is a hill of sand."]),
}
READING_ORDER = ["ch2.xhtml", "ch1.xhtml", "ch3.xhtml"]  # not the manifest's order


def _chapter(title: str, paragraphs: list[str]) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><head>'
        f"<title>{title}</title><script>var tracking = 1;</script></head><body><h1>{title}</h1>"
        f'<img src="cover.png" alt="a picture"/>{body}</body></html>'
    )


def epub_bytes(*, drm: bool = False) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as book:
        book.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        book.writestr(
            "META-INF/container.xml",
            '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
            '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
            "</rootfiles></container>",
        )
        if drm:
            book.writestr(
                "META-INF/encryption.xml",
                '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
                'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
                '<enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
                '<enc:CipherData><enc:CipherReference URI="OEBPS/ch1.xhtml"/></enc:CipherData>'
                "</enc:EncryptedData></encryption>",
            )
        manifest = "".join(
            f'<item id="{name[:-6]}" href="{name}" media-type="application/xhtml+xml"/>' for name in CHAPTERS
        )
        spine = "".join(f'<itemref idref="{name[:-6]}"/>' for name in READING_ORDER)
        book.writestr(
            "OEBPS/content.opf",
            '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">'
            '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="id">sample-1</dc:identifier>'
            "<dc:title>Landforms for Beginners</dc:title><dc:creator>A. Sample</dc:creator>"
            "<dc:language>en</dc:language>"
            '</metadata><manifest><item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>'
            '<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>'
            '<item id="cover" href="cover.png" media-type="image/png"/>'
            f'{manifest}</manifest><spine toc="ncx"><itemref idref="nav"/><itemref idref="cover"/>{spine}</spine>'
            "</package>",
        )
        book.writestr(
            "OEBPS/nav.xhtml",
            '<html xmlns="http://www.w3.org/1999/xhtml"><body><nav><h1>Table of Contents</h1><ol>'
            "<li>Contents entry one</li><li>Contents entry two</li></ol></nav></body></html>",
        )
        book.writestr("OEBPS/toc.ncx", "<ncx><navMap><navPoint><text>NCX entry</text></navPoint></navMap></ncx>")
        book.writestr("OEBPS/cover.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
        for name, (title, paragraphs) in CHAPTERS.items():
            book.writestr(f"OEBPS/{name}", _chapter(title, paragraphs))
    return buffer.getvalue()


SRT = """1
00:00:01,000 --> 00:00:04,000
<i>Welcome</i> to this lecture about volcanoes.

2
00:00:04,500 --> 00:00:09,000
A volcano is an opening in the crust through which magma escapes.

3
00:12:34,000 --> 00:12:39,500
{\\an8}A caldera is a large depression left after an eruption empties the magma chamber.

4
00:12:40,000 --> 00:12:44,000
Pumice is a light volcanic rock full of gas bubbles.
"""

VTT = """WEBVTT
Kind: captions

NOTE
This note is not part of the lecture.

00:00:01.000 --> 00:00:05.000 align:start position:0%
<v Lecturer>Tides are caused mainly by the gravitational pull of the Moon.</v>

cue-2
01:02:03.000 --> 01:02:07.000
<c.yellow>Upwelling brings cold, nutrient-rich water toward the surface.</c>
"""


def docs_html() -> str:
    menu = "".join(f'<li role="none"><button role="menuitem" class="theme">{t}</button></li>' for t in THEME_MENU)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Ownership - The Sample Book</title>
<link rel="stylesheet" href="book.css"><script>window.playground_copyable = true;</script></head>
<body>
<div id="body-container"><div class="sidebar-scrollbox">
<nav id="sidebar" class="sidebar" aria-label="Table of contents">
<ol class="chapter"><li class="chapter-item">1. Getting Started</li><li class="chapter-item">2. Ownership</li></ol>
</nav></div>
<div id="page-wrapper" class="page-wrapper"><div class="page">
<div id="menu-bar" class="menu-bar sticky"><div class="left-buttons">
<button id="theme-toggle" class="icon-button" type="button" title="Change theme">Theme</button>
<ul id="theme-list" class="theme-popup" aria-label="Themes" role="menu">{menu}</ul>
</div><h1 class="menu-title">The Sample Book</h1></div>
<div id="search-wrapper" class="hidden"><form id="searchbar-outer">
<input type="search" placeholder="Search this book ..."></form></div>
<div id="content" class="content"><main>
<h1 id="what-is-ownership"><a class="header" href="#what-is-ownership">What Is Ownership?</a></h1>
<p>Ownership is a set of rules that govern how a program manages memory.</p>
<h2>The Rules</h2>
<p>Each value has an owner. There can only be one owner at a time.</p>
<pre><code class="language-rust">fn main() {{
    let s = String::from("hello");
    takes_ownership(s);
}}
</code></pre>
<p>When the owner goes out of scope, the value will be dropped.</p>
</main>
<nav class="nav-wrapper" aria-label="Page navigation"><a rel="prev" href="ch03.html">Previous chapter</a></nav>
</div></div></div></div>
<div id="mdbook-help-container"><div id="mdbook-help-popup"><h2 class="mdbook-help-title">Keyboard shortcuts</h2>
<p>{KEY_HELP}</p></div></div>
<div class="cookie-banner" role="dialog"><p>{COOKIE}. <button>Accept</button></p></div>
<footer><p>Built with a static site generator</p></footer>
</body></html>"""


def blog_html() -> str:
    return """<!DOCTYPE html><html><head><title>Why Bees Dance | Garden Notes Blog</title></head><body>
<header class="site-header"><a href="/">Garden Notes</a>
<nav><a href="/about">About</a><a href="/tags">Tags</a></nav></header>
<article><header><h1>Why Bees Dance</h1><p class="byline">Posted in spring</p></header>
<p>Honey bees perform a waggle dance to tell their hive mates where food is.</p>
<p>The angle of the dance shows the direction of the food relative to the sun.</p>
<aside class="related"><h3>Related posts</h3><ul><li>Planting for pollinators</li></ul></aside>
</article>
<footer class="site-footer">Subscribe to our newsletter for weekly garden tips</footer>
</body></html>"""


REFERENCE_RST = """.. a comment the reader keeps as text is fine

*****************************
The Sample Language Reference
*****************************

This reference describes the syntax of the sample language.

Lexical analysis
================

A program is read by a parser that works on tokens.

Line structure
--------------

A program is divided into a number of logical lines.

Data model
==========

Objects are the sample language's abstraction for data.
"""

VAULT_MD = """---
title: "Plate Tectonics (vault note)"
tags: [geology, earth]
aliases:
  - tectonics
---

# Plates

The lithosphere is broken into [[Tectonic Plate|tectonic plates]] that move over the [[Asthenosphere]].
See also [[Earthquakes#Causes]]. ![[plate-map.png]]

> [!important] Subduction
> At a convergent boundary one plate sinks beneath another.

> An ordinary quotation stays a quotation.
"""


def make_all(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "book.epub": epub_bytes(),
        "drm.epub": epub_bytes(drm=True),
        "lecture.srt": SRT.encode(),
        "lecture.vtt": VTT.encode(),
        "docs.html": docs_html().encode(),
        "blog.html": blog_html().encode(),
        "reference.rst": REFERENCE_RST.encode(),
        "vault.md": VAULT_MD.encode(),
    }
    out = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        out[name] = folder / name
    return out


if __name__ == "__main__":
    for path in make_all(Path(sys.argv[1] if len(sys.argv) > 1 else ".")).values():
        print(path)
