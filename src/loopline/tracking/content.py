"""Objects logged straight from memory as run artifacts: text, dicts, figures, tables.

The counterparts of MLflow's `log_text`, `log_dict`, `log_figure` and `log_table`. Each
one renders its object to bytes in memory (no temporary file in the user's folder) and
stores them as `log_artifact` stores a file: one content-addressed blob, listed in the
run's manifest under `artifact_file`, which is checked like any artifact path (no `..`,
no URI, no `.git`, no control character) before anything is rendered or stored.

The extension of `artifact_file` picks the format, and an extension the object cannot
be written as is refused rather than guessed: a user reading `plot.svg` back must get
an SVG.
"""

from __future__ import annotations

import io
import json
import posixpath
from collections.abc import Mapping
from typing import Any

from loopline.errors import InvalidInput
from loopline.project import Stores
from loopline.store import Direction, LinkKind
from loopline.tracking._frames import arrow_table
from loopline.tracking.artifacts import _logical

DICT_FORMATS = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}
MATPLOTLIB_FORMATS = frozenset(
    {".png", ".jpg", ".jpeg", ".svg", ".svgz", ".pdf", ".eps", ".ps", ".tif", ".tiff", ".webp"}
)
PLOTLY_FORMATS = frozenset({".html", ".json", ".png", ".jpg", ".jpeg", ".svg", ".pdf", ".webp"})
TABLE_FORMATS = frozenset({".parquet"})


def log_text(run_id: str, stores: Stores, text: object, artifact_file: str) -> str:
    """Store `text` (UTF-8) as the artifact `artifact_file`; returns its logical path."""
    logical = _logical(artifact_file)
    if not isinstance(text, str):
        raise InvalidInput(f"log_text takes a str, got {type(text).__name__}")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"log_text: the text holds a character UTF-8 cannot encode at {exc.start} "
            "(a lone surrogate)"
        ) from exc
    return _store(run_id, stores, logical, data)


def log_dict(run_id: str, stores: Stores, dictionary: object, artifact_file: str) -> str:
    """Store `dictionary` as JSON (`.json`) or YAML (`.yaml`, `.yml`), by extension.

    JSON has no NaN or infinity, so a dict holding one is refused for `.json` (YAML
    writes them as `.nan` / `.inf`).
    """
    logical = _logical(artifact_file)
    form = DICT_FORMATS.get(_extension(logical))
    if form is None:
        raise InvalidInput(
            f"log_dict writes JSON or YAML; {logical!r} has neither extension",
            hint="end the name with .json, .yaml or .yml",
        )
    if not isinstance(dictionary, Mapping):
        raise InvalidInput(f"log_dict takes a dict, got {type(dictionary).__name__}")
    try:
        if form == "json":
            text = json.dumps(dictionary, indent=2, allow_nan=False) + "\n"
        else:
            import yaml

            text = yaml.safe_dump(dict(dictionary), default_flow_style=False, allow_unicode=True)
        data = text.encode("utf-8")
    except ValueError as exc:  # NaN or inf under allow_nan=False, a circular reference
        raise InvalidInput(f"log_dict: cannot write {logical!r}: {exc}") from exc
    except Exception as exc:  # TypeError (json), yaml.representer.RepresenterError
        raise InvalidInput(
            f"log_dict: a value cannot be written as {form.upper()}: {exc}",
            hint="use str, int, float, bool, None, lists and dicts",
        ) from exc
    return _store(run_id, stores, logical, data)


