"""Settings that stay: the config file (precedence, comments kept, profiles, a broken file), providers by name,
the model list, cards in another language or style, and a refused key fixed in place."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_cli, sections
from fake_openai import FakeOpenAI, chunk_of, is_summary
from tui_support import screen_text, wait_for, wait_for_text

from mkflash_tui.cli import app_parser, generate_parser
from mkflash_tui.config import UsageError, settings_from_args
from mkflash_tui.config_file import config_path, load_config, remember, rewrite_app_section
from mkflash_tui.core.prompts import CARD_SYSTEM, STYLES, CardRequest, card_messages
from mkflash_tui.core.providers.presets import PRESETS, is_local_url
from mkflash_tui.core.store import open_store
from mkflash_tui.job import prepare, session_spec
from mkflash_tui.tui.app import make_app
from mkflash_tui.tui.screens.dialogs import FixServerDialog
from mkflash_tui.tui.screens.start import StartScreen

CONFIG = """\
# My mkflash-tui settings: hand-written.
[profiles.work]  # the rented one
provider = "openrouter"
model = "anthropic/claude-3.5-haiku"
api_key_env = "WORK_KEY"   # never the key itself
language = "German"

[profiles.home]
provider = "ollama"
model = "qwen2.5:7b"
style = "exam"

