"""Credentials never reach MLflow params, tags or logs: ``redact`` masks the password of a URL and secret-looking
query parameters (``postgresql://user:***@host/db``, ``s3://bucket?secret_key=***``)."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]+)@")
_SECRET_QUERY = re.compile(r"(?i)(?P<key>[?&;](?:[a-z_]*(?:password|secret|token|key)[a-z_]*)=)(?P<value>[^&;\s]+)")
MASK = "***"


def redact(text: str) -> str:
    """``text`` with the password of a URI's user and secret query values masked."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _SECRET_QUERY.sub(lambda m: f"{m['key']}{MASK}", text)
