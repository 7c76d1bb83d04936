"""Secrets out of text and data: API keys, tokens and passwords replaced by :data:`REDACTED`.

One rule set for every place a secret could leak: analytics events (re-exported by
:mod:`limelight.schemas`), error messages and the error bodies servers send back.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["REDACTED", "redact", "redact_text"]

#: What a secret is replaced with.
REDACTED: Final = "[redacted]"

_SECRET_KEY_WORDS: Final = (
    "apikey",
    "api_key",
    "authorization",
    "password",
    "passwd",
    "secret",
    "private_key",
    "credential",
)
_SECRET_KEY_PARTS: Final = frozenset({"token", "auth", "cookie", "bearer", "pwd", "key"})
_NON_ALNUM: Final = re.compile(r"[^a-z0-9]+")


@functools.lru_cache(maxsize=4096)  # the same few keys come back in every event
def is_secret_key(key: str) -> bool:
    """Whether a value named ``key`` (a dict key, a ``NAME=value`` name) is a secret:
    ``api_key``, ``OPENAI_API_KEY``, ``Authorization``, ``access_token``, ``client_secret``...
    but not ``max_tokens`` or ``key_count``."""
    norm = _NON_ALNUM.sub("_", key.lower()).strip("_")
    if any(word in norm for word in _SECRET_KEY_WORDS):
        return True
    parts = norm.split("_")
    # "x-api-key", "access_token", "auth" are secrets; "max_tokens", "key_count" are not.
    return parts[-1] in _SECRET_KEY_PARTS or (len(parts) == 1 and parts[0] in _SECRET_KEY_PARTS)


# In free text: sk-... keys, Bearer tokens, and NAME=value / NAME: value / "NAME": "value"
# pairs whose name is a secret's (OPENAI_API_KEY=..., "api_key": "...", token: ...). A name
# starts after any non-identifier character (so after "export " or a quote, but never inside
# "monkey"); "_" and "-" belong to the name, so OPENAI_API_KEY is one name, judged whole by
# is_secret_key. Unquoted values need 4+ characters ("token: 100" is a count); quoted ones
# are replaced up to their closing quote, which stays, so JSON stays JSON. The name and the
# auth scheme are matched possessively, which keeps the scan linear and the result
# idempotent ("Bearer [redacted]" is never taken for a value).
_SECRET_TEXT: Final = re.compile(
    r"(?P<sk>\bsk-[A-Za-z0-9_\-]{12,})"
    r"|(?P<bearer>\bbearer\s+)[A-Za-z0-9._~+/=\-]{8,}"
    r"|(?P<pair>(?<![A-Za-z0-9_\-])"
    r"(?P<name>api\s+key(?:\s+provided)?"
    r"|(?=[A-Za-z0-9_\-]*?(?:key|token|secret|passw|pwd|auth|credential|bearer|cookie))"
    r"[A-Za-z0-9_\-]++)"
    r"(?:\\?[\"'])?\s*+[=:]\s*+"
    r"(?>(?:(?:bearer|basic|token)\s+)?)"
    r"(?P<open>\\?[\"'])?)"
    r"(?P<value>(?(open)[^\"'\\\n]+|(?!(?:null|true|false|none)(?![^\s,;&\"'\[\]{}<>\\]))"
    r"[^\s,;&\"'\[\]{}<>\\]{4,}))",
    re.IGNORECASE,
)
_TEXT_TRIGGERS: Final = ("sk-", "bearer", "key", "passw", "pwd", "secret", "token", "auth")


def _replace(match: re.Match[str]) -> str:
    pair = match.group("pair")
    if pair is None:
        return (match.group("bearer") or "") + REDACTED
    if is_secret_key(match.group("name")):
        return pair + REDACTED
    # Not a secret's name ("monkey: ..."): its value may still hold one.
    return pair + _SECRET_TEXT.sub(_replace, match.group("value"))


def redact_text(text: str, secret: str | None = None) -> str:
    """``text`` with every secret in it replaced by :data:`REDACTED`.

    :param secret: a secret known to the caller (the configured API key), replaced wherever
        it appears, whatever its shape.
    """
    if secret and secret in text:
        text = text.replace(secret, REDACTED)
    lowered = text.lower()
    for trigger in _TEXT_TRIGGERS:
        if trigger in lowered:
            return _SECRET_TEXT.sub(_replace, text)
    return text


_PLAIN: Final = frozenset({int, float, bool, type(None)})


def redact(obj: Any, secret: str | None = None) -> Any:
    """``obj`` with every secret replaced by :data:`REDACTED`.

    Values under secret-looking keys (``api_key``, ``Authorization``, ``password``,
    ``access_token``, ``client_secret``, ...) are replaced whole; strings that hold an ``sk-...``
    key, a ``Bearer`` token or a ``NAME=value`` / ``"NAME": "value"`` pair with a secret's name
    (``OPENAI_API_KEY=...``, ``"api_key": "..."``) have that part replaced. Dicts, lists and
    tuples are walked (a new object is returned; the argument is not changed). Idempotent.

    :param secret: a secret known to the caller (the configured API key), replaced wherever
        it appears, whatever its shape.
    """
    kind = type(obj)
    if kind in _PLAIN:
        return obj
    if kind is str:
        return redact_text(obj, secret)
    if isinstance(obj, str):  # a str subclass (LangChain's TextAccessor): plain, then redacted
        return redact_text(str(obj), secret)
    if kind is dict or isinstance(obj, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_key(k) else redact(v, secret))
            for k, v in obj.items()
        }
    if kind is list or kind is tuple:
        return [redact(v, secret) for v in obj]
    return obj