[app]
# my own note inside the app's section
provider = "ollama"
model = "llama3.1"
cards = 40
"""


def config_file() -> Path:
    return config_path()


def write_config(text: str) -> Path:
    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def app_args(*flags: str, environ: dict[str, str] | None = None):
    return settings_from_args(app_parser().parse_args(list(flags)), environ={**os.environ, **(environ or {})},
                              remembered=True)  # fmt: skip


def headless_args(*flags: str, environ: dict[str, str] | None = None):
    return settings_from_args(generate_parser().parse_args(["x.md", *flags]),
                              environ={**os.environ, **(environ or {})})  # fmt: skip


# ---------------------------------------------------------------------- precedence


def test_precedence_flags_environment_profile_remembered_defaults() -> None:
    write_config(CONFIG)
    # Nothing given: the app's remembered choice; a headless run ignores it.
    assert (app_args().preset, app_args().model, app_args().cards) == ("ollama", "llama3.1", 40)
    assert headless_args().preset == "offline" and headless_args().cards is None
    # A profile wins over the remembered choice (and headless runs honour it).
    work = headless_args("--profile", "work", environ={"WORK_KEY": "sk-work"})
    assert (work.preset, work.model, work.language, work.api_key, work.key_source) == (
        "openrouter", "anthropic/claude-3.5-haiku", "German", "sk-work", "WORK_KEY")  # fmt: skip
    assert work.base_url == PRESETS["openrouter"].base_url and work.cards is None
    home = app_args("--profile", "home")
    assert (home.model, home.style, home.cards) == ("qwen2.5:7b", "exam", 40)  # cards: the remembered one
    # The environment wins over a profile: OPENAI_BASE_URL for the openai preset.
    write_config(CONFIG + '\n[profiles.lab]\nprovider = "openai"\nbase_url = "http://10.0.0.5:8000/v1"\n'
                 'model = "m"\n')  # fmt: skip
    lab = headless_args("--profile", "lab", environ={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert lab.base_url == "http://127.0.0.1:9/v1"
    # Flags win over everything.
    flags = app_args("--profile", "home", "--model", "phi4", "--cards", "7", "--style", "definitions")
    assert (flags.preset, flags.model, flags.cards, flags.style) == ("ollama", "phi4", 7, "definitions")
    # A remembered model belongs to its provider: another provider's flag does not inherit it.
    groq = app_args("--provider", "groq", environ={"GROQ_API_KEY": "gsk"})
    assert groq.model == PRESETS["groq"].model and groq.base_url == PRESETS["groq"].base_url
    # The app's last provider needs a key this launch lacks (keys are never remembered): offline, said once.
    remember({"provider": "groq"})
    lacking = app_args()
    assert lacking.preset == "offline" and "GROQ_API_KEY" in lacking.notice
    assert app_args(environ={"GROQ_API_KEY": "gsk"}).preset == "groq"
    # A server given on the command line beats the provider the app remembered (offline, or another).
    remember({"provider": "offline"})
    served = app_args("--base-url", "http://127.0.0.1:9/v1")
    assert (served.preset, served.base_url) == ("openai", "http://127.0.0.1:9/v1") and served.online
    assert "provider" not in served.remembered
    # No file at all: the defaults.
    config_file().unlink()
    assert (app_args().preset, app_args().model, app_args().concurrency) == ("offline", "gpt-4o-mini", 64)


def test_the_app_rewrites_only_its_own_section_keeping_comments_and_profiles() -> None:
    path = write_config(CONFIG)
    remember({"provider": "groq", "model": "llama-3.3-70b-versatile", "cards": None, "theme": "nord",
              "instructions": 'Say "why" too.\nAlways.'})  # fmt: skip
    text = path.read_text()
    before = CONFIG.split("[app]")[0]
    assert text.startswith(before + "[app]\n# my own note inside the app's section\n")
    assert 'provider = "groq"' in text and "cards" not in text.split("[app]")[1] and 'theme = "nord"' in text
    profiles, app = load_config().profiles, load_config().app
    assert profiles["work"]["api_key_env"] == "WORK_KEY" and profiles["home"]["style"] == "exam"
    assert app == {"provider": "groq", "model": "llama-3.3-70b-versatile", "theme": "nord",
                   "instructions": 'Say "why" too.\nAlways.'}  # fmt: skip
    # No file yet: one is made, with a comment that says whose section it is.
    path.unlink()
    remember({"provider": "ollama"})
    assert "[app]\n# Written by mkflash-tui" in path.read_text() and load_config().app == {"provider": "ollama"}
    # A section in the middle of the file: the sections after it stay as they were.
    text = '[app]\nmodel = "a"\n\n# about work\n[profiles.work]\nprovider = "groq"\n'
    assert rewrite_app_section(text, {"model": "b", "cards": 3}) == (
        '[app]\nmodel = "b"\ncards = 3\n\n# about work\n[profiles.work]\nprovider = "groq"\n')  # fmt: skip


def test_a_broken_config_file_is_one_sentence_and_the_defaults(tmp_path: Path) -> None:
    path = write_config('[profiles.work]\nprovider = "groq"\nmodel = \n')
    config = load_config()
    assert config.error and str(path) in config.error and "line 3" in config.error
    assert config.error.count("\n") == 0 and config.profiles == {}
    assert app_args().preset == "offline" and app_args().config_warning == config.error
    remember({"provider": "ollama"})  # never overwrites the user's broken file
    assert path.read_text() == '[profiles.work]\nprovider = "groq"\nmodel = \n'
    # A headless run says so once and goes on with the defaults; asking for a profile from it is an error.
    (tmp_path / "n.md").write_text(sections(2))
    proc = run_cli("generate", "n.md", "--json", cwd=tmp_path)
    assert proc.returncode == 0 and f"{path}, line 3" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("generate", "n.md", "--profile", "work", cwd=tmp_path)
    assert proc.returncode == 2 and "line 3" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    # Wrong values name their line too; a key in the file is refused with the way to do it instead.
    write_config('[profiles.a]\nprovider = "groq"\n\n[profiles.b]\ncards = "many"\n')
    assert "line 5" in load_config().error and "cards must be a whole number" in load_config().error
    write_config('[profiles.a]\napi_key = "sk-secret"\n')
    assert "line 2" in load_config().error and "api_key_env" in load_config().error
    assert "sk-secret" not in load_config().error
    with pytest.raises(UsageError, match="no profile 'nope'"):
        write_config(CONFIG)
        headless_args("--profile", "nope")


async def test_the_app_starts_with_a_broken_config_file_and_says_where() -> None:
    path = write_config("[app\nprovider = 1\n")
    app = make_app(app_args())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, StartScreen), what="the start screen")
        notes = [n.message for n in app._notifications]
        assert any(str(path) in m and "line 1" in m for m in notes), notes


# ---------------------------------------------------------------------- providers by name


@pytest.mark.parametrize("name", [n for n in PRESETS if n != "offline"])
def test_every_preset_has_its_address_and_key_variable(name: str, tmp_path: Path) -> None:
    preset = PRESETS[name]
    env = {preset.key_env: f"key-of-{name}"} if preset.key_env else {}
    flags = ["--model", "m"] if preset.model is None else []
    settings = headless_args("--provider", name, *flags, environ=env)
    assert settings.online and settings.base_url == preset.base_url and settings.concurrency == preset.concurrency
    assert settings.api_key == (f"key-of-{name}" if preset.key_env else None)
    # The key goes to the server as the SDK sends it (hosted presets: --base-url points them at the fake one).
    with FakeOpenAI(api_key=f"key-of-{name}" if preset.key_env else None) as server:
        (tmp_path / "n.md").write_text(sections(2))
        proc = run_cli("generate", "n.md", "--provider", name, *flags, "--base-url", server.base_url, "--json",
                       cwd=tmp_path, env=env)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["preset"] == name
        auth = {h.get("authorization") for h in server.headers}
        assert auth == ({f"Bearer key-of-{name}"} if preset.key_env else {"Bearer not-needed"})
        assert f"key-of-{name}" not in proc.stdout + proc.stderr


def test_a_hosted_preset_without_its_key_says_which_variable(tmp_path: Path) -> None:
    (tmp_path / "n.md").write_text(sections(1))
    proc = run_cli("generate", "n.md", "--provider", "openrouter", cwd=tmp_path)
    assert proc.returncode == 2 and "OPENROUTER_API_KEY" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("generate", "n.md", "--provider", "vllm", cwd=tmp_path)
    assert proc.returncode == 2 and "--model" in proc.stderr


def test_a_local_preset_reaches_its_own_port(tmp_path: Path) -> None:
    """Ollama with no --base-url: the requests arrive at port 11434 on this machine."""
    (tmp_path / "n.md").write_text(sections(2))
    with FakeOpenAI(port=11434) as server:
        proc = run_cli("generate", "n.md", "--provider", "ollama", "--json", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert server.chunk_requests() and {b["model"] for b in server.requests} == {"llama3.2"}
        report = json.loads(proc.stdout)
        assert report["cost_usd"] == 0.0 and report["estimated_cost_usd"] == 0.0  # free: it runs here


def test_earlier_sessions_keep_their_meaning() -> None:
    """--provider openai --base-url X is what it always was: its session identity is unchanged."""
    settings = headless_args("--provider", "openai", "--base-url", "http://127.0.0.1:5/v1", "--model", "m")
    assert (settings.provider, settings.preset) == ("openai", "openai")
    assert session_spec(settings) == {"provider": "openai", "base_url": "http://127.0.0.1:5/v1", "model": "m",
                                      "chunk_tokens": 1500, "overlap_tokens": 100, "cards": None,
                                      "instructions": "", "chunker": 2}  # fmt: skip


def test_price_free_only_on_this_machine_or_a_private_network() -> None:
    from mkflash_tui.core.pricing import cost_usd

    assert cost_usd("gpt-4o-mini", 1_000_000, 0) == 0.15  # the known-model table, as before
    assert cost_usd("llama3.2", 1000, 1000, "http://localhost:11434/v1") == 0.0
    assert cost_usd("llama3.2", 1000, 1000, "http://192.168.1.9:8000/v1") == 0.0
    assert cost_usd("openai/gpt-4o-mini", 1000, 1000, "https://openrouter.ai/api/v1") is None
    assert cost_usd("x", 1000, 1000, None) is None
    assert [is_local_url(u) for u in ("http://10.1.2.3/v1", "http://[::1]:8000/v1", "https://api.groq.com/v1")] == [
        True, True, False]  # fmt: skip


# ---------------------------------------------------------------------- language and style


def test_default_prompt_is_unchanged_and_styles_and_language_change_it() -> None:
    base = CardRequest("Text.", "Intro", 3, "T", "S")
    assert card_messages(base)[0]["content"] == CARD_SYSTEM  # byte for byte
    assert base.key_material() == json.dumps(["2", "Text.", "Intro", 3, "T", "S", ""])  # earlier caches hold
    keys = {base.key_material()}
    for style in STYLES:
        if style == "concepts":
            continue
        request = CardRequest("Text.", "Intro", 3, "T", "S", style=style)
        system = card_messages(request)[0]["content"]
        assert system.startswith(CARD_SYSTEM) and STYLES[style] in system
        keys.add(request.key_material())
    german = CardRequest("Text.", "Intro", 3, "T", "S", language="German")
    assert "write every card (front and back) in German" in card_messages(german)[0]["content"]
    keys.add(german.key_material())
    assert len(keys) == len(STYLES) + 1


def test_language_and_style_reach_the_request_and_the_cache(tmp_path: Path, server: FakeOpenAI) -> None:
    (tmp_path / "n.md").write_text(sections(2))
    base = ["generate", "n.md", "--base-url", server.base_url, "--api-key", "k", "--model", "m", "--force", "--json"]
    assert run_cli(*base, cwd=tmp_path).returncode == 0
    first = len(server.requests)
    proc = run_cli(*base, "--language", "Japanese", "--style", "vocabulary", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    asked = [b for b in server.requests[first:] if chunk_of(b) is not None]
    assert asked, "a new language and style are a new request, not the cached answer"
    system = asked[0]["messages"][0]["content"]
    assert "Style: vocabulary" in system and "back in Japanese" in system
    report = json.loads(proc.stdout)
    assert (report["language"], report["style"]) == ("Japanese", "vocabulary")
    again = len(server.requests)
    assert run_cli(*base, "--language", "Japanese", "--style", "vocabulary", cwd=tmp_path).returncode == 0
    assert len(server.requests) == again  # the same settings: the same session, answered from the store
    # The instructions file joins --instructions.
    (tmp_path / "rules.txt").write_text("Use SI units.\n")
    assert run_cli(*base, "--instructions-file", "rules.txt", cwd=tmp_path).returncode == 0
    assert "Use SI units." in server.requests[-1]["messages"][0]["content"]
    proc = run_cli(*base, "--instructions-file", "missing.txt", cwd=tmp_path)
    assert proc.returncode == 2 and "missing.txt: no such file" in proc.stderr


def test_the_offline_generator_ignores_language_and_style_with_a_notice(tmp_path: Path) -> None:
    (tmp_path / "n.md").write_text(sections(2))
    proc = run_cli("generate", "n.md", "--language", "French", "--style", "exam", "--json", cwd=tmp_path)
    assert proc.returncode == 0 and "offline generator ignores --language and --style" in proc.stderr
    assert json.loads(proc.stdout)["style"] == "concepts"


# ---------------------------------------------------------------------- the app's settings tab


async def settings_tab(pilot, app, base_url: str) -> StartScreen:
    """The start screen's Settings tab, with the openai preset pointed at ``base_url``."""
    await wait_for(pilot, lambda: isinstance(app.screen, StartScreen), what="the start screen")
    await pilot.pause(0.2)
    screen = app.screen
    screen.query_one("#start-tabs").active = "tab-settings"
    screen.query_one("#provider").focus()  # the focus in the File tab would take the tab back
    await pilot.pause()
    screen.query_one("#provider").value = "openai"
    await pilot.pause()  # the preset's defaults are filled in; then the address
    screen.query_one("#base-url").value = base_url
    return screen


