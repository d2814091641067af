"""AES-256-GCM sealing of secret values: the only module that encrypts or decrypts one.

Stored bytes, in the manner of Vault's storage barrier::

    version (1 byte) | key id length (1 byte) | key id (ASCII) | nonce (12 bytes) | ciphertext + tag

The header (version and key id) and the caller's associated data (the row's identity) are
both authenticated, so a sealed value copied into another row, or altered in any byte, fails
to open with one generic error instead of yielding a wrong value. The plaintext is the value's
UTF-8 bytes; nothing is ever pickled.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

FORMAT_VERSION = 1
NONCE_BYTES = 12
KEY_BYTES = 32
TAG_BYTES = 16
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
# The most a sealed value adds to its plaintext's bytes: version, key id length, key id (at most
# 32), nonce, tag. A stored value of N bytes holds at least N - MAX_SEALING_OVERHEAD of plaintext.
MAX_SEALING_OVERHEAD = 2 + 32 + NONCE_BYTES + TAG_BYTES
KEYS_VARIABLE = "SECRETS_ENCRYPTION_KEYS"
ACTIVE_KEY_VARIABLE = "SECRETS_ENCRYPTION_ACTIVE_KEY"
AUDIT_KEY_VARIABLE = "AUDIT_HMAC_KEY"
FINGERPRINT_KEY_VARIABLE = "SECRETS_FINGERPRINT_KEY"


class DecryptionFailed(Exception):
    """A stored value could not be opened; deliberately says nothing about why."""

    def __init__(self) -> None:
        super().__init__("The stored value could not be decrypted (wrong key, wrong row or altered data).")


@dataclass(frozen=True)
class KeyRing:
    """Encryption keys by id, and the id new values are sealed with."""

    keys: Mapping[str, bytes]
    active_key_id: str
    _ciphers: dict[str, AESGCM] = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:
        return f"KeyRing(key_ids={sorted(self.keys)}, active_key_id={self.active_key_id!r})"

    @classmethod
    def parse(cls, spec: str, active_key_id: str = "") -> KeyRing:
        """Parse "id:base64key,id:base64key"; the active key defaults to the first listed."""
        keys: dict[str, bytes] = {}
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            key_id, separator, encoded = item.partition(":")
            key_id = key_id.strip()
            if not separator or not KEY_ID_PATTERN.match(key_id):
                raise ImproperlyConfigured(
                    f"{KEYS_VARIABLE}: each entry must be 'id:base64key' with an id of 1-32 letters, "
                    "digits, '_', '-' or '.'"
                )
            if key_id in keys:
                raise ImproperlyConfigured(f"{KEYS_VARIABLE}: key id {key_id!r} is listed twice")
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except binascii.Error:
                key = b""
            if len(key) != KEY_BYTES:
                raise ImproperlyConfigured(f"{KEYS_VARIABLE}: key {key_id!r} must be the base64 of exactly 32 bytes")
            keys[key_id] = key
        if not keys:
            raise ImproperlyConfigured(f"{KEYS_VARIABLE} holds no key; generate one with `make .env`")
        active = active_key_id.strip() or next(iter(keys))
        if active not in keys:
            raise ImproperlyConfigured(f"{ACTIVE_KEY_VARIABLE} is not one of the key ids in {KEYS_VARIABLE}")
        return cls(keys=keys, active_key_id=active)

    def cipher(self, key_id: str) -> AESGCM:
        if key_id not in self._ciphers:
            self._ciphers[key_id] = AESGCM(self.keys[key_id])
        return self._ciphers[key_id]


@functools.cache
def key_ring() -> KeyRing:
    """The key ring configured in settings, parsed once per process."""
    return KeyRing.parse(settings.SECRETS_ENCRYPTION_KEYS, settings.SECRETS_ENCRYPTION_ACTIVE_KEY)


@functools.cache
def _audit_key() -> bytes:
    return settings.AUDIT_HMAC_KEY.encode("utf-8")


@functools.cache
def _fingerprint_key() -> bytes:
    return settings.SECRETS_FINGERPRINT_KEY.encode("utf-8")


@receiver(setting_changed)
def _forget_keys(*, setting: str, **kwargs: object) -> None:
    if setting in (KEYS_VARIABLE, ACTIVE_KEY_VARIABLE):
        key_ring.cache_clear()
    if setting == AUDIT_KEY_VARIABLE:
        _audit_key.cache_clear()
    if setting == FINGERPRINT_KEY_VARIABLE:
        _fingerprint_key.cache_clear()


def value_fingerprint(plaintext: str, *, workspace_id: int) -> str:
    """A keyed hash (HMAC-SHA256, hex) of a value, for "does this workspace hold this value?".

    Keyed by SECRETS_FINGERPRINT_KEY (never the encryption key ring): without that key a stolen
    database cannot test guesses against fingerprints, as it could against a bare hash. The
    workspace is part of the input, so the same value in two workspaces has two unrelated
    fingerprints: they cannot be compared across workspaces, even by reading the table.
    """
    message = f"value-fingerprint\n{workspace_id}\n".encode() + plaintext.encode("utf-8")
    return hmac.new(_fingerprint_key(), message, hashlib.sha256).hexdigest()


def audit_mac(previous_mac: str, content: bytes) -> str:
    """HMAC-SHA256 (hex) of an audit event's content chained to the previous event's MAC.

    Keyed by AUDIT_HMAC_KEY, which is neither the encryption key ring nor SECRET_KEY: whoever
    can write the database but not read the servers' environment cannot forge a link.
    """
    return hmac.new(_audit_key(), previous_mac.encode("ascii") + b"\n" + content, hashlib.sha256).hexdigest()


def macs_equal(first: str, second: str) -> bool:
    return hmac.compare_digest(first.encode("ascii"), second.encode("ascii"))


def secret_associated_data(*, workspace_id: int, secret_id: object, key: str) -> bytes:
    """The identity a secret's ciphertext is bound to: its workspace, its id and its key."""
    return json.dumps(["secret", workspace_id, str(secret_id), key], separators=(",", ":")).encode()


