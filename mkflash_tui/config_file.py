"""The config file: named profiles the user writes, and the ``[app]`` section the app keeps for itself.

``config.toml`` lives in the user's config directory (``MKFLASH_CONFIG`` names another file). A profile is a
table under ``[profiles]``; keys are given only by the name of their environment variable (``api_key_env``).
The app rewrites the lines of its own section and nothing else, so the user's comments and profiles stay.
A file that cannot be read is reported in one sentence naming it and the line, and the defaults are used.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_ENV = "MKFLASH_CONFIG"
APP_SECTION = "app"
MAX_CONFIG_BYTES = 1 << 20

# What a profile (or the app's section) may set, and the type of each value.
KEYS: dict[str, type | tuple[type, ...]] = {
    "provider": str,
    "model": str,
    "base_url": str,
    "api_key_env": str,
    "concurrency": int,
    "cards": int,
    "chunk_tokens": int,
    "timeout": (int, float),
    "instructions": str,
    "language": str,
    "style": str,
    "drop_flagged": bool,
    "tags": list,
}
APP_KEYS = (*KEYS, "theme")  # the theme is the app's own choice, never a profile's
APP_HEADER = (
    "# Written by mkflash-tui: what you chose in the app last time. It edits only this section; flags, the\n"
    "# environment and --profile win over it, and headless runs (mkflash-tui generate) ignore it.\n"
)
_HEADER_RE = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_KEY_RE = re.compile(r"^\s*([A-Za-z0-9_-]+|\"[^\"]*\")\s*=")


class ConfigError(Exception):
    """The config file cannot be used; one sentence naming the file (and the line, when there is one)."""


@dataclass(slots=True)
class ConfigFile:
    path: Path
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    app: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # why the file was not used (its defaults are), in one sentence

    def profile(self, name: str) -> dict[str, Any]:
        """The named profile's values. Raises ConfigError."""
        if self.error:
            raise ConfigError(self.error)
        if name not in self.profiles:
            known = ", ".join(sorted(self.profiles)) or "none yet"
            raise ConfigError(f"there is no profile {name!r} in {self.path} (profiles: {known}).")
        return self.profiles[name]


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("mkflash-tui", appauthor=False)) / "config.toml"


def load_config(environ: Mapping[str, str] | None = None) -> ConfigFile:
    """The config file's profiles and app section; never raises (a broken file gives ``error``)."""
    path = config_path(environ)
    config = ConfigFile(path)
    try:
        text = _read(path)
    except FileNotFoundError:
        return config
    except (OSError, UnicodeDecodeError) as exc:
        config.error = f"{path} cannot be read ({getattr(exc, 'strerror', None) or exc.__class__.__name__}); " \
                       "using the defaults."  # fmt: skip
        return config
    try:
        config.profiles, config.app = parse_config(text, path)
    except ConfigError as exc:
        config.error = f"{exc} Using the defaults."
    return config


def _read(path: Path) -> str:
    with open(path, "rb") as handle:
        data = handle.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise OSError(0, "larger than 1 MB")
    return data.decode("utf-8")


