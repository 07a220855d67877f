"""`loopline server`: the platform server (the whole API over HTTP, with tokens and roles)."""

from __future__ import annotations

import typer

from loopline.server._options import DEFAULT_MAX_BODY_MB


def server(
    host: str = typer.Option("127.0.0.1", "--host", help="The address to listen on."),
    port: int = typer.Option(5000, "--port", help="The TCP port to listen on."),
    workers: int = typer.Option(1, "--workers", help="Worker processes."),
    auth: bool = typer.Option(False, "--auth", help="Require a token even on loopback."),
    insecure_no_auth: bool = typer.Option(
        False,
        "--insecure-no-auth",
        help="No authentication on a non-loopback address: everyone is admin (warns).",
    ),
    trust_header: str | None = typer.Option(
        None,
        "--trust-header",
        help="A header naming the user, set by an authenticating proxy (X-Forwarded-User); "
        "roles come from [auth.users] in loopline.toml.",
    ),
    trusted_proxy: list[str] | None = typer.Option(
        None,
        "--trusted-proxy",
        help="An address or network (CIDR) whose --trust-header is believed; repeatable.",
    ),
    allowed_host: list[str] | None = typer.Option(
        None,
        "--allowed-host",
        help="A Host header value to answer besides the bound host and localhost "
        "(repeatable; '*' for any): other names get 400 (DNS rebinding).",
    ),
    cors_origin: list[str] | None = typer.Option(
        None, "--cors-origin", help="An origin browsers may call from (repeatable); none: off."
    ),
    max_body_mb: float = typer.Option(
        DEFAULT_MAX_BODY_MB, "--max-body-mb", help="Largest request body accepted (else 413)."
    ),
    artifacts: str = typer.Option(
        "proxy",
        "--artifacts",
        metavar="[proxy|direct]",
        help="proxy: blobs go through the server; direct: S3 pre-signed URLs where possible.",
    ),
    log_level: str = typer.Option("info", "--log-level", help="debug, info or warning."),
) -> None:
    """Serve the project's stores over HTTP to a team: tracking, data, registry, deployments.

    Auth is on with --auth, and always when --host is not loopback (unless
    --insecure-no-auth). Callers send `Authorization: Bearer TOKEN` (`loopline tokens
    create`). SIGTERM lets requests in flight finish. Example: loopline server --host
    0.0.0.0 --port 5000 --workers 2 --allowed-host loopline.example.com
    """
    from loopline.cli._project import open_project
    from loopline.server._options import ServerOptions
    from loopline.server._process import run_server

    root = open_project(metadata=False).stores.settings.root  # fail clearly outside a project
    options = ServerOptions(
        host=host,
        port=port,
        workers=workers,
        auth=auth,
        insecure_no_auth=insecure_no_auth,
        trust_header=trust_header,
        trusted_proxies=tuple(trusted_proxy or ()),
        allowed_hosts=tuple(allowed_host or ()),
        cors_origins=tuple(cors_origin or ()),
        max_body_mb=max_body_mb,
        artifacts=artifacts,
        project=str(root),
    )
    if log_level not in ("debug", "info", "warning"):
        from loopline.errors import InvalidInput

        raise InvalidInput(f"--log-level must be debug, info or warning, got {log_level!r}")
    run_server(options.check(), log_level=log_level)


def ui(
    port: int = typer.Option(5000, "--port", help="The TCP port on 127.0.0.1."),
    no_browser: bool = typer.Option(
        False, "--no-browser", help="Only print the address; open no browser."
    ),
) -> None:
    """Browse this project's experiments and runs in a web browser.

    Serves the project on 127.0.0.1 only, with no sign-in (as `loopline server` on
    loopback), prints the address and opens a browser there unless --no-browser (or there
    is no display). Ctrl+C stops it.

    Example: loopline ui --port 5001
    """
    from loopline.cli._output import console
    from loopline.cli._project import open_project
    from loopline.errors import InvalidInput
    from loopline.redact import redact_uri
    from loopline.server._options import ServerOptions
    from loopline.server._process import run_server

    settings = open_project(metadata=False).stores.settings
    if settings.server is not None:
        raise InvalidInput(
            f"this project's records are on the server at {redact_uri(settings.server)}",
            hint="open that server's address in a browser: it serves the same pages",
        )
    options = ServerOptions(host="127.0.0.1", port=port, project=str(settings.root)).check()
    _check_port_free(port)
    url = f"http://127.0.0.1:{port}/"
    console.print(f"loopline UI of {settings.root} at {url}  (Ctrl+C stops it)", soft_wrap=True)
    if not no_browser and _has_display():
        _open_when_listening(url, port)
    run_server(options, log_level="warning")


def _check_port_free(port: int) -> None:
    """A one-line error for a port in use, instead of the server's trace."""
    import socket

    from loopline.errors import InvalidInput

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise InvalidInput(
                f"port {port} on 127.0.0.1 is in use", hint="pick another with --port"
            ) from None


def _has_display() -> bool:
    """Whether a browser could show a window (Linux without X or Wayland cannot)."""
    import os
    import sys

    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _open_when_listening(url: str, port: int) -> None:
    """Open `url` in the default browser once the server accepts connections (a thread)."""
    import socket
    import threading
    import time
    import webbrowser

    def wait_then_open() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            except OSError:
                time.sleep(0.1)
                continue
            webbrowser.open(url)
            return

    threading.Thread(target=wait_then_open, name="open-browser", daemon=True).start()
