"""Redacting secrets from what loopline stores and shows: URIs, command lines, messages.

A run records the command line that started it, and the CLI prints store URIs; both are
where passwords and API keys travel (`train.py --db-password=... --api-key sk-...`,
`postgresql+psycopg://user:password@host/db`). Everything here replaces the secret with
`***` and keeps the rest, so a reader still sees which option or URI was used.

What is redacted:

- URI passwords: the password of `scheme://user:password@host` (the user name stays),
  and the value of query parameters with a secret-looking name (`?password=...`,
  `&token=...`, `X-Amz-Credential=...`).
- Values of options and assignments with a secret-looking name. On a command line:
  `--db-password=x`, `--api-key x` and `-password x` (the next argument, unless it
  starts with `--`), `db.password=x`, `+db.password=x`, `API_KEY=x`. In any text:
  `name=value` up to a space, `&`, `;`, `,` or a quote (`password=x` in a libpq DSN).
- Well-known token shapes anywhere: OpenAI/Anthropic `sk-...` (20 or more characters
  after the dash, one of them a digit, so `sk-learn` stays), GitHub `ghp_...`,
  `gho_`/`ghu_`/`ghs_`/`ghr_...`, `github_pat_...`, GitLab `glpat-...`, Slack
  `xox[abprs]-...`, AWS access key ids `AKIA...`/`ASIA...`, Hugging Face `hf_...`,
  Google `AIza...`, loopline's own API tokens `llt_...`, Stripe `sk_live_...`/
  `rk_live_...`, and JWTs (`eyJ...`.`...`.`...`); the recognisable prefix is kept
  (`sk-***`).

The name rule: a name (an option without its leading dashes, a query parameter, the last
part of a dotted `a.b.c=` key) is cut into words at `-`, `_`, `.` and lower-to-upper case
changes (`apiKey` is `api key`); it is secret when its LAST word is one of password,
passwd, pwd, passphrase, sslpassword, secret, secrets, token, key, apikey, credential,
credentials, auth, signature or sig. So `--db-password`, `--api-key`, `--apiKey`,
`--hf_token`, `--aws-secret-access-key` and `--key` are redacted, while `--key-column`,
`--password-file`, `--passwordless`, `--tokenizer`, `--max-tokens`, `--pad-token-id`,
`--monkey` and `--auth-method` are not. Short options (`-p x`) are never redacted by
name: a letter says nothing.

This module imports nothing from loopline (errors.py uses it), and compiles its patterns
on first use so that `import loopline` stays fast.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

MASK = "***"

SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "sslpassword",
        "secret",
        "secrets",
        "token",
        "key",
        "apikey",
        "credential",
        "credentials",
        "auth",
        "signature",
        "sig",
    }
)
"""A name whose last word is one of these names a secret (see the module docstring)."""

# (literal prefix kept, rest of the token) for token shapes; the prefix must not follow a
# letter or digit, so that `task-...` or `bash_...` never match.
_TOKEN_SHAPES = (
    r"(sk-)[A-Za-z0-9_\-]{20,}+",  # masked only with a digit in it: see _mask_tokens
    r"((?:sk|rk)_live_)[A-Za-z0-9]{16,}",
    r"(gh[pousr]_)[A-Za-z0-9]{30,}",
    r"(github_pat_)[A-Za-z0-9_]{20,}",
    r"(glpat-)[A-Za-z0-9_\-]{20,}",
    r"(xox[abprs]-)[A-Za-z0-9\-]{10,}",
    r"((?:AKIA|ASIA))[0-9A-Z]{16}",
    r"(hf_)[A-Za-z0-9]{20,}",
    r"(llt_)[0-9a-f]{12}_[A-Za-z0-9_\-]{20,}",  # loopline's own API tokens (store.tokens)
    r"(AIza)[0-9A-Za-z_\-]{35}",
    # a JWT starts a word of its own: a start inside `eyJ-eyJ-...` would rescan the run
    r"(?<![_\-])(eyJ)[A-Za-z0-9_\-]{8,}+\.[A-Za-z0-9_\-]{8,}+\.[A-Za-z0-9_\-]{8,}+",
)
# Cheap test before any real work: most text (a param value, a plain command line) holds
# none of these, and redaction runs on every stored run and every error message.
_MAYBE = (
    r"://|=|pass|pwd|secret|token|key|credential|auth|sig|sk-|sk_|rk_|gh[pousr]_|github_pat"
    r"|glpat|xox|akia|asia|hf_|aiza|eyj|llt_"
)


@cache
def _patterns() -> dict[str, re.Pattern[str]]:
    return {
        "maybe": re.compile(_MAYBE, re.IGNORECASE),
        # scheme://user:password@ ; the password runs to the last '@' before a space,
        # quote or '/', so a raw '@' inside it is still covered.
        # A scheme starts where a run of scheme characters starts, and its parts are
        # possessive: a long run of letters with no '://' is then scanned once, not once
        # per position (which took minutes for a 200 KB message).
        "userinfo": re.compile(
            r"(?<![A-Za-z0-9+.\-])([A-Za-z][A-Za-z0-9+.\-]*+://[^\s/@:'\"<>]*+):([^\s/'\"<>]*)@"
        ),
        # name=value where the name is a word of letters, digits, '-', '_' and '.'
        "assignment": re.compile(r"(?<![\w.\-])([+~]{0,2}-{0,2}[A-Za-z_][\w.\-]*)=([^\s&;'\",]+)"),
        # a whole command-line argument `[--]name=value` (value: everything after '=')
        "argument": re.compile(r"([+~]{0,2}-{0,2}[A-Za-z_][\w.\-]*)=(.*)", re.DOTALL),
        "tokens": re.compile(
            "(?<![A-Za-z0-9])(?:" + "|".join(_TOKEN_SHAPES) + ")",
        ),
        "words": re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])"),
    }


def is_secret_name(name: str) -> bool:
    """Whether an option, parameter or key name looks like it holds a secret.

    `name` may carry leading dashes or a dotted prefix (`--db-password`, `db.password`);
    see the module docstring for the rule.
    """
    words = _patterns()["words"].findall(name.rsplit(".", 1)[-1])
    return bool(words) and words[-1].lower() in SECRET_WORDS


def redact_text(text: str) -> str:
    """`text` with URI passwords, secret `name=value` values and token shapes masked.

    Safe for any text shown to a user (error messages, log lines): it never touches
    words that are not a URI password, an assignment to a secret name, or a token shape.
    """
    patterns = _patterns()
    if not text or not patterns["maybe"].search(text):
        return text
    text = patterns["userinfo"].sub(_mask_userinfo, text)
    text = patterns["assignment"].sub(_mask_assignment, text)
    return _mask_tokens(text)


def redact_uri(uri: str) -> str:
    """A store or artifact URI fit to print: its password and secret query values masked.

    Example: `postgresql+psycopg://loopline:***@db:5432/loopline`.
    """
    return redact_text(uri)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command line's arguments with secret option values masked (see the module doc).

    `--name=value` and `name=value` mask the value when the name looks secret;
    `--name value` masks the next argument unless it starts with `--`; every argument
    also goes through `redact_text` (URIs, token shapes).
    """
    out: list[str] = []
    mask_next = False
    for arg in argv:
        if mask_next and not arg.startswith("--"):
            out.append(MASK)
            mask_next = False
            continue
        assigned = _patterns()["argument"].fullmatch(arg)
        if assigned is not None:  # the whole rest of the argument is the value
            name = assigned.group(1)
            secret = is_secret_name(name.lstrip("+~-"))
            out.append(f"{name}={MASK}" if secret else redact_text(arg))
            mask_next = False
            continue
        # `--api-key x`, and `-password x` (single-dash long options); `-p x` stays: one
        # letter says nothing
        long_option = arg.startswith("--") or (arg.startswith("-") and len(arg) > 2)
        mask_next = long_option and is_secret_name(arg.lstrip("-"))
        out.append(redact_text(arg))
    return out


