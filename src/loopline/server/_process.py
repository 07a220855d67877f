"""Running the platform server: uvicorn over `create_app`, one or more worker processes.

`run_server(options)` checks the options and the project at once (a bad flag or a broken
`[auth.users]` fails the command, not each worker), opens and migrates the metadata
store once, says what it serves and how callers authenticate, then runs uvicorn on the
`app_from_env` factory (the options reach the workers in LOOPLINE_SERVER_CONFIG).

Decisions that matter for security:
- Auth is on with --auth, with --trust-header, and always off loopback unless
  --insecure-no-auth, which warns at every start. With auth on and no token in the
  store the server starts and refuses every request (401) until one is created; there is
  no default token or password.
- uvicorn's `proxy_headers` is off: otherwise a peer at 127.0.0.1 could set the client
  address by X-Forwarded-For and slip past the per-address failed-login limit or pose as a
  trusted proxy. Only `--trust-header` from `--trusted-proxy` peers is believed.
- Every log line goes through loopline.redact (tokens, URI passwords); the access log is
  off; the store URI is printed redacted.
- TCP_NODELAY on accepted sockets and the write coalescing of the prediction server
  (serving.online.server's protocol class); SIGTERM drains in-flight requests (uvicorn's
  graceful shutdown, up to GRACEFUL_SECONDS).

Reliability (tests/server/test_reliability.py): a 2xx is sent only after the request's
one transaction committed, so a kill -9 of the supervisor and its workers loses no
answered write and leaves none half-written (a run comes with its params and tags or
not at all); a restart on the same stores serves them as they were. A request whose
database connection drops (PostgreSQL restarted, a failover, pg_terminate_backend) is
answered 503 StoreUnavailable in JSON by `Database.guard`, and the pool's pre-ping
replaces the dead connections on the next checkout. The remote client retries what is
safe to repeat; metric batches carry an id that the store applies once (store/_metrics.py),
so a batch whose answer was lost in the crash is acknowledged, not stored twice.
"""

from __future__ import annotations

import logging
import logging.config
import os
from typing import TYPE_CHECKING, Any

from loopline.redact import redact_text, redact_uri
from loopline.server._options import CONFIG_ENV, ServerOptions, is_loopback

if TYPE_CHECKING:
    from fastapi import FastAPI

    from loopline.config import Settings
    from loopline.project import Stores
    from loopline.server._permissions import Authenticator

log = logging.getLogger("loopline.server")

FACTORY = "loopline.server._process:app_from_env"
GRACEFUL_SECONDS = 30


class RedactSecrets(logging.Filter):
    """Masks tokens and URI passwords in a log record's message and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact_text(record.getMessage()), None
        if record.exc_info:
            formatter = logging.Formatter()
            record.exc_text = redact_text(formatter.formatException(record.exc_info))
            record.exc_info = None
        return True


def log_config(level: str = "info") -> dict[str, Any]:
    """The prediction server's uvicorn logging, with every handler redacting secrets."""
    from loopline.serving.online.server import log_config as serving_log_config

    config = serving_log_config(level)
    config.setdefault("filters", {})["redact"] = {"()": f"{__name__}.RedactSecrets"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact")
    return config


def make_authenticator(
    options: ServerOptions, opened: Stores, settings: Settings
) -> Authenticator | None:
    """The authenticator the options ask for; None: everyone is the server's user, admin."""
    if not options.auth_on:
        return None
    from loopline.server._auth import (
        ProxyAuthenticator,
        TokenAuthenticator,
        parse_networks,
        parse_users,
    )

    tokens = TokenAuthenticator(lambda: opened.metadata.tokens)
    if options.trust_header is None:
        return tokens
    proxies = parse_networks(options.trusted_proxies)
    return ProxyAuthenticator(
        options.trust_header, proxies, parse_users(settings.server_users), tokens
    )


def served_settings(options: ServerOptions) -> Settings:
    """The settings of the stores this server serves: the project's database and artifact
    store, never a server the environment names for clients (LOOPLINE_SERVER)."""
    from dataclasses import replace

    from loopline.errors import InvalidInput
    from loopline.project import project_settings

    settings = replace(project_settings(options.project), server=None, token=None)
    if settings.store_uri.startswith(("http://", "https://")):
        raise InvalidInput(
            "a loopline server serves a database, not another server: "
            "set LOOPLINE_STORE_URI or [store] uri to a sqlite:// or postgresql:// URI"
        )
    return settings


def build_app(options: ServerOptions) -> FastAPI:
    """The app of `options`: the project's stores, the authenticator, the guards."""
    from loopline.project import open_stores
    from loopline.server.app import create_app

    settings = served_settings(options)
    opened = open_stores(settings)
    authenticator = make_authenticator(options, opened, settings)
    return create_app(opened, authenticator=authenticator, options=options)


def app_from_env() -> FastAPI:
    """The app factory uvicorn calls in each worker (options in LOOPLINE_SERVER_CONFIG)."""
    return build_app(ServerOptions.from_json(os.environ[CONFIG_ENV]))


def run_server(options: ServerOptions, *, log_level: str = "info") -> None:
    """Serve the project's stores until SIGTERM or Ctrl+C (see the module docstring)."""
    import uvicorn

    from loopline.project import open_stores
    from loopline.serving.online.server import PROTOCOL, WORKER_START_S

    options.check()
    settings = served_settings(options)
    opened = open_stores(settings)
    make_authenticator(options, opened, settings)  # bad proxies or [auth.users] fail here
    config = log_config(log_level)
    logging.config.dictConfig(config)
    try:
        _say_how_to_call(options, opened)
    finally:
        opened.close()
    os.environ[CONFIG_ENV] = options.to_json()
    uvicorn.run(
        FACTORY,
        factory=True,
        host=options.host,
        port=options.port,
        workers=options.workers,
        http=PROTOCOL,
        log_config=config,
        log_level=log_level,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        timeout_worker_healthcheck=WORKER_START_S,
    )


def _say_how_to_call(options: ServerOptions, opened: Stores) -> None:
    """The start-up lines: what is served, how callers authenticate, what is unsafe."""
    workers = f"{options.workers} worker{'s' * (options.workers > 1)}"
    log.info(
        "loopline server on http://%s:%d (%s): metadata %s, artifacts %s",
        options.host,
        options.port,
        workers,
        redact_uri(opened.settings.store_uri),
        redact_uri(opened.settings.artifact_uri),
    )
    if options.insecure_no_auth and not is_loopback(options.host):
        log.warning(
            "INSECURE: --insecure-no-auth on %s: anyone who can reach this address acts as "
            "admin; bind to 127.0.0.1 or drop the flag",
            options.host,
        )
    if not options.auth_on:
        log.info("auth is off (loopback): every caller acts as the server's user, as admin")
        return
    usable = opened.metadata.tokens.count_usable()
    if usable == 0:
        log.warning(
            "auth is on and no token exists: every request is refused (401) until one is "
            "created: loopline tokens create --user NAME --role admin"
        )
    else:
        log.info("auth is on: %d usable token%s", usable, "s" * (usable != 1))
    if options.trust_header is not None:
        log.info("trusting %s from %s", options.trust_header, ", ".join(options.trusted_proxies))
    if options.host in ("0.0.0.0", "::") and not options.allowed_hosts:
        log.info(
            "only Host headers naming localhost are answered: add --allowed-host NAME for "
            "each name clients use to reach this server"
        )
