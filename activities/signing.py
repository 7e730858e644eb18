"""HMAC-SHA256 over `<timestamp>.<body>`: how ticketflow signs what it sends and checks
what partners send it.

    X-Ticketflow-Timestamp: 1767225600            (Unix seconds, when it signed)
    X-Ticketflow-Signature: sha256=<hex>          (HMAC-SHA256(secret, f"{timestamp}.{body}"))

Deliveries (activities.delivery) carry it to every webhook; the API (api.signatures)
checks partner callbacks with it. A receiver checks the signature, that the timestamp
is fresh, and that it has not seen the `Idempotency-Key` before.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from datetime import timedelta

TIMESTAMP_HEADER = "X-Ticketflow-Timestamp"
SIGNATURE_HEADER = "X-Ticketflow-Signature"

_SIGNATURE = re.compile(r"^(?:sha256=)?([0-9a-fA-F]{64})$")


class SignatureError(ValueError):
    """A signature that is missing, malformed, stale or wrong; the message says which."""


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The signature header's value for `body` signed at `timestamp`."""
    message = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    return {TIMESTAMP_HEADER: str(stamp), SIGNATURE_HEADER: sign(secret, stamp, body)}


def check_signature(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    tolerance: timedelta,
    now: float | None = None,
) -> str:
    """The signature's hex digest if it is valid and fresh; SignatureError otherwise."""
    if not timestamp or not signature:
        raise SignatureError(f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureError(f"{TIMESTAMP_HEADER} must be Unix seconds")
    match = _SIGNATURE.match(signature.strip())
    if match is None:
        raise SignatureError(f"{SIGNATURE_HEADER} must be sha256=<64 hex digits>")
    age = (time.time() if now is None else now) - int(timestamp)
    if abs(age) > tolerance.total_seconds():
        raise SignatureError(
            f"timestamp is {abs(age):.0f} s {'old' if age > 0 else 'ahead'}; "
            f"at most {tolerance.total_seconds():.0f} s is accepted"
        )
    expected = sign(secret, timestamp, body).removeprefix("sha256=")
    given = match.group(1).lower()
    if not hmac.compare_digest(expected, given):
        raise SignatureError("signature does not match the body and timestamp")
    return given