def log_figure(
    run_id: str,
    stores: Stores,
    figure: object,
    artifact_file: str,
    save_kwargs: Mapping[str, Any] | None = None,
) -> str:
    """Store a matplotlib or plotly figure in the format its extension names.

    matplotlib (anything with `savefig`): png, jpg, svg, pdf, eps, ps, tif, webp.
    plotly (anything with `to_html`): html (plotly.js from its CDN, as MLflow does),
    json, and the image formats through `to_image` (which needs `kaleido`).
    `save_kwargs` go to `savefig` / `to_html` / `to_image`.
    """
    logical = _logical(artifact_file)
    extension = _extension(logical)
    options = dict(_options(save_kwargs))
    if callable(getattr(figure, "savefig", None)):
        data = _matplotlib_bytes(figure, logical, extension, options)
    elif callable(getattr(figure, "to_html", None)):
        data = _plotly_bytes(figure, logical, extension, options)
    else:
        raise InvalidInput(
            f"log_figure takes a matplotlib or plotly Figure, got {type(figure).__name__}"
        )
    return _store(run_id, stores, logical, data)


def log_table(run_id: str, stores: Stores, data: object, artifact_file: str) -> str:
    """Store a DataFrame (or a dict of columns) as a Parquet file; returns its path.

    Unlike MLflow, which writes JSON, the table is Parquet: it keeps column types and
    reads back with `pandas.read_parquet`. The name must end with `.parquet`.
    """
    logical = _logical(artifact_file)
    if _extension(logical) not in TABLE_FORMATS:
        raise InvalidInput(
            f"log_table stores Parquet; name the artifact '*.parquet', not {logical!r}"
        )
    import pyarrow.parquet as pq

    table = arrow_table(data, "log_table", keep_index=True)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return _store(run_id, stores, logical, buffer.getvalue())


# -- figures ------------------------------------------------------------------------------


def _matplotlib_bytes(figure: Any, logical: str, extension: str, options: dict[str, Any]) -> bytes:
    if extension not in MATPLOTLIB_FORMATS:
        raise _unknown_format("a matplotlib figure", logical, MATPLOTLIB_FORMATS)
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format=extension[1:], **options)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"log_figure: matplotlib could not write {logical!r}: {exc}") from exc
    return buffer.getvalue()


def _plotly_bytes(figure: Any, logical: str, extension: str, options: dict[str, Any]) -> bytes:
    if extension not in PLOTLY_FORMATS:
        raise _unknown_format("a plotly figure", logical, PLOTLY_FORMATS)
    try:
        if extension == ".html":
            html = figure.to_html(**{"include_plotlyjs": "cdn", "full_html": True, **options})
            return str(html).encode("utf-8")
        if extension == ".json":
            return str(figure.to_json(**options)).encode("utf-8")
        image = figure.to_image(format=extension[1:], **options)
    except (TypeError, ValueError) as exc:  # plotly's ValueError names kaleido when missing
        raise InvalidInput(
            f"log_figure: plotly could not write {logical!r}: {exc}",
            hint="image formats need the `kaleido` package; .html needs nothing more",
        ) from exc
    if not isinstance(image, bytes):
        raise InvalidInput(f"log_figure: plotly's to_image gave {type(image).__name__}, not bytes")
    return image


def _options(save_kwargs: object) -> Mapping[str, Any]:
    if save_kwargs is None:
        return {}
    if not isinstance(save_kwargs, Mapping) or not all(isinstance(k, str) for k in save_kwargs):
        raise InvalidInput(f"save_kwargs must be a dict of options, got {save_kwargs!r}")
    for taken in ("format", "fname", "file"):
        if taken in save_kwargs:
            raise InvalidInput(
                f"save_kwargs cannot set {taken!r}: artifact_file's extension picks the format"
            )
    return save_kwargs


def _unknown_format(what: str, logical: str, formats: frozenset[str]) -> InvalidInput:
    return InvalidInput(
        f"log_figure cannot write {what} as {logical!r}",
        hint="end the name with one of " + ", ".join(sorted(formats)),
    )


# -- storing ------------------------------------------------------------------------------


def _extension(logical: str) -> str:
    return posixpath.splitext(logical)[1].lower()


def _store(run_id: str, stores: Stores, logical: str, data: bytes) -> str:
    blob = stores.artifacts.put_bytes(data)
    stores.metadata.runs.add_links(
        run_id, Direction.OUTPUT, LinkKind.ARTIFACT, [(logical, blob.hash, blob.size)]
    )
    return logical