async def test_settings_tab_lists_the_servers_models_and_remembers_the_choice(tmp_path: Path) -> None:
    (tmp_path / "n.md").write_text(sections(2))
    with FakeOpenAI(model_list=["alpha-7b", "beta-13b"], api_key="sk-typed-secret") as server:
        app = make_app(app_args())
        async with app.run_test(size=(100, 36)) as pilot:
            screen = await settings_tab(pilot, app, server.base_url)
            screen.query_one("#api-key").value = "sk-typed-secret"
            await wait_for_text(pilot, "2 on server")
            picker = screen.query_one("#model-list")
            picker.value = "beta-13b"
            await wait_for(pilot, lambda: screen.query_one("#model").value == "beta-13b", what="the pick")
            screen.query_one("#language").value = "Spanish"
            screen.query_one("#path").value = str(tmp_path / "n.md")
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: app.job is not None and app.job.settings.model == "beta-13b",
                           what="the run")  # fmt: skip
    assert {b["model"] for b in server.requests if b.get("messages")} <= {"beta-13b"}
    assert server.model_list_headers[-1]["authorization"] == "Bearer sk-typed-secret"
    assert "sk-typed-secret" not in config_file().read_text()  # the key is never remembered
    remembered = load_config().app
    assert remembered == {"provider": "openai", "model": "beta-13b", "base_url": server.base_url,
                          "language": "Spanish"}  # fmt: skip
    assert app_args().model == "beta-13b" and app_args().language == "Spanish"


