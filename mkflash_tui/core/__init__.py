"""The generation engine. Knows nothing of Textual (a test proves it)."""
