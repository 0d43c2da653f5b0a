"""Signed unsubscribe tokens: what an unsubscribe link carries instead of the raw id.

A campaign with ``unsubscribe: {url: "https://shop.example.com/u/{token}", secret_env:
MAILSMITH_UNSUBSCRIBE_SECRET}`` gives every recipient a token::

    <base64url(recipient id)>.<base64url(HMAC-SHA256(secret, campaign NUL recipient id))>

(no padding; both parts use only ``A-Z a-z 0-9 - _``, so the token needs no escaping in a
URL). The id is encoded, not encrypted: anyone can read it, nobody without the secret can
make a token for another id or another campaign. The endpoint that receives the link
calls :func:`verify_token` with the same secret::

    from renderer.unsubscribe import verify_token

    recipient_id = verify_token(token, os.environ["MAILSMITH_UNSUBSCRIBE_SECRET"],
                                "autumn-retail-2026")
    if recipient_id is None:
        ...  # forged, cut or from another campaign: refuse

This module imports only the standard library, so the endpoint can copy or import it
without the rest of mailsmith.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass

# a different key use than any other HMAC the same secret may sign
_DOMAIN = b"mailsmith-unsubscribe\0"
_SEPARATOR = "."


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or not all(c.isalnum() or c in "-_" for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def _mac(key: bytes, campaign: str, recipient_id: str) -> bytes:
    message = _DOMAIN + f"{campaign}\0{recipient_id}".encode()
    return hmac.new(key, message, hashlib.sha256).digest()


def sign_token(recipient_id: str, secret: str | bytes, campaign: str) -> str:
    """The token of ``recipient_id`` in ``campaign``: the id and its HMAC-SHA256."""
    mac = _mac(_key(secret), campaign, recipient_id)
    return _b64(recipient_id.encode("utf-8")) + _SEPARATOR + _b64(mac)


def verify_token(token: str, secret: str | bytes, campaign: str) -> str | None:
    """The recipient id a token was signed for, or None when the token was not made with
    ``secret`` for ``campaign`` (tampered, truncated, another campaign's, or not a token).

    The signature is compared in constant time (:func:`hmac.compare_digest`).
    """
    encoded_id, separator, encoded_mac = token.partition(_SEPARATOR)
    if not separator:
        return None
    try:
        recipient_id = _unb64(encoded_id).decode("utf-8")
        mac = _unb64(encoded_mac)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    expected = _mac(_key(secret), campaign, recipient_id)
    return recipient_id if hmac.compare_digest(mac, expected) else None


@dataclass(frozen=True)
class TokenSigner:
    """Signs a campaign's tokens with one secret (read once, before the first render)."""

    campaign: str
    key: bytes
    demo: bool = False  # signed with the campaign's demo_secret: not for a real send

    def sign(self, recipient_id: str) -> str:
        """:func:`sign_token` for this campaign and secret."""
        return (
            _b64(recipient_id.encode("utf-8"))
            + _SEPARATOR
            + _b64(_mac(self.key, self.campaign, recipient_id))
        )


def secret_from_env(name: str, demo_secret: str | None = None) -> tuple[bytes, bool] | None:
    """The secret in environment variable ``name`` (and False), else ``demo_secret``
    (and True), else None. An empty variable counts as unset."""
    value = os.environ.get(name, "")
    if value:
        return value.encode("utf-8"), False
    if demo_secret:
        return demo_secret.encode("utf-8"), True
    return None