async def test_a_server_without_a_model_list_gets_the_text_field() -> None:
    with FakeOpenAI(model_list=None) as server:
        app = make_app(app_args())
        async with app.run_test(size=(100, 36)) as pilot:
            screen = await settings_tab(pilot, app, server.base_url)
            await wait_for(pilot, lambda: server.model_list_headers, what="the model list request")
            await pilot.pause(0.2)
            assert not screen.query_one("#model-list").display and screen.query_one("#model").display


async def test_a_refused_key_is_fixed_in_place_and_the_session_goes_on(tmp_path: Path) -> None:
    """Two chunks are done and a card deleted when the key stops working; the user types the right one and
    the same session goes on: only the unfinished chunks are sent, the deletion stays."""
    (tmp_path / "n.md").write_text(sections(5, sentences=14))
    with FakeOpenAI() as server:
        late = server.hold(lambda body: chunk_of(body) is not None and "part 0 " not in chunk_of(body)
                           and "part 1 " not in chunk_of(body))  # fmt: skip
        app = make_app(app_args(str(tmp_path / "n.md"), "--base-url", server.base_url, "--api-key", "sk-old",
                                "--model", "m", "--yes", "--chunk-tokens", "200"))  # fmt: skip
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.run_screen is not None, what="the run screen")
            screen = app.run_screen
            await wait_for(pilot, lambda: screen.run.counts()["done"] >= 2 and late.arrived >= 1,
                           what="two chunks done")  # fmt: skip
            done_before = {cid for cid, s in screen.run.status.items() if s.state.finished}
            session = screen.run.session_id
            screen.action_view("review")
            await wait_for(pilot, lambda: screen.cards(), what="cards")
            await pilot.pause(0.3)
            deleted = screen.query_one("CardTable").current
            await pilot.press("d")
            await wait_for(pilot, lambda: deleted.id not in {c.id for c in screen.cards()}, what="the deletion")
            server.api_key = "sk-new"  # the old key is revoked
            late.release()
            await wait_for(pilot, lambda: isinstance(app.screen, FixServerDialog), what="the fix dialog")
            text = await screen_text(pilot)
            assert "Incorrect API key" in text
            # The app's own words: the key field below (focused), not the command line's --api-key.
            assert "pass --api-key" not in text and "API key field below" in text
            dialog = app.screen
            await wait_for(pilot, lambda: dialog.query("#fix-key") and app.focused is dialog.query_one("#fix-key"),
                           what="the key field focused")  # fmt: skip
            sent_before, headers_before = len(server.chunk_requests()), len(server.headers)
            app.screen.query_one("#fix-key").value = "sk-new"
            await pilot.press("enter")
            await wait_for(pilot, lambda: screen.finished and screen.run.counts()["done"] == len(screen.run.chunks)
                           and not screen.run.fatal, timeout=30, what="the rest of the chunks")  # fmt: skip
            resent = {chunk_of(b) for b in server.chunk_requests()[sent_before:]}
            texts = {screen.run.status[c].chunk.text for c in done_before}
            assert resent and not (resent & texts)  # finished chunks were not sent again
            assert screen.run.session_id == session and deleted.id not in {c.id for c in screen.cards()}
            assert all(h["authorization"] == "Bearer sk-new" for h in server.headers[headers_before:])
    store = open_store(None)
    try:
        assert store.decisions(session)[deleted.id][0]  # deleted
        settings = app_args(str(tmp_path / "n.md"), "--base-url", server.base_url, "--model", "m",
                            "--chunk-tokens", "200", environ={"OPENAI_API_KEY": "sk-new"})  # fmt: skip
        job = prepare(settings)
        assert job.continue_from(store).session_id == session and job.estimate.chunks == 0
    finally:
        store.close()
    assert "sk-new" not in json.dumps(store_settings(session)) and "sk-old" not in json.dumps(store_settings(session))


