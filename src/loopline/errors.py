"""Every error loopline raises on purpose.

    LooplineError                  500 / exit 1   base class; carries message + hint
    ├── InvalidInput               422 / exit 2   the caller passed something malformed
    │   ├── InvalidFilter          422 / exit 2   a search filter that does not parse
    │   ├── InvalidPath            422 / exit 2   a logical path that would escape the store
    │   ├── MalformedRequest       400 / exit 2   not JSON or UTF-8, repeated keys, too deep
    │   ├── RequestTimeout         408 / exit 2   a request body that did not arrive in time
    │   ├── PayloadTooLarge        413 / exit 2   a request body over the server's limit
    │   ├── UnsupportedMediaType   415 / exit 2   a request body that is not application/json
    │   └── SignatureMismatch      422 / exit 2   model input that breaks the model's signature
    │       └── InvalidField       422 / exit 2   one field of one request row; names field and row
    ├── NotFound                   404 / exit 3   an unknown run, experiment, artifact, ...
    ├── Conflict                   409 / exit 4   a write that contradicts stored state
    ├── CorruptedData              500 / exit 5   stored bytes no longer match their hash
    ├── StoreUnavailable           503 / exit 6   the database or object store cannot be reached
    ├── ProjectNotFound            404 / exit 7   no loopline project here or above
    ├── MissingExtra               501 / exit 8   an optional dependency is not installed
    ├── UnsafeModel                403 / exit 9   loading would run untrusted code (pickle, types)
    ├── PromotionRefused           409 / exit 1   promotion gates failed; carries the failed rules
    ├── ParityFailed               422 / exit 10  an exported model predicts differently
    ├── NotReady                   503 / exit 11  a served model is still loading or warming up
    ├── Unauthorized               401 / exit 12  no valid credentials for the platform server
    └── Forbidden                  403 / exit 13  valid credentials, but a role that is too low
        └── SelfApproval           403 / exit 13  approving a promotion one requested oneself

Each class knows its HTTP status and CLI exit code, so the CLI and the servers map
errors the same way without a table of their own.
"""

from __future__ import annotations

from loopline.redact import redact_text


class LooplineError(Exception):
    """Base class: a message a user can act on, and an optional hint.

    Message and hint are redacted (loopline.redact) as the error is made: an error may
    quote a store URI or a command line, and it is printed, logged, sent over HTTP and
    stored as a run's error, so a password must not survive into it.
    """

    http_status = 500
    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        message = redact_text(str(message))
        super().__init__(message)
        self.message = message
        self.hint = None if hint is None else redact_text(hint)

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message} (hint: {self.hint})"

    def to_dict(self) -> dict[str, str | None]:
        """The JSON body shape shared by every HTTP API: {"type", "message", "hint"}."""
        return {"type": type(self).__name__, "message": self.message, "hint": self.hint}


class InvalidInput(LooplineError):
    """The caller passed a malformed value: wrong type, bad name, NaN where not allowed."""

    http_status = 422
    exit_code = 2


class InvalidFilter(InvalidInput):
    """A search filter that does not parse; `position` is the offending character offset."""

    def __init__(self, message: str, *, text: str, position: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.text = text
        self.position = position


class InvalidPath(InvalidInput):
    """A logical path that is absolute, climbs out with '..', or holds NUL or backslashes."""


class SignatureMismatch(InvalidInput):
    """Model input that breaks the model's signature; `field` names the offending column."""

    def __init__(self, message: str, *, field: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.field = field


class InvalidField(SignatureMismatch):
    """One field of a request row that breaks the model's signature: missing, extra, of the
    wrong type, or null / NaN / infinite where the column does not allow it."""

    def __init__(
        self, message: str, *, field: str, row: int | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, field=field, hint=hint)
        self.row = row


class MalformedRequest(InvalidInput):
    """A body that is not valid UTF-8 JSON, repeats a key in an object, nests too deep, or
    holds text that is not valid Unicode (a lone surrogate); `field` locates the value when
    the JSON parsed."""

    http_status = 400

    def __init__(self, message: str, *, field: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.field = field


class RequestTimeout(InvalidInput):
    """A request body that did not arrive within the server's body timeout (a stalled or
    trickling client); the connection is closed after the answer."""

    http_status = 408


class PayloadTooLarge(InvalidInput):
    """A request body larger than the server accepts (checked before parsing)."""

    http_status = 413


class UnsupportedMediaType(InvalidInput):
    """A request whose Content-Type is not JSON; no other deserializer ever runs."""

    http_status = 415


class NotFound(LooplineError):
    """An unknown run, experiment, artifact or other named object."""

    http_status = 404
    exit_code = 3


class Conflict(LooplineError):
    """A write that contradicts what is stored, e.g. a second value for an immutable param."""

    http_status = 409
    exit_code = 4


class CorruptedData(LooplineError):
    """Stored bytes whose hash no longer matches their address: tampering or disk damage."""

    http_status = 500
    exit_code = 5


class StoreUnavailable(LooplineError):
    """The metadata database or the artifact store cannot be reached or stayed locked."""

    http_status = 503
    exit_code = 6


class ProjectNotFound(LooplineError):
    """No `loopline.toml` or `.loopline/` in the working directory or any parent."""

    http_status = 404
    exit_code = 7


class MissingExtra(LooplineError):
    """An optional dependency is missing; the message carries the pip line that fixes it."""

    http_status = 501
    exit_code = 8

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(
            f"{feature} needs the '{extra}' extra, which is not installed",
            hint=f"pip install 'loopline[{extra}]'",
        )
        self.extra = extra


class UnsafeModel(LooplineError):
    """Loading a model would run untrusted code: a pickle without `allow_pickle=True`, or
    types the caller did not list in `trusted=[...]`."""

    http_status = 403
    exit_code = 9


class PromotionRefused(LooplineError):
    """A promotion whose gates failed; `failures` holds one line per failed rule."""

    http_status = 409
    exit_code = 1

    def __init__(self, message: str, *, failures: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.failures = failures


class ParityFailed(LooplineError):
    """An exported model (e.g. ONNX) whose predictions differ from the original's beyond
    the tolerance; nothing was registered."""

    http_status = 422
    exit_code = 10


class NotReady(LooplineError):
    """A served model is still loading or warming up; retry once /health/ready answers 200."""

    http_status = 503
    exit_code = 11


class Unauthorized(LooplineError):
    """No valid credentials: a missing, unknown, expired or revoked token."""

    http_status = 401
    exit_code = 12


class Forbidden(LooplineError):
    """Valid credentials, but a role below what the operation requires."""

    http_status = 403
    exit_code = 13


class SelfApproval(Forbidden):
    """An approval by the user who requested the promotion it would complete: an approval
    is a second person's check, so the requester and the approver must differ."""


ERROR_TYPES: dict[str, type[LooplineError]] = {
    cls.__name__: cls
    for cls in (
        LooplineError,
        InvalidInput,
        InvalidFilter,
        InvalidPath,
        SignatureMismatch,
        InvalidField,
        MalformedRequest,
        RequestTimeout,
        PayloadTooLarge,
        UnsupportedMediaType,
        NotFound,
        Conflict,
        CorruptedData,
        StoreUnavailable,
        ProjectNotFound,
        MissingExtra,
        UnsafeModel,
        PromotionRefused,
        ParityFailed,
        NotReady,
        Unauthorized,
        Forbidden,
        SelfApproval,
    )
}
"""Maps the `type` field of an HTTP error body back to its class (for remote clients)."""
