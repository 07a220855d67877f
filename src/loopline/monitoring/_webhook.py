"""Posting an alert to a webhook without opening a door into the network behind loopline.

A webhook URL is data from a policy file, so it is treated as hostile (server-side request
forgery: MLflow's webhook checks were bypassed by DNS rebinding and IPv6 spellings).
The defences, in order:

- the URL is expanded (`${NAME}` from the environment) only when it is sent, and is never
  shown whole: messages and records carry `scheme://host` alone (`redacted`);
- only `http` and `https`, no user name or password in the URL, no control characters;
- the host is resolved ONCE (`socket.getaddrinfo`); if ANY address it resolves to is
  loopback, private, link-local, multicast, reserved, unspecified or otherwise not
  public, the send is refused, checking also the IPv4 address inside an IPv4-mapped,
  6to4, Teredo or NAT64 IPv6 address. Every spelling of an address (`127.1`,
  `2130706433`, `0177.0.0.1`, `0x7f000001`, `[::ffff:127.0.0.1]`, `localhost.`) reaches
  the check as the address it resolves to, so none slips past it. Names `localhost` and
  `*.localhost` are refused before resolution;
- a policy's `allow_hosts` lets through a host written exactly as listed, or an address
  equal to a listed one (for a receiver on 127.0.0.1 in tests or a private network);
- the connection goes to the address that was checked (the name is not resolved again,
  so a second DNS answer cannot redirect it); the Host header, and for https the TLS
  server name and certificate check, use the host name;
- redirects are not followed (a 3xx is a failure); every attempt has a timeout (5 s by
  default); connection errors and 5xx answers are retried a bounded number of times with
  a doubling pause, other answers are not.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from loopline.errors import InvalidInput

Resolve = Callable[[str, int], list[str]]
"""Host name and port -> the addresses to check (the first is connected to)."""

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_RESPONSE_LIMIT = 64 * 1024  # read at most this much of an answer: we only need the status
_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x20\x7f\\]")


@dataclass(frozen=True)
class Result:
    """What a send came to: `status` of the last answer (None without one), `error`
    (None when delivered), how many `attempts` were made."""

    target: str
    status: int | None
    error: str | None
    attempts: int

    @property
    def ok(self) -> bool:
        return self.error is None


def redacted(template: str, environ: Mapping[str, str] | None = None) -> str:
    """`scheme://host` of the URL `template` names: what every message and record shows.

    Variables are expanded when they are set; a URL that cannot be read shows as
    `webhook (unreadable URL)`, one whose host needs a missing variable as the variables.
    """
    environ = os.environ if environ is None else environ
    names = _VARIABLE.findall(template)
    try:
        url = expand(template, environ)
    except InvalidInput:
        return "webhook (" + ", ".join("${" + name + "}" for name in names) + ")"
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host = None
    if not host or parts.scheme.lower() not in ("http", "https"):
        return "webhook (unreadable URL)"
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme.lower()}://{shown}"


def expand(template: str, environ: Mapping[str, str] | None = None) -> str:
    """`template` with each `${NAME}` replaced by the environment variable NAME.

    Raises:
        InvalidInput: a variable is not set (or empty), or `${...}` holds no valid name.
    """
    environ = os.environ if environ is None else environ

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if not _VARIABLE_NAME.fullmatch(name):
            raise InvalidInput(f"the webhook URL holds '${{{name}}}', which names no variable")
        found = environ.get(name)
        if not found:
            raise InvalidInput(
                f"the webhook URL needs the environment variable {name}, which is not set",
                hint=f"export {name}=https://... in the environment of the process that alerts",
            )
        return found

    return _VARIABLE.sub(value, template)


def check_template(template: str) -> None:
    """Check a policy's webhook without sending: variable names, and, for a URL without
    variables, its shape (scheme, host, no user info). Raises InvalidInput."""
    for name in _VARIABLE.findall(template):
        if not _VARIABLE_NAME.fullmatch(name):
            raise InvalidInput(f"'${{{name}}}' names no environment variable")
    if not _VARIABLE.search(template):
        _split(template)


def normalize_host(entry: str) -> str:
    """An `allow_hosts` entry as it is compared: lower case, an address in its short form
    (`[::1]` and `0:0::1` are `::1`)."""
    entry = entry.strip().lower()
    bare = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return entry


def post_json(
    template: str,
    body: bytes,
    *,
    allow_hosts: Iterable[str] = (),
    timeout: float = 5.0,
    attempts: int = 3,
    backoff: float = 0.5,
    resolve: Resolve | None = None,
) -> Result:
    """POST `body` (JSON) to the URL `template` names, with the defences of this module.

    Returns a Result: delivered on a 2xx answer; otherwise `error` says why, in words that
    name the target only as `scheme://host`. Never raises for a refused, unreachable or
    failing webhook: an alert that cannot be sent must not stop the watcher.
    """
    target = redacted(template)
    try:
        url = expand(template)
        parts = _split(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = _checked_address(host, port, allow_hosts, resolve or _resolve)
    except InvalidInput as exc:
        return Result(target, None, exc.message, 0)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    secrets = [url, url.split("://", 1)[-1], path, parts.path, parts.query]
    status: int | None = None
    error: str | None = None
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            time.sleep(backoff * 2 ** (attempt - 2))
        try:
            status = _send_once(parts.scheme, host, port, address, path, body, timeout)
        except ssl.SSLCertVerificationError as exc:
            return Result(target, None, f"{target}: {_scrub(exc, secrets)}", attempt)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            status, error = None, f"{target}: {_scrub(exc, secrets)}"
            continue
        if 200 <= status < 300:
            return Result(target, status, None, attempt)
        if 300 <= status < 400:
            error = f"{target} answered HTTP {status}, a redirect; loopline does not follow it"
            return Result(target, status, error, attempt)
        error = f"{target} answered HTTP {status}"
        if status < 500:
            return Result(target, status, error, attempt)
    return Result(target, status, f"{error} (after {attempts} attempts)", attempts)


def _split(url: str) -> SplitResult:
    """The parts of an http(s) URL without user info; InvalidInput otherwise (the message
    never quotes the URL)."""
    if _UNSAFE_CHARACTERS.search(url):
        raise InvalidInput("the webhook URL holds a space, backslash or control character")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise InvalidInput("the webhook URL is not a valid URL (its host or port)") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidInput(
            "the webhook URL must start with http:// or https://",
            hint="other schemes (file:, ftp:, gopher:) are refused",
        )
    if "@" in parts.netloc:
        raise InvalidInput("the webhook URL must not hold a user name or password (user@host)")
    if not parts.hostname:
        raise InvalidInput("the webhook URL names no host")
    if not (parts.path + parts.query).isascii():
        raise InvalidInput(
            "the webhook URL's path holds characters that are not ASCII",
            hint="write them percent-encoded (%C3%A9 for é)",
        )
    return parts._replace(scheme=parts.scheme.lower())


def _checked_address(host: str, port: int, allow_hosts: Iterable[str], resolve: Resolve) -> str:
    """The address to connect to: the first that `host` resolves to, once every address it
    resolves to passed the rules (or the allow-list). Raises InvalidInput."""
    allowed = {normalize_host(entry) for entry in allow_hosts}
    name = normalize_host(host)
    if name in allowed:  # the host exactly as listed: trusted whatever it resolves to
        return _first(resolve(host, port), host)
    if name.rstrip(".") == "localhost" or name.rstrip(".").endswith(".localhost"):
        raise _refused(host, "it names this machine (localhost)")
    addresses = _first_all(resolve(host, port), host)
    for address in addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise _refused(host, f"it resolved to {address!r}, which is not an address") from None
        if normalize_host(address.split("%", 1)[0]) in allowed:
            continue
        reason = forbidden_reason(address)
        if reason is not None:
            shown = host if host == address else f"{host} (resolved to {address})"
            raise _refused(shown, f"it is a {reason} address")
    return addresses[0]


def forbidden_reason(address: str) -> str | None:
    """Why a webhook may not reach `address` ("loopback", "private", ...), or None when
    it is a public unicast address. IPv4 addresses carried inside IPv6 ones (mapped, 6to4,
    Teredo, NAT64) are checked as well."""
    ip = ipaddress.ip_address(address)
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        if ip in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        candidates += [inner for inner in embedded if inner is not None]
    for candidate in candidates:
        for reason, flagged in (
            ("loopback", candidate.is_loopback),
            ("unspecified", candidate.is_unspecified),
            ("link-local", candidate.is_link_local),
            ("multicast", candidate.is_multicast),
            ("private", candidate.is_private),
            ("reserved", candidate.is_reserved),
            ("non-public", not candidate.is_global),
        ):
            if flagged:
                return reason
    return None


def _resolve(host: str, port: int) -> list[str]:
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise InvalidInput(f"cannot resolve the webhook host {host}: {exc}") from None
    return [str(sockaddr[0]) for *_, sockaddr in answers]


def _first_all(addresses: list[str], host: str) -> list[str]:
    unique = list(dict.fromkeys(addresses))
    if not unique:
        raise InvalidInput(f"the webhook host {host} resolves to no address")
    return unique


def _first(addresses: list[str], host: str) -> str:
    return _first_all(addresses, host)[0]


def _refused(host: str, reason: str) -> InvalidInput:
    return InvalidInput(
        f"refused to send to webhook host {host}: {reason}",
        hint="add the host or address to the action's allow_hosts if it is meant",
    )


def _send_once(
    scheme: str, host: str, port: int, address: str, path: str, body: bytes, timeout: float
) -> int:
    """One POST to `address` (the checked one) naming `host`; the answer's status."""
    connection: http.client.HTTPConnection
    if scheme == "https":
        connection = _PinnedHTTPS(host, port, address, timeout)
    else:
        connection = _PinnedHTTP(host, port, address, timeout)
    try:
        connection.request(
            "POST",
            path,
            body=body,
            headers={"Content-Type": "application/json", "User-Agent": _user_agent()},
        )
        response = connection.getresponse()
        response.read(_RESPONSE_LIMIT)
        return response.status
    finally:
        connection.close()


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to a fixed address; `host` is only what the Host header says."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """An HTTPS connection to a fixed address, verifying the certificate of `host`."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def _scrub(exc: BaseException, secrets: list[str]) -> str:
    """An exception as one line, with every spelling of the URL taken out."""
    message = str(exc) or type(exc).__name__
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) > 1:
            message = message.replace(secret, "<url>")
    return " ".join(message.split())


def _user_agent() -> str:
    from loopline._version import __version__

    return f"loopline/{__version__}"
