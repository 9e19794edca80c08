"""Credentials out of every output: the one place that knows what a secret looks like.

`redact(value)` takes a config echo (dicts, lists, strings) or a line of text (an error message, a log
line) and replaces each secret with `<redacted:HASH>`, HASH being the first 8 hex characters of the
secret's sha256: two configs with different keys still read (and hash) differently, and no key can be
read back. What counts as a secret:
- the value of a key named in SECRET_KEYS (storage_options' access_key_id, secret_access_key,
  session tokens, Azure account keys and SAS tokens, passwords);
- in a connection string, the AccountKey, SharedAccessSignature and SharedAccessKey parts;
- in a URL, the SAS signature (`sig=`) and a password (`user:password@`);
- in text, `name=value` or `'name': 'value'` where name is one of SECRET_KEYS (an echoed mapping or
  override).
"""
from __future__ import annotations

import hashlib
import logging
import re

SECRET_KEYS = frozenset({
    "access_key_id", "secret_access_key", "session_token", "security_token", "aws_access_key_id",
    "aws_secret_access_key", "aws_session_token", "account_key", "azure_storage_key", "sas_token",
    "credential", "credentials", "password", "client_secret",
})

# A connection string or URL is kept less its secret parts: account name and endpoint still tell
# configs apart.
_NAMES = "|".join(sorted(SECRET_KEYS, key=len, reverse=True))
_PATTERNS = (
    re.compile(r"(?i)((?:AccountKey|SharedAccessSignature|SharedAccessKey)=)([^;\s'\"]+)"),
    re.compile(r"(?i)([?&]sig=)([^&\s'\"]+)"),
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:)([^@\s/'\"]+)(?=@)"),
    re.compile(rf"(?i)(\b(?:{_NAMES})['\"]?\s*[:=]\s*['\"]?)([^'\"\s,;&}}]+)"),
)


def mask(secret: str) -> str:
    """The stand-in for one secret: `<redacted:` + 8 hex of its sha256 + `>`."""
    return f"<redacted:{hashlib.sha256(str(secret).encode()).hexdigest()[:8]}>"


def redact_text(text: str) -> str:
    """`text` with every secret the patterns know replaced by its mask."""
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + (m.group(2) if m.group(2).startswith("<redacted:")
                                                   else mask(m.group(2))), text)
    return text


def redact(value, key: str | None = None):
    """A copy of `value` (plain JSON-like data or a string) with every secret masked; `key` is the
    mapping key `value` was found under."""
    name = str(key).lower() if key is not None else None
    if isinstance(value, dict):
        return {k: redact(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, key) for v in value]
    if name in SECRET_KEYS and value not in (None, ""):
        return mask(value)
    if isinstance(value, str):
        return redact_text(value)
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in each record's message (dlio.log, the console)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True
