"""``mkflash-tui serve`` in a real browser: Debian's Chromium driven by Selenium through chromedriver.

xterm.js draws on a canvas, so the test reads what the app sends: the websocket frames the page receives (from
Chrome's own network log), the requests the page makes, the files it downloads, and the store."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from anki_check import AnkiCollection

from mkflash_tui.job import demo_bytes
from mkflash_tui.serve import COOKIE

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("MKFLASH_REQUIRE_BROWSER"),
    reason="needs Debian's chromium and chromium-driver (apt install chromium chromium-driver; .ci/run does)",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(tmp_path: Path):
    """``mkflash-tui serve`` on a free loopback port, in ``tmp_path``; yields (base address, token)."""
    port = free_port()
    env = {**os.environ, "MKFLASH_DATA_DIR": str(tmp_path / "data"), "OPENAI_API_KEY": "sk-never-on-the-page"}
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "mkflash_tui", "serve", "--port", str(port), "--provider", "offline"]
    with log.open("w") as out:  # a file, not a pipe: the server's log never fills a buffer nobody reads
        proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while not log.read_text().endswith("\n"):
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.05)
        first = log.read_text().splitlines()[0]
        assert first.startswith("mkflash-tui: open http://127.0.0.1:"), first
        address = first.split("open ", 1)[1].strip()
        base, token = address.split("/?token=")
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the server never listened"
                time.sleep(0.1)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def status_of(url: str, cookie: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def test_every_request_without_the_token_is_refused(served) -> None:
    base, token = served
    for path in ("/", "/ws", "/download/0123", f"/?token={token[:-1]}x", "/?token="):
        assert status_of(base + path)[0] == 403, path
    code, headers = status_of(f"{base}/?token={token}")
    assert code == 200
    assert f"{COOKIE}={token}" in headers["Set-Cookie"] and "HttpOnly" in headers["Set-Cookie"]
    assert "SameSite=Strict" in headers["Set-Cookie"]
    assert status_of(f"{base}/", cookie=f"{COOKIE}={token}")[0] == 200  # the page's own later requests
    assert status_of(f"{base}/static/js/textual.js")[0] == 200  # the script is no secret


class Browser:
    """Headless Chromium, with the frames each websocket received and every request the pages made."""

    def __init__(self, downloads: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service

        options = Options()
        options.binary_location = CHROMIUM
        for flag in ("--headless=new", "--no-sandbox", "--disable-background-networking", "--disable-gpu",
                     "--disable-dev-shm-usage", "--disable-popup-blocking", "--window-size=1280,900"):  # fmt: skip
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                                  "download.prompt_for_download": False})  # fmt: skip
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow",
                                                                     "downloadPath": str(downloads)})  # fmt: skip
        self.sockets: list[str] = []  # each websocket's request id, in the order they opened
        self.frames: dict[str, list[str]] = {}
        self.urls: set[str] = set()

    def pump(self) -> None:
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message["params"]
            if message["method"] == "Network.requestWillBeSent":
                self.urls.add(params["request"]["url"])
            elif message["method"] == "Network.webSocketCreated":
                self.urls.add(params["url"])
                self.sockets.append(params["requestId"])
            elif message["method"] == "Network.webSocketFrameReceived":
                frame = params["response"]
                data = frame["payloadData"]
                text = base64.b64decode(data).decode("utf-8", "replace") if frame["opcode"] == 2 else data
                self.frames.setdefault(params["requestId"], []).append(text)

    def received(self, tab: int) -> str:
        self.pump()
        return "".join(self.frames.get(self.sockets[tab], [])) if len(self.sockets) > tab else ""

    def wait_for(self, tab: int, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.received(tab):
            assert time.monotonic() < deadline, f"tab {tab + 1} never showed {text!r}"
            time.sleep(0.2)

    def keys(self, *keys: str) -> None:
        box = self.driver.find_element("css selector", ".xterm-helper-textarea")
        for key in keys:
            box.send_keys(key)
            time.sleep(0.3)

    def quit(self) -> None:
        self.driver.quit()


def app_processes() -> int:
    """The app processes serve started (``python -m mkflash_tui --provider offline``: one per tab)."""
    count = 0
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")[:-1]
        except OSError:
            continue
        count += args[1:4] == [b"-m", b"mkflash_tui", b"--provider"]
    return count


def test_the_app_in_chromium_runs_exports_and_downloads_and_a_second_tab_sees_the_sessions(served, tmp_path):
    from selenium.webdriver.common.keys import Keys

    base, token = served
    (tmp_path / "volcanoes.md").write_bytes(demo_bytes())
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser = Browser(downloads)
    try:
        browser.driver.get(f"{base}/?token={token}")
        browser.wait_for(0, "Settings")  # the start screen: File, Paste, Settings
        browser.keys("volcanoes.md", Keys.ENTER)
        browser.wait_for(0, "x exports")  # the run finished (offline: no key in the settings it was given)
        browser.keys("x", Keys.ENTER)
        browser.wait_for(0, "your browser downloads it")
        deadline = time.monotonic() + 30
        while not (downloads / "volcanoes.apkg").exists():
            assert time.monotonic() < deadline, f"no download: {list(downloads.iterdir())}"
            time.sleep(0.2)
        time.sleep(0.5)  # written in full (Chromium renames its .crdownload file when done)
        assert (downloads / "volcanoes.apkg").read_bytes() == (tmp_path / "volcanoes.apkg").read_bytes()

        # A second tab is a second app on the same store: it lists the first tab's session and can reopen it.
        browser.driver.switch_to.new_window("tab")
        browser.driver.get(f"{base}/?token={token}")
        browser.wait_for(1, "Settings")
        assert app_processes() == 2
        browser.keys(Keys.CONTROL + "o")
        browser.wait_for(1, "Sessions")
        browser.wait_for(1, "How Volcanoes Work")
        browser.driver.save_screenshot(str(tmp_path / "second-tab.png"))

        browser.pump()
        page_host = base.split("//", 1)[1]
        assert browser.urls and all(u.split("//", 1)[1].startswith(page_host + "/") for u in browser.urls), \
            browser.urls  # fmt: skip
        assert "sk-never-on-the-page" not in browser.received(0) + browser.received(1)
    finally:
        browser.quit()
    anki = AnkiCollection(tmp_path / "anki")
    try:
        anki.import_apkg(downloads / "volcanoes.apkg")
        assert len(anki.notes()) == 11
    finally:
        anki.close()