def store_settings(session_id: str) -> dict:
    store = open_store(None)
    try:
        return store.session_source(session_id)[0]
    finally:
        store.close()


def test_summary_requests_are_not_touched_by_style() -> None:
    from mkflash_tui.core.prompts import SUMMARY_SYSTEM, summary_messages

    assert summary_messages("doc")[0]["content"] == SUMMARY_SYSTEM
    assert is_summary({"messages": summary_messages("doc")})


async def test_the_theme_is_remembered() -> None:
    app = make_app(app_args())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, StartScreen), what="the start screen")
        app.theme = "nord"
        await pilot.pause()
    assert load_config().app == {"theme": "nord"}
    again = make_app(app_args())
    async with again.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert again.theme == "nord"
    assert headless_args().theme is None  # a headless run has no theme, and ignores [app]


async def test_settings_shows_what_the_server_is_and_checks_it_on_request() -> None:
    from dialects import LlamaServer

    with FakeOpenAI(dialect=LlamaServer(ctx=4096, parallel=4)) as server:
        app = make_app(app_args())
        async with app.run_test(size=(100, 40)) as pilot:
            screen = await settings_tab(pilot, app, server.base_url)
            screen.query_one("#model").value = "gemma"
            await wait_for_text(pilot, "llama.cpp, context 1,024 tokens per request")
            assert not server.requests  # looking costs nothing: no call yet
            screen.query_one("#check-server").press()
            await wait_for_text(pilot, "structured output: json_schema", "A run would work.", timeout=20)
            text = await screen_text(pilot)
            assert "streams usage: yes" in text and "slots: 4 at once" in text
            assert "chunks of" in text  # what a run would do with the window