def _header(key_id: str) -> bytes:
    encoded_id = key_id.encode("ascii")
    return bytes([FORMAT_VERSION, len(encoded_id)]) + encoded_id


def seal(plaintext: str, associated_data: bytes, *, ring: KeyRing | None = None) -> bytes:
    """Encrypt `plaintext` under the active key, bound to `associated_data`."""
    ring = ring or key_ring()
    header = _header(ring.active_key_id)
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = ring.cipher(ring.active_key_id).encrypt(nonce, plaintext.encode("utf-8"), header + associated_data)
    return header + nonce + ciphertext


def _split(sealed: bytes) -> tuple[bytes, str, bytes, bytes]:
    """Header, key id, nonce and ciphertext of a sealed value, or DecryptionFailed."""
    if len(sealed) < 2 or sealed[0] != FORMAT_VERSION:
        raise DecryptionFailed()
    id_length = sealed[1]
    header_length = 2 + id_length
    if id_length == 0 or len(sealed) < header_length + NONCE_BYTES + TAG_BYTES:
        raise DecryptionFailed()
    try:
        key_id = sealed[2:header_length].decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionFailed() from None
    nonce = sealed[header_length : header_length + NONCE_BYTES]
    return sealed[:header_length], key_id, nonce, sealed[header_length + NONCE_BYTES :]


def sealed_key_id(sealed: bytes) -> str:
    """The id of the key a sealed value was encrypted with."""
    return _split(bytes(sealed))[1]


