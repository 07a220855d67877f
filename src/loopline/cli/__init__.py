"""The `loopline` command: a thin shell over the library (parse, call, print)."""

from __future__ import annotations

import sys


def main() -> None:
    """Entry point: run the app; a LooplineError prints one line and sets the exit code."""
    from loopline.cli.app import run

    sys.exit(run(sys.argv[1:]))


__all__ = ["main"]
