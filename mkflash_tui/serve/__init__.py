"""``mkflash-tui serve``: the app in a browser, through textual-serve (pinned: the hooks used here are its own).

Each browser tab that connects runs its own app process — the same ``mkflash-tui`` the terminal runs — on this
machine: its files, its key, its session store. The page gets only the terminal's cells; an exported deck
reaches it as a download. Every request but the static assets (textual-serve's script, style sheet and font)
needs the token printed with the address: in the address (``?token=…``) the first time, then in a cookie the
page sets for this origin alone, which the websocket and the downloads carry. The page loads nothing from the
internet (a copy of textual-serve's page without its web-font link).
"""

from __future__ import annotations

import argparse
import hmac
import secrets
import shlex
import sys
from importlib import metadata
from pathlib import Path

TEXTUAL_SERVE = "1.1.3"  # the version whose server hooks (_make_app, templates_path) this module uses
COOKIE = "mkflash_token"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
TEMPLATES = Path(__file__).parent / "templates"
FORBIDDEN = "mkflash-tui: this page needs the address mkflash-tui serve printed, with its token.\n"


def app_command(app_args: list[str]) -> str:
    """The command each browser tab runs: this interpreter's mkflash-tui, with the app's own flags."""
    return shlex.join([sys.executable, "-m", "mkflash_tui", *app_args])


def make_server(command: str, *, host: str, port: int, token: str):
    """A textual-serve server for ``command`` that answers only requests carrying ``token``."""
    from aiohttp import web
    from textual_serve.server import Server

    class TokenServer(Server):
        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            app.middlewares.append(guard)
            return app

    @web.middleware
    async def guard(request: web.Request, handler):
        if request.path.startswith("/static/"):
            return await handler(request)
        offered = request.query.get("token") or request.cookies.get(COOKIE) or ""
        if not hmac.compare_digest(offered.encode(), token.encode()):
            return web.Response(status=403, text=FORBIDDEN)
        response = await handler(request)
        if request.path == "/" and request.query.get("token"):
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
        return response

    return TokenServer(command, host=host, port=port, title="mkflash-tui", templates_path=TEMPLATES)


def serve_main(argv: list[str], fail) -> int:
    """Parse ``serve``'s flags, check textual-serve, print the address with its token, serve until Ctrl+C."""
    parser = argparse.ArgumentParser(
        prog="mkflash-tui serve",
        description="Serve the app to a web browser on this machine (each tab runs its own app). Flags after "
        "the options (a file, --demo, --profile NAME) go to the app.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this "
                        "machine only)")  # fmt: skip
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    args, app_args = parser.parse_known_args(argv)
    try:
        version = metadata.version("textual-serve")
    except metadata.PackageNotFoundError:
        return fail("mkflash-tui serve needs textual-serve: pip install 'mkflash-tui[serve]'.")
    if version != TEXTUAL_SERVE:
        return fail(f"mkflash-tui serve needs textual-serve {TEXTUAL_SERVE} (installed: {version}): pip install "
                    f"'textual-serve=={TEXTUAL_SERVE}'.")  # fmt: skip
    if not 0 < args.port < 65536:
        return fail(f"--port takes a port from 1 to 65535, not {args.port}.")
    token = secrets.token_urlsafe(24)
    server = make_server(app_command(app_args), host=args.host, port=args.port, token=token)
    where = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}"
    print(f"mkflash-tui: open {where}/?token={token}", flush=True)
    if args.host not in LOOPBACK:
        print(f"mkflash-tui: listening on {args.host}: anyone who can reach it and has the address above can use "
              "this machine's files and key through the app.", flush=True)  # fmt: skip
    print("mkflash-tui: each tab runs its own app on this machine; Ctrl+C stops serving.", flush=True)
    try:
        server.serve()
    except OSError as exc:
        return fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}.")
    except KeyboardInterrupt:
        pass
    return 0