def unseal(sealed: bytes, associated_data: bytes, *, ring: KeyRing | None = None) -> str:
    """Decrypt a sealed value bound to `associated_data`; any mismatch is DecryptionFailed."""
    ring = ring or key_ring()
    header, key_id, nonce, ciphertext = _split(bytes(sealed))
    if key_id not in ring.keys:
        raise DecryptionFailed()
    try:
        plaintext = ring.cipher(key_id).decrypt(nonce, ciphertext, header + associated_data)
        return plaintext.decode("utf-8")
    except (InvalidTag, UnicodeDecodeError):
        raise DecryptionFailed() from None


# What a TOTP authenticator's secret is sealed bound to (identity.MFAAdapter): it cannot be passed
# off as a secret's value, nor the other way round.
TOTP_ASSOCIATED_DATA = b"secrets-console/mfa-authenticator"


def seal_text(plaintext: str, associated_data: bytes) -> str:
    """`seal`, as URL-safe base64 text, for a value kept in a text or JSON column."""
    return base64.urlsafe_b64encode(seal(plaintext, associated_data)).decode("ascii")


def unseal_text(sealed_text: str, associated_data: bytes) -> str:
    """Open what `seal_text` made; anything else is DecryptionFailed."""
    try:
        sealed = base64.urlsafe_b64decode(sealed_text.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise DecryptionFailed() from None
    return unseal(sealed, associated_data)


def reseal(sealed: bytes, associated_data: bytes, *, ring: KeyRing | None = None) -> bytes:
    """The same plaintext sealed again under the active key, for key rotation.

    The plaintext never leaves this function; the new bytes are checked to open to it before
    they are handed back, so a rotation can never write a value it could not read again.
    """
    ring = ring or key_ring()
    plaintext = unseal(sealed, associated_data, ring=ring)
    resealed = seal(plaintext, associated_data, ring=ring)
    if unseal(resealed, associated_data, ring=ring) != plaintext:
        raise DecryptionFailed()
    return resealed


# Sealed tokens: a plaintext that makes a round trip through a browser and comes back unread


class TokenExpired(Exception):
    """A sealed token opened, but it is older than its caller accepts."""


TOKEN_CLOCK_SKEW_SECONDS = 60
_TOKEN_FORMAT = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]+={0,2})")


def _token_associated_data(issued_at: int, associated_data: bytes) -> bytes:
    return json.dumps(["token", issued_at], separators=(",", ":")).encode() + b"\n" + associated_data


def seal_token(plaintext: str, associated_data: bytes, *, now: float | None = None) -> str:
    """`plaintext` sealed under the active key, bound to `associated_data` and to the time of
    sealing, as URL-safe text: `<unix time>.<base64 of the sealed bytes>`."""
    issued_at = int(time.time() if now is None else now)
    sealed = seal(plaintext, _token_associated_data(issued_at, associated_data))
    return f"{issued_at}.{base64.urlsafe_b64encode(sealed).decode('ascii')}"


def unseal_token(token: str, associated_data: bytes, *, max_age_seconds: int, now: float | None = None) -> str:
    """The plaintext of a `seal_token` token bound to the same associated data. DecryptionFailed if
    it was altered or bound to anything else (its time included); TokenExpired if it is older than
    `max_age_seconds` (or from the future)."""
    match = _TOKEN_FORMAT.fullmatch(token)
    if match is None:
        raise DecryptionFailed()
    issued_at = int(match[1])
    try:
        sealed = base64.urlsafe_b64decode(match[2])
    except (binascii.Error, ValueError):
        raise DecryptionFailed() from None
    plaintext = unseal(sealed, _token_associated_data(issued_at, associated_data))
    age = (time.time() if now is None else now) - issued_at
    if not -TOKEN_CLOCK_SKEW_SECONDS <= age <= max_age_seconds:
        raise TokenExpired()
    return plaintext


def pending_import_associated_data(*, user_id: int, workspace_id: int) -> bytes:
    """The identity a pending .env import is bound to: who previewed it, and into which workspace."""
    return json.dumps(["dotenv-import", user_id, workspace_id], separators=(",", ":")).encode()
