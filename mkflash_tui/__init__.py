"""mkflash-tui: turn any text into an Anki deck with an LLM, fast."""

__version__ = "0.3.0"
