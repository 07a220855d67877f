"""`--trust TYPE` and `--allow-pickle`, as every command that loads a model takes them.

A version logged with `log_model(..., trusted=[...])` loads with that trust without a
flag; these add to it for one command (a version logged before, or a pickle).
"""

from __future__ import annotations

from typing import Any

import typer


def trust_option() -> Any:
    """`--trust TYPE`, repeatable."""
    return typer.Option(
        None,
        "--trust",
        metavar="TYPE",
        help="A type the model file may hold beyond the defaults and those recorded with "
        "the version, e.g. mymodule.MyTransformer, after you reviewed it (repeatable).",
    )


def allow_pickle_option() -> Any:
    """`--allow-pickle`."""
    return typer.Option(
        False,
        "--allow-pickle",
        help="Load a pickled (pyfunc) model, which runs its code: only for models you trust.",
    )
