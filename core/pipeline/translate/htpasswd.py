"""The users of an ingress-nginx ``auth-secret``: an htpasswd file (``auth-file``, the Secret's
key ``auth``) or a map of user -> hash (``auth-map``), checked so that every backend checks the
same passwords.

Problems name the Secret, the key or line and the hash *format*; never a hash, a password or a
line's text (Secret data is never logged).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from polyingress.core.pipeline.policy import USER_NAME, hash_format

__all__ = ["SecretUsersError", "describe_format", "users_of_secret"]


class SecretUsersError(ValueError):
    """Why a Secret gives no users (a sentence without secret data)."""


_KNOWN = (
    ("$apr1$", "apr1 (Apache MD5; HAProxy cannot check it)"),
    ("{SHA}", "{SHA} (HAProxy cannot check it)"),
    ("{SSHA}", "{SSHA} (HAProxy and Traefik cannot check it)"),
    ("{PLAIN}", "{PLAIN} (HAProxy and Traefik cannot check it)"),
    ("$5$", "sha256-crypt (Traefik cannot check it)"),
    ("$6$", "sha512-crypt (Traefik cannot check it)"),
    ("$y$", "yescrypt (Traefik cannot check it)"),
    ("$2", "bcrypt, malformed"),
    ("$1$", "md5-crypt, malformed"),
)


def describe_format(digest: str) -> str:
    """A hash's format, named for a problem (the hash itself is not shown)."""
    for prefix, name in _KNOWN:
        if digest.startswith(prefix):
            return name
    if len(digest) == 13 and "$" not in digest:
        return "DES crypt (Traefik cannot check it)"
    return "not a password hash polyingress knows"


def _decoded(secret: Mapping[str, Any], key: str) -> str | None:
    string_data = secret.get("stringData") or {}
    if isinstance(string_data, Mapping) and isinstance(string_data.get(key), str):
        return str(string_data[key])
    data = secret.get("data") or {}
    raw = data.get(key) if isinstance(data, Mapping) else None
    if not isinstance(raw, str):
        return None
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise SecretUsersError(f"data[{key!r}] is not base64 of UTF-8 text") from None


def _keys(secret: Mapping[str, Any]) -> list[str]:
    keys: set[str] = set()
    for part in ("data", "stringData"):
        found = secret.get(part) or {}
        if isinstance(found, Mapping):
            keys |= {k for k in found if isinstance(k, str)}
    return sorted(keys)


def _checked(user: str, digest: str, where: str) -> tuple[str, str]:
    if not USER_NAME.fullmatch(user):
        raise SecretUsersError(f"{where}: the user name is not 1-128 of [A-Za-z0-9._@+-]")
    if hash_format(digest) is None:
        raise SecretUsersError(
            f"{where}: the password hash is {describe_format(digest)}; give bcrypt "
            "(htpasswd -B) or md5-crypt (openssl passwd -1), the hashes every backend checks"
        )
    return user, digest


def users_of_secret(secret: Mapping[str, Any], *, auth_map: bool) -> tuple[tuple[str, str], ...]:
    """(user, hash) of every user, sorted by name; SecretUsersError says why there are none."""
    pairs: list[tuple[str, str]] = []
    if auth_map:
        for i, key in enumerate(_keys(secret), start=1):
            value = _decoded(secret, key)
            pairs.append(_checked(key, (value or "").strip(), f"entry {i}"))
    else:
        text = _decoded(secret, "auth")
        if text is None:
            raise SecretUsersError("has no key 'auth' (auth-secret-type auth-file)")
        for n, raw in enumerate(text.split("\n"), start=1):
            line = raw.rstrip("\r").strip()
            if not line or line.startswith("#"):
                continue
            user, sep, rest = line.partition(":")
            if not sep:
                raise SecretUsersError(f"line {n} of 'auth' is not user:hash")
            pairs.append(_checked(user, rest.split(":", 1)[0], f"line {n} of 'auth'"))
    if not pairs:
        raise SecretUsersError("holds no user")
    seen: set[str] = set()
    for user, _digest in pairs:
        if user in seen:
            # nginx takes the first line of a name, Traefik the last: refuse the doubt.
            raise SecretUsersError("names a user twice")
        seen.add(user)
    return tuple(sorted(pairs))
