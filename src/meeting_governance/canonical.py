"""The one canonical JSON encoding: what the audit chain hashes and what receipts and audit
checkpoints sign.

Rules: object keys sorted by code point, no whitespace (`,` and `:` only), strings as UTF-8
with only `"`, `\\` and control characters escaped, integers in decimal, no NaN or infinity.
For documents made of strings, integers, booleans and null (all we sign) this is the same
byte string as RFC 8785 (JCS), so other tools can reproduce it.
"""

from __future__ import annotations

import json
from typing import Any


def canonical(value: Any) -> str:
    """The canonical encoding as text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def canonical_bytes(value: Any) -> bytes:
    """The canonical encoding as the UTF-8 bytes that are hashed or signed."""
    return canonical(value).encode("utf-8")
