"""Design rules that later work depends on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "mkflash_tui" / "core"


def test_core_never_imports_textual_and_loads_openai_lazily() -> None:
    modules = sorted(
        "mkflash_tui.core." + ".".join(p.relative_to(CORE).with_suffix("").parts)
        for p in CORE.rglob("*.py")
        if p.name != "__init__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "import mkflash_tui.headless, mkflash_tui.job\n"
        "print('textual' in sys.modules, 'openai' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"], out
    assert len(modules) >= 12
