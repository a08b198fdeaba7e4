"""Secrets: API keys and tokens live in environment variables, reach a URL only at the moment of use,
and are hidden by value in every message, log line and file l2h writes.

A configured URL names a secret as ``${VARIABLE}``; command lines, manifests and logs carry that
reference, never the value. :func:`expand` substitutes the value when a request is made and
registers it, so that :func:`redact` hides it (raw and URL-encoded) wherever it surfaces later: in
a server's error message, GDAL's log, a traceback's text. :func:`redact` also hides values that
look secret by their name (``?api_key=...``, ``token=``, ``sig=``...) and passwords in
``user:password@host``, for secrets typed straight into a URL.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from urllib.parse import quote, quote_plus, urlsplit

from l2h.core.errors import ConfigError

ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MASK = "***"
_MIN_LENGTH = 4  # shorter values would mask ordinary text; no real key is that short
_SECRET_QUERY = re.compile(
    r"(?i)([?&;](?:[\w.-]*(?:key|token|secret|password|passwd|signature|credential|auth)[\w.-]*"
    r"|sig|tk)=)[^&#\s'\"]*")
_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/@:\s]+:)[^/@\s]+@")

_lock = threading.Lock()
_values: set[str] = set()


def register(value: str) -> None:
    """Hide `value` (and its URL-encoded forms) in everything :func:`redact` cleans from now on."""
    if value is None or len(value) < _MIN_LENGTH:
        return
    with _lock:
        _values.update({value, quote(value, safe=""), quote_plus(value), quote(value)})


def expand(text: str, what: str) -> str:
    """`text` with each ``${VARIABLE}`` replaced by the environment variable's value (registered as a
    secret). A variable that is not set -> ConfigError naming it and `what` (the config key)."""
    def value(match: re.Match) -> str:
        name = match[1]
        found = os.environ.get(name)
        if not found:
            raise ConfigError(f"{what}: the environment variable {name} (referenced as ${{{name}}}) is not "
                              f"set; export it before running")
        register(found)
        return found
    return ENV_REFERENCE.sub(value, text)


def redact(text: object) -> str:
    """`text` with every registered secret value, secret-named query values and URL passwords masked."""
    text = str(text)
    with _lock:
        values = sorted(_values, key=len, reverse=True)  # longest first: a value may contain another
    for secret in values:
        text = text.replace(secret, MASK)
    return _USERINFO.sub(rf"\1{MASK}@", _SECRET_QUERY.sub(rf"\1{MASK}", text))


def literal_secret(url: str) -> str | None:
    """What in `url` looks like a secret typed in literally (so it would reach command lines and
    logs), or None: a password in ``user:password@host`` or a key/token query value that is not a
    ``${VARIABLE}`` reference."""
    if _USERINFO.search(url) and not ENV_REFERENCE.search(urlsplit(url).netloc):
        return "a password in user:password@host"
    for match in _SECRET_QUERY.finditer(url):
        value = url[match.end(1):match.end()]
        if value and not ENV_REFERENCE.fullmatch(value) and "{api_key}" not in value:
            return f"the query value of {match[1].strip('?&;=')!r}"
    return None


class RedactingFilter(logging.Filter):
    """A logging filter that runs every record's final text through :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record's message (and traceback text) in place; always keep the record."""
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_text is None and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True
