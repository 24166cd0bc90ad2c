"""Signatures of the Standard Webhooks spec (standardwebhooks.com), for what we send and receive.

A message is signed as ``base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))`` and carried in
three headers: ``webhook-id`` (the same on every retry, so receivers drop duplicates),
``webhook-timestamp`` (Unix seconds) and ``webhook-signature`` (``v1,<signature>``, several
separated by spaces while a secret is rotated). The secret is ``whsec_`` + base64 of the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

PREFIX = "whsec_"
TOLERANCE_S = 300
"""A timestamp further than this from now is refused (a replayed old message)."""


class SignatureRefused(Exception):
    """The message is not signed with the secret, or not recently; one sentence, no secret in it."""


def new_secret() -> str:
    """A fresh secret: ``whsec_`` + base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def key_of(secret: str) -> bytes:
    """The HMAC key of a secret: the base64 after ``whsec_``, else the text itself (a secret set by
    a user who gave a plain passphrase)."""
    if secret.startswith(PREFIX):
        try:
            return base64.b64decode(secret[len(PREFIX) :], validate=True)
        except binascii.Error:
            pass
    return secret.encode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value of a message."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key_of(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, message_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The three headers that sign ``body``."""
    timestamp = int(time.time() if now is None else now)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


def verify(secret: str, received: Mapping[str, str], body: bytes, now: float | None = None) -> str:
    """The message id of a correctly signed, recent message; raises :class:`SignatureRefused`.

    ``received`` is the request's headers (looked up in lower case). Signatures are compared in
    constant time (``hmac.compare_digest``).
    """
    message_id = received.get("webhook-id", "")
    stamp = received.get("webhook-timestamp", "")
    offered = received.get("webhook-signature", "")
    if not message_id or not stamp or not offered:
        raise SignatureRefused("The request is not signed (webhook-id, webhook-timestamp and webhook-signature).")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise SignatureRefused("The webhook-timestamp header is not a number of seconds.") from None
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_S:
        raise SignatureRefused("The webhook-timestamp is more than 5 minutes from now.")
    expected = sign(secret, message_id, timestamp, body).encode()
    matched = False
    for candidate in offered.split():
        # Every candidate is compared (no early exit) so timing says nothing about which matched.
        matched |= hmac.compare_digest(candidate.encode(), expected)
    if not matched:
        raise SignatureRefused("The webhook-signature does not match the body and the project's secret.")
    return message_id