def redact_command(line: str) -> str:
    """A stored command line (as `shlex.join` wrote it) with its secrets masked."""
    if not line or not _patterns()["maybe"].search(line):
        return line
    import shlex

    try:
        words = shlex.split(line)
    except ValueError:  # unbalanced quotes: not ours; mask what text rules can find
        return redact_text(line)
    redacted = redact_argv(words)
    return line if redacted == words else shlex.join(redacted)


def _mask_userinfo(match: re.Match[str]) -> str:
    return f"{match.group(1)}:{MASK}@" if match.group(2) else match.group(0)


def _mask_assignment(match: re.Match[str]) -> str:
    name, value = match.group(1), match.group(2)
    if value == MASK or not is_secret_name(name.lstrip("+~-")):
        return match.group(0)
    return f"{name}={MASK}"


def _mask_tokens(text: str) -> str:
    def keep_prefix(match: re.Match[str]) -> str:
        prefix = next(group for group in match.groups() if group is not None)
        if prefix == "sk-" and not any(ch.isdigit() for ch in match.group(0)):
            # `sk-` words without a digit are prose (`sk-learn-...`); testing this here,
            # not in a lookahead, keeps the scan linear (a lookahead rescanned the run
            # from every `sk-` in it)
            return match.group(0)
        return prefix + MASK

    return _patterns()["tokens"].sub(keep_prefix, text)
