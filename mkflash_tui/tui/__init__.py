"""The Textual face of mkflash-tui. Imports Textual; ``core`` never imports this package."""

import os

# Textual paints at most MAX_FPS frames a second (60 by default) and reads it once, when first imported. A key that
# changes the screen waits for the next frame slot, up to 17 ms at 60, twice when its change takes two frames; at
# 240 the wait is 4 ms. Frames are still drawn only when something changed, so this costs nothing while idle. A
# user's own TEXTUAL_FPS wins.
os.environ.setdefault("TEXTUAL_FPS", "240")
