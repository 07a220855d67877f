"""Finding the project and its settings: `loopline.toml`, then `LOOPLINE_*` variables.

A project is a directory holding `loopline.toml` or a `.loopline/` folder; it is found
by walking up from the working directory, as git finds its repository. Nothing
requires a config file: without one, the embedded default is `./.loopline` (a SQLite
database and an artifact folder).

Precedence, highest first: `LOOPLINE_STORE_URI` / `LOOPLINE_ARTIFACT_URI` (and the other
`LOOPLINE_*` variables below), then `loopline.toml`, then the defaults.
"""

from __future__ import annotations

import getpass
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from loopline.errors import InvalidInput, ProjectNotFound
from loopline.redact import redact_uri

CONFIG_FILE = "loopline.toml"
STATE_DIR = ".loopline"
DB_FILE = "loopline.db"
ARTIFACT_DIR = "artifacts"

_DEFAULT_URI_LINE = 'uri = "sqlite:///.loopline/loopline.db"\n'
DEFAULT_TOML = """\
# loopline project settings. Every key can be overridden by an environment variable
# (LOOPLINE_STORE_URI, LOOPLINE_ARTIFACT_URI, ...). Relative paths are relative to this file.

[store]
# Metadata database: sqlite:///path or postgresql+psycopg://user@host:5432/db
uri = "sqlite:///.loopline/loopline.db"
# Artifact store: a local folder or s3://bucket/prefix
artifacts = ".loopline/artifacts"

[tracking]
# The most seconds of metric points a crash (SIGKILL) can lose; written every half of it.
metric_flush_interval = 1.0

# Promotion gates (`loopline models promote`, `loopline gate`), for example:
# [gates]
# rules = ["metrics.roc_auc >= 0.90", "compare.champion.roc_auc >= -0.005"]
# require_approval = false
# [gates.evaluation]
# data = "credit@latest"
# target = "y"
# A model with its own rules or data: [gates.MODEL] (and [gates.MODEL.evaluation]) is the
# whole policy of the model registered as MODEL; [gates] applies to the others.

# Monitoring (`loopline monitor run`, `loopline monitor watch`), one table per deployment:
# [monitor.credit]
# window = "1h"
# every = "10m"
# [monitor.credit.thresholds]
# psi = 0.2
# [[monitor.credit.actions]]
# when = "drift"
# do = "alert"
# webhook = "${SLACK_WEBHOOK}"
"""


@dataclass(frozen=True)
class Settings:
    """Where a project keeps its metadata and artifacts, and how tracking behaves."""

    root: Path
    store_uri: str
    artifact_uri: str
    metric_flush_interval: float = 1.0
    s3_endpoint_url: str | None = None
    # the [gates] table of loopline.toml: promotion rules (read by loopline.promotion)
    gates: dict[str, object] = field(default_factory=dict, hash=False)
    # the [monitor] table: one [monitor.DEPLOYMENT] policy each (read by loopline.monitoring)
    monitor: dict[str, object] = field(default_factory=dict, hash=False)
    # a platform server (`loopline server`) that holds the records and blobs instead of
    # store_uri / artifact_uri: LOOPLINE_SERVER, `server = "..."` in loopline.toml, or an
    # http(s):// LOOPLINE_STORE_URI; the token comes from LOOPLINE_TOKEN
    server: str | None = None
    token: str | None = field(default=None, repr=False)
    # the [auth.users] table: user -> role for `loopline server --trust-header`
    server_users: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    def __repr__(self) -> str:  # printed settings must not show a store's password
        return (
            f"Settings(root={self.root!r}, store_uri={redact_uri(self.store_uri)!r}, "
            f"artifact_uri={redact_uri(self.artifact_uri)!r}, "
            f"metric_flush_interval={self.metric_flush_interval!r}, "
            f"s3_endpoint_url={self.s3_endpoint_url!r}, "
            f"server={None if self.server is None else redact_uri(self.server)!r})"
        )


