"""What learners read: EPUB, web pages, subtitles, reStructuredText and plain-text headings, Markdown as people
write it, and one title. Inputs are made by ``tests/data/make_inputs.py``; web pages are served from 127.0.0.1.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from anki_check import AnkiCollection
from conftest import run_cli
from fake_openai import FakeOpenAI
from test_sources import make_pdf

from mkflash_tui.core.sources import SourceError, fetch_url, parse_bytes, read_source

sys.path.insert(0, str(Path(__file__).parent / "data"))
from make_inputs import COOKIE, KEY_HELP, THEME_MENU, epub_bytes, make_all


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    return make_all(tmp_path_factory.mktemp("inputs"))


def offline_cards(tmp_path: Path, source: str, *extra: str) -> dict:
    """The JSON export of an offline run over ``source`` (a path or a URL)."""
    out = tmp_path / f"cards-{time.monotonic_ns()}.json"
    proc = run_cli("generate", source, "-o", str(out), "--chunk-tokens", "200", *extra, cwd=tmp_path,
                   env={"MKFLASH_DATA_DIR": str(tmp_path / "data")})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def every_text(deck: dict) -> str:
    return " ".join(f"{c['front']} {c['back']} {c['quote']} {c['location']}" for c in deck["cards"])


# ---------------------------------------------------------------- plain text, reStructuredText, Markdown


def test_rst_headings_give_sections_and_the_first_is_the_title(inputs) -> None:
    doc = read_source(str(inputs["reference.rst"]))
    assert doc.title == "The Sample Language Reference"  # the first heading, overlined with *, not a later ===
    assert [b.headings for b in doc.blocks] == [
        (),
        ("Lexical analysis",),
        ("Lexical analysis", "Line structure"),
        ("Data model",),
    ]
    assert not any(set(line) <= set("*=-~ ") for b in doc.blocks for line in b.text.split("\n"))
    assert not any(".. a comment" in b.text for b in doc.blocks)


def test_plain_text_setext_headings_without_their_underline() -> None:
    text = "Field Guide\n~~~~~~~~~~~\n\nIntro.\n\nBirds\n-----\n\nA robin sings.\n\nInsects\n-------\n\nA bee dances.\n"
    doc = parse_bytes(text.encode(), name="g.txt", stem="g", suffix=".txt")
    assert doc.title == "Field Guide"
    assert [(b.headings, b.text) for b in doc.blocks] == [
        ((), "Intro."),
        (("Birds",), "A robin sings."),
        (("Insects",), "A bee dances."),
    ]


def test_markdown_front_matter_wikilinks_and_callouts(inputs) -> None:
    doc = read_source(str(inputs["vault.md"]))
    assert doc.title == "Plate Tectonics (vault note)"
    text = doc.text
    assert "tags:" not in text and "aliases" not in text and "---" not in text
    assert "broken into tectonic plates that move over the Asthenosphere" in text
    assert "Earthquakes › Causes" in text and "[[" not in text and "plate-map" not in text
    assert "Important: Subduction\nAt a convergent boundary" in text
    assert "> An ordinary quotation stays a quotation." in text


# ---------------------------------------------------------------- HTML


def test_a_documentation_page_keeps_its_content_and_drops_its_chrome(inputs, tmp_path: Path) -> None:
    doc = read_source(str(inputs["docs.html"]))
    assert doc.title == "What Is Ownership?"
    text = doc.text
    for chrome in [*THEME_MENU, KEY_HELP, COOKIE, "Search this book", "Getting Started", "Previous chapter",
                   "Built with", "Keyboard shortcuts"]:  # fmt: skip
        assert chrome not in text, chrome
    assert 'fn main() {\n    let s = String::from("hello");\n    takes_ownership(s);\n}' in text  # <pre> lines
    assert [b.headings for b in doc.blocks][-1] == ("The Rules",)
    deck = offline_cards(tmp_path, str(inputs["docs.html"]))
    assert deck["cards"] and not any(word in every_text(deck).split() for word in ("Coal", "Navy", "Ayu"))
    assert KEY_HELP not in every_text(deck)


def test_a_blog_post_keeps_the_article(inputs) -> None:
    doc = read_source(str(inputs["blog.html"]))
    assert doc.title == "Why Bees Dance"
    assert "waggle dance" in doc.text and "angle of the dance" in doc.text
    assert "About" not in doc.text and "newsletter" not in doc.text and "Planting for pollinators" not in doc.text


# ---------------------------------------------------------------- EPUB


def test_an_epub_in_reading_order_without_its_contents_pages(inputs) -> None:
    doc = read_source(str(inputs["book.epub"]))
    assert doc.title.startswith("Landforms for Beginners") and "A. Sample" in doc.title
    assert [b.headings[0] for b in doc.blocks] == ["Glaciers"] * 2 + ["Rivers"] * 2 + ["Deserts"] * 2  # the spine
    text = doc.text
    assert "Contents entry" not in text and "NCX entry" not in text and "Table of Contents" not in text
    assert "tracking" not in text and "a picture" not in text
    assert doc.kind == "epub"


def test_broken_and_protected_epubs_get_one_sentence(inputs, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is a DRM-protected EPUB"):
        read_source(str(inputs["drm.epub"]))
    broken = tmp_path / "broken.epub"
    broken.write_bytes(epub_bytes()[:3000])
    proc = run_cli("generate", str(broken), cwd=tmp_path, env={"MKFLASH_DATA_DIR": str(tmp_path / "data")})
    assert proc.returncode == 2 and "is not a readable EPUB" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1


# ---------------------------------------------------------------- subtitles


@pytest.mark.parametrize("name", ["lecture.srt", "lecture.vtt"])
def test_subtitles_lose_their_timings_and_keep_them_as_locations(inputs, name: str) -> None:
    doc = read_source(str(inputs[name]))
    text = doc.text
    assert "-->" not in text and "<" not in text and "{\\" not in text and "WEBVTT" not in text
    assert "This note is not part of the lecture" not in text
    assert all(b.headings and b.headings[0].startswith("at ") for b in doc.blocks)
    if name == "lecture.srt":
        assert [b.headings for b in doc.blocks] == [("at 0:01",), ("at 12:34",)]
        assert doc.blocks[0].text.startswith("Welcome to this lecture about volcanoes. A volcano is")
    else:
        assert [b.headings for b in doc.blocks] == [("at 0:01",), ("at 1:02:03",)]


def test_cards_from_a_transcript_carry_their_time_into_the_deck(inputs, tmp_path: Path) -> None:
    deck = offline_cards(tmp_path, str(inputs["lecture.srt"]), "--cards", "4")
    by_quote = {c["quote"]: c["location"] for c in deck["cards"]}
    assert any("caldera" in q and where == "at 12:34" for q, where in by_quote.items()), by_quote
    proc = run_cli("generate", str(inputs["lecture.srt"]), "-o", "lecture.apkg", "--cards", "4", cwd=tmp_path,
                   env={"MKFLASH_DATA_DIR": str(tmp_path / "data")})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    collection = AnkiCollection(tmp_path / "anki")
    try:
        collection.import_apkg(tmp_path / "lecture.apkg")
        contexts = [n.fields["Context"] for n in collection.notes()]
    finally:
        collection.close()
    assert any(c.endswith("at 12:34") for c in contexts) and any(c.endswith("at 0:01") for c in contexts)


# ---------------------------------------------------------------- web pages


class Site(ThreadingHTTPServer):
    """Real-looking pages on 127.0.0.1: a documentation page, a blog post, a PDF, a redirect, a 404, an image,
    a page that never finishes and one too large."""

    daemon_threads = True

    def __init__(self, inputs: dict[str, Path]) -> None:
        self.pages = {
            "/book/ownership.html": ("text/html; charset=utf-8", inputs["docs.html"].read_bytes()),
            "/blog/bees": ("text/html", inputs["blog.html"].read_bytes()),
            "/papers/rivers.pdf": ("application/pdf", make_pdf(["Rivers carry sediment to the sea."], title="Rivers")),
            "/talks/volcanoes.vtt": ("text/vtt", inputs["lecture.vtt"].read_bytes()),
            "/photo.png": ("image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100),
        }
        self.hits: list[str] = []
        super().__init__(("127.0.0.1", 0), _Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        site: Site = self.server  # type: ignore[assignment]
        site.hits.append(self.path)
        if self.path == "/old-blog":
            self.send_response(301)
            self.send_header("Location", "/blog/bees")
            self.end_headers()
        elif self.path in site.pages:
            kind, body = site.pages[self.path]
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/never-ends":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            try:
                for _ in range(600):
                    self.wfile.write(b"<p>more</p>")
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass
        elif self.path == "/huge":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")  # no length said: the body ends when the server closes
            self.end_headers()
            try:
                for _ in range(200):
                    self.wfile.write(b"<p>" + b"x" * 65536 + b"</p>")
            except OSError:
                pass
        else:
            self.send_response(404, "Not Found")
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><body><h1>Not here</h1></body></html>")


@pytest.fixture
def site(inputs):
    server = Site(inputs)
    yield server
    server.shutdown()
    server.server_close()


def test_a_documentation_page_by_url_makes_cards_without_its_menus(site: Site, tmp_path: Path) -> None:
    deck = offline_cards(tmp_path, site.url("/book/ownership.html"))
    assert deck["title"] == "What Is Ownership?" and deck["cards"]
    words = every_text(deck).split()
    assert not any(theme in words for theme in THEME_MENU if theme not in ("Auto", "Light"))
    assert KEY_HELP not in every_text(deck) and COOKIE not in every_text(deck)


def test_redirects_pdfs_and_subtitles_by_url(site: Site) -> None:
    post = fetch_url(site.url("/old-blog"))
    assert post.title == "Why Bees Dance" and "waggle dance" in post.text and post.name == site.url("/old-blog")
    paper = fetch_url(site.url("/papers/rivers.pdf"))
    assert paper.kind == "pdf" and "Rivers carry sediment" in paper.text and paper.blocks[0].page == 1
    talk = fetch_url(site.url("/talks/volcanoes.vtt"))
    assert talk.kind == "subtitles" and talk.blocks[0].headings == ("at 0:01",)


def test_what_a_url_cannot_give_gets_one_sentence(site: Site, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"the server answered 404 Not Found\.$"):
        fetch_url(site.url("/missing"))
    with pytest.raises(SourceError, match=r"is image/png, not a page or document mkflash-tui can read"):
        fetch_url(site.url("/photo.png"))
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"did not finish within 1 s\.$"):
        fetch_url(site.url("/never-ends"), timeout=1)
    assert time.monotonic() - started < 5
    with pytest.raises(SourceError, match=r"is larger than 1 MB"):
        fetch_url(site.url("/huge"), max_bytes=2**20)
    with pytest.raises(SourceError, match=r"cannot reach 127\.0\.0\.1"):
        fetch_url("http://127.0.0.1:9/nothing-listens-here")
    proc = run_cli("generate", site.url("/missing"), cwd=tmp_path, env={"MKFLASH_DATA_DIR": str(tmp_path / "d")})
    sentence = f"mkflash-tui: {site.url('/missing')}: the server answered 404 Not Found.\n"
    assert proc.returncode == 2 and proc.stderr == sentence


def test_a_url_is_its_session_and_a_new_run_fetches_again(site: Site, tmp_path: Path) -> None:
    url = site.url("/blog/bees")
    env = {"MKFLASH_DATA_DIR": str(tmp_path / "data")}
    first = run_cli("generate", url, "--json", "-o", "a.json", cwd=tmp_path, env=env)
    second = run_cli("generate", url, "--json", "-o", "b.json", cwd=tmp_path, env=env)
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert two["resumed"] and two["session"] == one["session"] and two["changes"]["changed"] == 0
    assert site.hits.count("/blog/bees") == 2  # each new run fetches the page again
    from mkflash_tui.core.store import Store

    store = Store(tmp_path / "data")
    source = store.session_source(one["session"])
    store.close()
    assert source is not None and "waggle dance" in source[1].text and source[2] == f"url:{url}"


# ---------------------------------------------------------------- one title


def test_one_title_the_documents_own_when_it_has_one(tmp_path: Path) -> None:
    (tmp_path / "own.md").write_text("# Mountain Weather\n\nClouds form when air rises and cools.\n")
    (tmp_path / "plain.txt").write_text("Clouds form when air rises and cools. Rain falls when drops grow.\n")
    with FakeOpenAI() as server:  # its summaries are titled "A document about things"
        reports = {}
        for name in ("own.md", "plain.txt"):
            env = {"MKFLASH_DATA_DIR": str(tmp_path / "d")}
            proc = run_cli("generate", name, "--base-url", server.base_url, "--api-key", "k", "--yes", "--json",
                           "-o", f"{name}.apkg", cwd=tmp_path, env=env)  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            reports[name] = json.loads(proc.stdout)
    assert reports["own.md"]["deck"] == "Mountain Weather"
    assert reports["plain.txt"]["deck"] == "A document about things"  # no title of its own: the summary's


async def test_a_web_address_on_the_start_screen(site: Site, tmp_path: Path, monkeypatch) -> None:
    from textual.widgets import Input, TextArea
    from tui_support import app_settings, wait_for

    from mkflash_tui.tui.app import make_app
    from mkflash_tui.tui.screens.start import StartScreen

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MKFLASH_DATA_DIR", str(tmp_path / "data"))
    app = make_app(app_settings(), pace=0)
    async with app.run_test(size=(120, 40)) as pilot:
        assert isinstance(app.screen, StartScreen)
        app.screen.query_one("#path", Input).value = site.url("/book/ownership.html")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.run_screen is not None and app.run_screen.finished, what="the run")
        screen = app.run_screen
        assert screen.run.title == "What Is Ownership?" and screen.cards()
        assert not any("Navy" in c.front + c.back for c in screen.cards())
        await pilot.press("ctrl+q")
    app = make_app(app_settings(), pace=0)  # a web address pasted in the Paste tab is read as the page
    async with app.run_test(size=(120, 40)) as pilot:
        app.screen.query_one("#start-tabs").active = "tab-paste"
        await pilot.pause()
        app.screen.query_one("#pasted", TextArea).text = site.url("/blog/bees") + "\n"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.run_screen is not None and app.run_screen.finished, what="the run")
        assert app.run_screen.job.document.title == "Why Bees Dance"
        await pilot.press("ctrl+q")


def test_a_real_mdbook_page() -> None:
    """The Rust book's own page, as shipped (its <html> carries the class "sidebar-visible": page state, not
    furniture)."""
    doc = read_source(str(Path(__file__).parent / "data" / "quality" / "rust-ownership.html"))
    assert doc.title == "What Is Ownership?"
    words = set(doc.text.split())
    assert not {"Coal", "Navy", "Ayu"} & words and "Keyboard shortcuts" not in doc.text
    assert "Ownership is a set of rules that govern how a Rust program manages memory." in doc.text
    assert any("\n    " in b.text for b in doc.blocks)  # code listings keep their indentation


def test_a_card_is_located_where_its_quote_is() -> None:
    from mkflash_tui.core.cards import make_cards
    from mkflash_tui.core.models import CardDraft, CardKind, Chunk

    places = ((0, ("Old",), None), (19, ("New",), None), (43, ("Later",), None))
    text = "Old section tail.\n\nNew section text here.\n\nLater words."
    chunk = Chunk("x.0", 0, text, 12, ("New",), None, overlap_chars=19, places=places)
    drafts = [CardDraft("Q?", "A", "", CardKind.BASIC), CardDraft("R?", "B", "Old section tail.", CardKind.BASIC),
              CardDraft("S?", "C", "Later  words.", CardKind.BASIC)]  # fmt: skip
    assert [c.headings for c in make_cards(chunk, drafts)] == [("New",), ("Old",), ("Later",)]


@pytest.mark.parametrize("name", ["book.epub", "lecture.srt", "lecture.vtt", "docs.html", "vault.md", "reference.rst"])
def test_damaged_inputs_are_read_or_refused_in_one_sentence(inputs, name: str) -> None:
    """Each sample, damaged 150 ways (bytes flipped, inserted, cut): it is read, or refused with SourceError."""
    import random

    from mkflash_tui.core.sources import parse_bytes

    seed = inputs[name].read_bytes()
    rng = random.Random(name)
    suffix = Path(name).suffix
    for _ in range(150):
        data = bytearray(seed)
        for _ in range(rng.randint(1, 20)):
            at = rng.randrange(len(data)) if data else 0
            roll = rng.random()
            if roll < 0.4 and data:
                data[at] = rng.randrange(256)
            elif roll < 0.7:
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            else:
                del data[at : at + rng.randint(1, 50)]
        try:
            parse_bytes(bytes(data), name=name, stem="f", suffix=suffix)
        except SourceError as exc:
            assert "\n" not in str(exc) and str(exc).endswith(".")
