import base64
import os

import pytest
from django.core.exceptions import ImproperlyConfigured

from secrets_app import crypto
from secrets_app.crypto import DecryptionFailed, KeyRing


def b64key(seed: bytes = b"") -> str:
    return base64.b64encode((seed * 32)[:32] if seed else os.urandom(32)).decode()


RING = KeyRing.parse(f"old:{b64key(b'a')},new:{b64key(b'b')}", "new")
AAD = crypto.secret_associated_data(workspace_id=1, secret_id="6f1c", key="API_KEY")


def test_sealed_value_round_trips_and_names_the_active_key():
    sealed = crypto.seal("hunter2\n", AAD, ring=RING)
    assert crypto.unseal(sealed, AAD, ring=RING) == "hunter2\n"
    assert crypto.sealed_key_id(sealed) == "new"


def test_sealed_layout_is_version_key_id_nonce_then_ciphertext_and_tag():
    sealed = crypto.seal("x", AAD, ring=RING)
    assert sealed[0] == crypto.FORMAT_VERSION
    assert sealed[1] == 3 and sealed[2:5] == b"new"
    assert len(sealed) == 2 + 3 + crypto.NONCE_BYTES + len(b"x") + crypto.TAG_BYTES


def test_plaintext_is_never_in_the_sealed_bytes():
    assert b"hunter2" not in crypto.seal("hunter2", AAD, ring=RING)


def test_value_sealed_under_an_older_key_still_opens():
    old_only = KeyRing.parse(f"old:{b64key(b'a')}")
    sealed = crypto.seal("v", AAD, ring=old_only)
    assert crypto.unseal(sealed, AAD, ring=RING) == "v"


def test_other_associated_data_fails_to_open():
    sealed = crypto.seal("v", AAD, ring=RING)
    other_row = crypto.secret_associated_data(workspace_id=1, secret_id="6f1c", key="OTHER")
    with pytest.raises(DecryptionFailed):
        crypto.unseal(sealed, other_row, ring=RING)


def test_unknown_key_id_fails_with_the_generic_error():
    sealed = crypto.seal("v", AAD, ring=KeyRing.parse(f"gone:{b64key()}"))
    with pytest.raises(DecryptionFailed) as raised:
        crypto.unseal(sealed, AAD, ring=RING)
    assert str(raised.value) == str(DecryptionFailed())


def test_every_flipped_byte_gives_the_same_generic_error():
    sealed = crypto.seal("a value worth protecting", AAD, ring=RING)
    for position in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[position] ^= 0x01
        with pytest.raises(DecryptionFailed) as raised:
            crypto.unseal(bytes(tampered), AAD, ring=RING)
        assert str(raised.value) == str(DecryptionFailed())


def test_truncated_or_empty_data_fails_with_the_generic_error():
    sealed = crypto.seal("v", AAD, ring=RING)
    for broken in (b"", sealed[:1], sealed[:10], sealed[:-1]):
        with pytest.raises(DecryptionFailed):
            crypto.unseal(broken, AAD, ring=RING)


def test_each_seal_uses_a_fresh_nonce():
    nonces = {crypto.seal("same", AAD, ring=RING)[5 : 5 + crypto.NONCE_BYTES] for _ in range(2000)}
    assert len(nonces) == 2000


@pytest.mark.parametrize(
    ("spec", "active", "message"),
    [
        ("", "", "holds no key"),
        ("nocolon", "", "'id:base64key'"),
        ("bad id!:AAAA", "", "'id:base64key'"),
        (f"k1:{base64.b64encode(b'short').decode()}", "", "exactly 32 bytes"),
        ("k1:not-base64!!", "", "exactly 32 bytes"),
        (f"k1:{b64key()},k1:{b64key()}", "", "listed twice"),
        (f"k1:{b64key()}", "k2", "SECRETS_ENCRYPTION_ACTIVE_KEY"),
    ],
)
def test_malformed_key_ring_is_refused_with_a_message_naming_the_problem(spec, active, message):
    with pytest.raises(ImproperlyConfigured) as raised:
        KeyRing.parse(spec, active)
    assert message in str(raised.value)


def test_active_key_defaults_to_the_first_listed():
    assert KeyRing.parse(f"first:{b64key()},second:{b64key()}").active_key_id == "first"


def test_key_ring_repr_shows_ids_but_never_key_material():
    key = b64key(b"z")
    ring = KeyRing.parse(f"only:{key}")
    assert "only" in repr(ring)
    assert key not in repr(ring) and "zzzz" not in repr(ring)