def find_project_root(start: Path | None = None) -> Path | None:
    """The nearest directory at or above `start` holding loopline.toml or .loopline/."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / CONFIG_FILE).is_file() or (candidate / STATE_DIR).is_dir():
            return candidate
    return None


def load_settings(start: Path | None = None, *, require_project: bool = False) -> Settings:
    """Settings for the project around `start` (default: the working directory).

    Without a project, the default is `<start>/.loopline`, unless `require_project` is set
    and no `LOOPLINE_STORE_URI` names a store, in which case ProjectNotFound is raised.
    """
    root = find_project_root(start)
    env_store = os.environ.get("LOOPLINE_STORE_URI")
    if root is None:
        if require_project and not env_store:
            raise ProjectNotFound(
                f"no loopline project in {(start or Path.cwd()).resolve()} or any parent",
                hint="run `loopline init` here, or set LOOPLINE_STORE_URI",
            )
        root = (start or Path.cwd()).resolve()
    table = _read_toml(root / CONFIG_FILE)
    store = _section(table, "store")
    tracking = _section(table, "tracking")

    store_uri = env_store or _absolute_sqlite_uri(
        str(store.get("uri", f"sqlite:///{STATE_DIR}/{DB_FILE}")), root
    )
    artifact_uri = os.environ.get("LOOPLINE_ARTIFACT_URI") or _absolute_location(
        str(store.get("artifacts", f"{STATE_DIR}/{ARTIFACT_DIR}")), root
    )
    interval = os.environ.get("LOOPLINE_METRIC_FLUSH_INTERVAL") or tracking.get(
        "metric_flush_interval", 1.0
    )
    return Settings(
        root=root,
        store_uri=store_uri,
        artifact_uri=artifact_uri,
        metric_flush_interval=_positive_float(interval, "metric_flush_interval"),
        s3_endpoint_url=os.environ.get("LOOPLINE_S3_ENDPOINT_URL")
        or _optional_str(store.get("s3_endpoint_url")),
        gates=_section(table, "gates"),
        monitor=_section(table, "monitor"),
        server=_server(table, store_uri),
        token=os.environ.get("LOOPLINE_TOKEN") or None,
        server_users=_server_users(table),
    )


def _server(table: dict[str, object], store_uri: str) -> str | None:
    """The platform server named by LOOPLINE_SERVER, loopline.toml's `server`, or an
    http(s):// store URI; None for a store opened directly."""
    named = os.environ.get("LOOPLINE_SERVER") or table.get("server")
    if named is None and store_uri.startswith(("http://", "https://")):
        named = store_uri
    if named is None or named == "":
        return None
    if not isinstance(named, str):
        raise InvalidInput(f"loopline.toml: server must be a URL string, got {named!r}")
    return named


def init_project(directory: Path, *, store_uri: str | None = None) -> Path:
    """Create loopline.toml and .loopline/ in `directory`; an existing config is kept.

    `store_uri` (what `loopline init` passes from LOOPLINE_STORE_URI) is written as the
    store instead of the SQLite default, through `shareable_store_uri`: loopline.toml is
    meant for git, a password is not.
    """
    directory = directory.resolve()
    (directory / STATE_DIR / ARTIFACT_DIR).mkdir(parents=True, exist_ok=True)
    config = directory / CONFIG_FILE
    if not config.exists():
        text = DEFAULT_TOML
        if store_uri:
            # json.dumps gives a valid TOML basic string (same escapes), quotes included
            line = f"uri = {json.dumps(shareable_store_uri(store_uri))}\n"
            text = text.replace(_DEFAULT_URI_LINE, line, 1)
        config.write_text(text, encoding="utf-8")
    gitignore = directory / STATE_DIR / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text("# loopline's local store: not for git\n*\n", encoding="utf-8")
    return config


def shareable_store_uri(uri: str) -> str:
    """`uri` without its password and secret query values (e.g. `sslpassword`), as
    written to loopline.toml; unchanged when it holds none."""
    if redact_uri(uri) == uri:
        return uri
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from loopline.redact import is_secret_name

    try:
        url = make_url(uri)
    except ArgumentError as exc:
        raise InvalidInput(f"not a database URI: {redact_uri(uri)!r}") from exc
    url = url._replace(password=None).difference_update_query(  # set() ignores None
        [key for key in url.query if is_secret_name(key)]
    )
    return url.render_as_string(hide_password=False)


def _read_toml(path: Path) -> dict[str, object]:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path} is not valid TOML: {exc}") from exc


def _section(table: dict[str, object], name: str) -> dict[str, object]:
    value = table.get(name, {})
    if not isinstance(value, dict):
        raise InvalidInput(f"[{name}] in {CONFIG_FILE} must be a table, got {value!r}")
    return value


def _server_users(table: dict[str, object]) -> dict[str, str]:
    """[auth.users] (`alice = "deployer"`): the roles of users named by a trusted proxy.
    (Not under [server]: `server = "http://..."` is the client's server URL.)"""
    users = _section(table, "auth").get("users", {})
    if not isinstance(users, dict) or not all(isinstance(role, str) for role in users.values()):
        raise InvalidInput(
            f"[auth.users] in {CONFIG_FILE} must map user names to role names, "
            'e.g. alice = "deployer"'
        )
    return {str(user): role for user, role in users.items()}


def _absolute_sqlite_uri(uri: str, root: Path) -> str:
    """Resolve a relative sqlite:///path against the project root, not the cwd."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/") and ":memory:" not in uri:
        return prefix + str(root / uri[len(prefix) :])
    return uri


def _absolute_location(location: str, root: Path) -> str:
    if "://" in location:
        return location
    path = Path(location).expanduser()
    return str(path if path.is_absolute() else root / path)


def _positive_float(value: object, name: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number of seconds, got {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise InvalidInput(f"{name} must be a positive finite number, got {value!r}")
    return number


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def current_user() -> str:
    """Who is acting: LOOPLINE_USER, else the login name."""
    explicit = os.environ.get("LOOPLINE_USER")
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "unknown"
