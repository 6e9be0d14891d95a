"""Card text → safe Anki field HTML.

Everything the model or the document supplies is escaped; the little Markdown models use (bold, italics,
inline code, code blocks, bullet and numbered lists) becomes HTML; MathJax ``\\( … \\)`` and ``\\[ … \\]`` is
protected first so Markdown cannot eat its backslashes and underscores; Anki cloze markers pass through.
"""

from __future__ import annotations

import html
import re

_MATH = re.compile(r"\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
_CODE_BLOCK = re.compile(r"```[^\n`]*\n?(.*?)```", re.DOTALL)
_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__", re.DOTALL)
_ITALIC = re.compile(
    r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])|(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])"
)
_BULLET = re.compile(r"^\s*[-*•]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+(.*)$")
_PLACEHOLDER = "\x00{}\x00"


def render_field(text: str) -> str:
    """Escape ``text`` and render its Markdown to HTML for an Anki field."""
    if not text:
        return ""
    protected: list[str] = []

    def protect(fragment: str) -> str:
        protected.append(fragment)
        return _PLACEHOLDER.format(len(protected) - 1)

    text = text.replace("\x00", "")
    # MathJax first: its content is escaped for HTML but otherwise untouched.
    text = _MATH.sub(lambda m: protect(html.escape(m.group(0), quote=False)), text)
    text = _CODE_BLOCK.sub(
        lambda m: protect(f"<pre><code>{html.escape(m.group(1).rstrip(), quote=False)}</code></pre>"), text
    )
    text = _CODE.sub(lambda m: protect(f"<code>{html.escape(m.group(1), quote=False)}</code>"), text)
    text = html.escape(text, quote=False)
    text = _BOLD.sub(lambda m: f"<b>{m.group(1) or m.group(2)}</b>", text)
    text = _ITALIC.sub(lambda m: f"<i>{m.group(1) or m.group(2)}</i>", text)
    text = _render_lists(text)
    return re.sub("\x00(\\d+)\x00", lambda m: protected[int(m.group(1))], text)


def _render_lists(text: str) -> str:
    out: list[str] = []
    open_tag: str | None = None
    for line in text.split("\n"):
        bullet, numbered = _BULLET.match(line), _NUMBERED.match(line)
        tag = "ul" if bullet else "ol" if numbered else None
        if tag != open_tag and open_tag:
            out.append(f"</{open_tag}>")
            open_tag = None
        if tag:
            if open_tag is None:
                out.append(f"<{tag}>")
                open_tag = tag
            out.append(f"<li>{(bullet or numbered).group(1)}</li>")  # type: ignore[union-attr]
        else:
            out.append(line + "\n")
    if open_tag:
        out.append(f"</{open_tag}>")
    joined = "".join(out).rstrip("\n")
    return joined.replace("\n", "<br>")