def test_config_prints_the_files_path_and_what_each_face_uses(tmp_path: Path) -> None:
    config_file().write_text('[profiles.work]\nprovider = "ollama"\nmodel = "qwen2.5"\n\n[app]\nlanguage = "French"\n'
                             'style = "exam"\n')  # fmt: skip
    proc = run_cli("config")
    assert proc.returncode == 0, proc.stderr
    assert f"config file: {config_file()}" in proc.stdout
    language = next(line for line in proc.stdout.splitlines() if line.startswith("language"))
    assert language.split()[1] == "-" and "French" in language and "remembered from the app" in language
    profiled = run_cli("config", "--profile", "work")
    assert "profile: work" in profiled.stdout
    model = next(line for line in profiled.stdout.splitlines() if line.startswith("model"))
    assert model.split()[1] == "qwen2.5"


async def test_the_confirm_screen_says_which_choices_were_remembered(tmp_path: Path) -> None:
    from mkflash_tui.tui.screens.confirm import ConfirmScreen

    (tmp_path / "n.md").write_text(sections(2))
    with FakeOpenAI() as server:
        config_file().write_text(f'[app]\nprovider = "openai"\nbase_url = "{server.base_url}"\nmodel = "gpt-4o-mini"'
                                 '\nlanguage = "French"\n')  # fmt: skip
        app = make_app(app_args(str(tmp_path / "n.md"), environ={"OPENAI_API_KEY": "sk-test"}))
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirm screen")
            text = await screen_text(pilot)
    assert "Remembered" in text and "language" in text and "your last choices in the app" in text
    assert "generate does not use them" in text
