"""The Textual face of mkflash-tui. Imports Textual; ``core`` never imports this package."""
