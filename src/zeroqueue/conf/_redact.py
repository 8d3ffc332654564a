"""Which config values an error must not quote: secrets, known by their key or their look.

go-zero's own configs name secrets in several ways (``redis.RedisConf.Pass``, a
MySQL ``DataSource`` DSN ``user:password@tcp(host)/db``, ``AccessSecret``,
``ApiKey``), so a value is kept out of an error message when its key names a
secret, or when it looks like it holds one wherever it sits: a DSN or URL with a
password in it, or a mapping or list holding such a key or value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from zeroqueue.conf._keys import canonical

__all__ = ["holds_secret", "names_secret"]

# Keys holding one of these (in canonical spelling) name a secret.
# Headers too (Telemetry's OtlpHeaders): they carry Authorization and API keys.
_SECRET_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "credential",
    "authorization",
    "headers",
)
# Keys ending so do too: Pass, RedisPass; ApiKey, AccessKey, PrivateKey, Key. Not
# Keys (a list of names), KeyFile (a path), KeyPrefix.
_SECRET_ENDINGS = ("pass", "key")
# user:password@ in a DSN (root:pw@tcp(db:3306)/app) or a URL (redis://:pw@host).
_USERINFO = re.compile(r"[^\s/@:]*:[^\s@]*@")
# password=... (or password: ...) in a key=value DSN (libpq's, ODBC's Pwd=) or a URL's query.
_ASSIGNED = re.compile(
    r"(?:password|passwd|pwd|pass|secret|token|api_?key|access_?key|authorization)\s*[=:]",
    re.IGNORECASE,
)
# An HTTP credential wherever it sits: Authorization=Bearer abc, "Basic dXNlcjpwdw==".
_SCHEME = re.compile(r"\b(?:bearer|basic)\s+\S", re.IGNORECASE)


def names_secret(key: str) -> bool:
    """Whether the value under ``key`` is a secret (a password, a token, an API key)."""
    spelled = canonical(key)
    return any(word in spelled for word in _SECRET_WORDS) or spelled.endswith(_SECRET_ENDINGS)


def holds_secret(value: Any) -> bool:
    """Whether ``value`` looks like it holds a secret, whatever key it sits under."""
    if isinstance(value, str):
        return bool(_USERINFO.search(value) or _ASSIGNED.search(value) or _SCHEME.search(value))
    if isinstance(value, Mapping):
        return any(
            (isinstance(key, str) and names_secret(key)) or holds_secret(key) or holds_secret(item)
            for key, item in value.items()
        )
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(holds_secret(item) for item in value)
    return False