def parse_config(text: str, path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """(profiles, app section) of a config file's text. Raises ConfigError naming ``path`` and the line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)  # "Invalid value (at line 3, column 9)"
        found = re.search(r"\(at line (\d+), column \d+\)|\(at end of document\)", message)
        reason = message[: found.start()].strip() if found else message
        if found and found.group(1):
            where = f", line {found.group(1)}"
        else:
            where = f", line {text.count(chr(10)) + 1}" if found else ""
        raise ConfigError(f"{path}{where}: {reason[:1].lower()}{reason[1:]}.") from None
    profiles: dict[str, dict[str, Any]] = {}
    raw_profiles = data.get("profiles", {})
    if not isinstance(raw_profiles, dict):
        raise ConfigError(f"{path}, line {_line_of(text, None, 'profiles')}: profiles must be a table "
                          "([profiles.NAME]).")  # fmt: skip
    for name, values in raw_profiles.items():
        section = f"profiles.{name}"
        if not isinstance(values, dict):
            raise ConfigError(f"{path}, line {_line_of(text, 'profiles', name)}: profile {name!r} must be a table "
                              f"([profiles.{name}]).")  # fmt: skip
        profiles[name] = _check(values, KEYS, text, section, path)
    app = data.get(APP_SECTION, {})
    if not isinstance(app, dict):
        raise ConfigError(f"{path}, line {_line_of(text, None, APP_SECTION)}: [{APP_SECTION}] must be a table.")
    return profiles, _check(app, APP_KEYS, text, APP_SECTION, path)


def _check(values: dict[str, Any], allowed, text: str, section: str, path: Path) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        where = f"{path}, line {_line_of(text, section, key)}"
        if key in ("api_key", "key"):
            raise ConfigError(f"{where}: keys are never kept in the config file; name the environment variable "
                              "that holds it instead (api_key_env = \"OPENROUTER_API_KEY\").")  # fmt: skip
        if key not in allowed:
            known = ", ".join(allowed)
            raise ConfigError(f"{where}: unknown setting {key!r} in [{section}] (known: {known}).")
        kind = KEYS.get(key, str)
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
            raise ConfigError(f"{where}: {key} must be {_kind_name(kind)}.")
        if key == "tags" and not all(isinstance(t, str) for t in value):
            raise ConfigError(f"{where}: tags must be a list of strings.")
        if key in ("concurrency", "cards", "chunk_tokens", "timeout") and value <= 0:
            raise ConfigError(f"{where}: {key} must be positive.")
        out[key] = value
    return out


def _kind_name(kind) -> str:
    names = {str: "a string in quotes", int: "a whole number", bool: "true or false", list: "a list"}
    return "a number" if isinstance(kind, tuple) else names.get(kind, "a value")


def _line_of(text: str, section: str | None, key: str) -> int:
    """The line (1-based) where ``key`` is set in ``section`` (a dotted table name; None: the top level)."""
    current: str | None = None
    fallback = 1
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER_RE.match(line)
        if header and not line.lstrip().startswith("[["):
            current = _dotted(header.group(1))
            if current == (f"{section}.{key}" if section else key):
                return number
            if current == section:
                fallback = number
            continue
        found = _KEY_RE.match(line)
        if found and current == section and found.group(1).strip('"') == key:
            return number
    return fallback


def _dotted(name: str) -> str:
    return ".".join(part.strip().strip('"') for part in name.split("."))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string


def remember(values: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Path | None:
    """Write ``values`` (None: remove the key) into the file's ``[app]`` section, changing no other line.
    Returns the file written, or None when it was left alone (it cannot be read, or is broken: the user's file
    is never overwritten by ours)."""
    path = config_path(environ)
    try:
        text = _read(path)
    except FileNotFoundError:
        text = ""
    except (OSError, UnicodeDecodeError):
        return None
    try:
        before = parse_config(text, path)
    except ConfigError:
        return None
    new_text = rewrite_app_section(text, {k: v for k, v in values.items() if k in APP_KEYS})
    try:
        after = parse_config(new_text, path)
    except ConfigError:
        return None  # never write a file that would not read back
    if after[0] != before[0]:
        return None
    if new_text == text:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".config-", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(new_text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def rewrite_app_section(text: str, values: Mapping[str, Any]) -> str:
    """``text`` with the ``[app]`` section's keys set to ``values``: each key's line replaced in place, keys set
    to None removed, new keys added after the section's last setting; comments and other sections untouched."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = next((i for i, line in enumerate(lines) if (m := _HEADER_RE.match(line)) and not
                  line.lstrip().startswith("[[") and _dotted(m.group(1)) == APP_SECTION), None)  # fmt: skip
    pending = {k: v for k, v in values.items()}
    if start is None:
        new = [f"{k} = {_toml_value(v)}\n" for k, v in pending.items() if v is not None]
        if not new:
            return "".join(lines)
        gap = ["\n"] if lines and lines[-1].strip() else []
        return "".join([*lines, *gap, f"[{APP_SECTION}]\n", APP_HEADER, *new])
    end = next((i for i in range(start + 1, len(lines)) if _HEADER_RE.match(lines[i])), len(lines))
    out = lines[: start + 1]
    last_setting = len(out)
    i = start + 1
    while i < end:
        line = lines[i]
        found = _KEY_RE.match(line)
        span = _value_span(lines, i, end) if found else 1
        if found and (key := found.group(1).strip('"')) in pending:
            value = pending.pop(key)
            if value is not None:
                out.append(f"{key} = {_toml_value(value)}\n")
        else:
            out.extend(lines[i : i + span])
        if found:
            last_setting = len(out)
        i += span
    new = [f"{k} = {_toml_value(v)}\n" for k, v in pending.items() if v is not None]
    out[last_setting:last_setting] = new
    out.extend(lines[end:])
    return "".join(out)


def _value_span(lines: list[str], i: int, end: int) -> int:
    """How many lines the setting on line ``i`` takes (a multi-line string or array goes on)."""
    value = lines[i].split("=", 1)[1]
    for quote in ('"""', "'''"):
        if value.count(quote) == 1:
            for j in range(i + 1, end):
                if quote in lines[j]:
                    return j - i + 1
            return end - i
    if value.strip().startswith("[") and "]" not in value:
        for j in range(i + 1, end):
            if "]" in lines[j]:
                return j - i + 1
        return end - i
    return 1
