"""What `loopline server`'s flags set, in one value every worker process receives.

With `--workers N` uvicorn starts N processes that each build the app from the
`loopline.server._process:app_from_env` factory; the options reach them as JSON in the
LOOPLINE_SERVER_CONFIG environment variable (no secret is in them: tokens live in the
store, the store's URI in the project's settings).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass

from loopline.errors import InvalidInput

CONFIG_ENV = "LOOPLINE_SERVER_CONFIG"
ARTIFACT_MODES = ("proxy", "direct")
DEFAULT_MAX_BODY_MB = 64  # > a blob chunk (4 MiB) or pack, far below what fills memory


@dataclass(frozen=True)
class ServerOptions:
    """The platform server's settings (see `loopline server --help` for each)."""

    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 1
    auth: bool = False  # asked for with --auth; `auth_on` says whether it is on
    insecure_no_auth: bool = False
    trust_header: str | None = None
    trusted_proxies: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    max_body_mb: float = DEFAULT_MAX_BODY_MB
    artifacts: str = "proxy"
    project: str | None = None  # the project root the workers open

    @property
    def auth_on(self) -> bool:
        """Auth is on with --auth or --trust-header, and always off loopback unless
        --insecure-no-auth."""
        if self.auth or self.trust_header:
            return True
        return not is_loopback(self.host) and not self.insecure_no_auth

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    def check(self) -> ServerOptions:
        """These options, or InvalidInput naming the first bad one."""
        if not 0 < self.port < 65536:
            raise InvalidInput(f"--port must be 1-65535, got {self.port}")
        if not 1 <= self.workers <= 64:
            raise InvalidInput(f"--workers must be 1-64, got {self.workers}")
        if not 0 < self.max_body_mb <= 65536:  # also refuses NaN
            raise InvalidInput(f"--max-body-mb must be in (0, 65536], got {self.max_body_mb}")
        if self.artifacts not in ARTIFACT_MODES:
            raise InvalidInput(f"--artifacts must be proxy or direct, got {self.artifacts!r}")
        if self.auth and self.insecure_no_auth:
            raise InvalidInput("--auth and --insecure-no-auth contradict each other")
        if bool(self.trust_header) != bool(self.trusted_proxies):
            raise InvalidInput("--trust-header and --trusted-proxy go together")
        if self.trust_header is not None and not _HEADER_CHARS.issuperset(self.trust_header):
            raise InvalidInput(f"--trust-header {self.trust_header!r} is not a header name")
        for origin in self.cors_origins:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise InvalidInput(f"--cors-origin {origin!r} must be http(s)://host[:port]")
        return self

    def allowed_host_names(self) -> tuple[str, ...]:
        """The Host header values served: the bound host, loopback names, --allowed-host."""
        bound = () if self.host in ("0.0.0.0", "::", "") else (self.host,)
        return (*bound, "localhost", "127.0.0.1", "::1", *self.allowed_hosts)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServerOptions:
        values = json.loads(text)
        for name in ("trusted_proxies", "allowed_hosts", "cors_origins"):
            values[name] = tuple(values[name])
        return cls(**values)


_HEADER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def is_loopback(host: str) -> bool:
    """Whether binding to `host` keeps the server on this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
