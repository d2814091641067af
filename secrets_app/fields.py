"""A model field whose value is sealed with `crypto` before it reaches the database."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from django.core import exceptions
from django.db import models

from . import crypto

SERIALIZED_PREFIX = "sealed:"


class SealedValue(bytes):
    """Ciphertext as stored in the database; its repr never shows the bytes."""

    def __repr__(self) -> str:
        return f"<SealedValue: {len(self)} bytes>"

    __str__ = __repr__


class EncryptedTextField(models.BinaryField):
    """Text sealed with AES-256-GCM, bound to its row through `instance.associated_data()`.

    Assign plaintext (a str); `pre_save` seals it and the instance then holds only the
    `SealedValue` (and, with `fingerprint_field`, the model's `value_fingerprint(plaintext)` in
    that field). Reading the attribute gives the ciphertext, never the value: decrypting is
    an explicit call on the model (`Secret.reveal_value`), so forms, the admin, serializers
    and templates can only ever see ciphertext. The model must define `associated_data()`.
    """

    def __init__(self, *args: Any, fingerprint_field: str = "", **kwargs: Any) -> None:
        self.fingerprint_field = fingerprint_field
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        if self.fingerprint_field:
            kwargs["fingerprint_field"] = self.fingerprint_field
        return name, path, args, kwargs

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        stored = model_instance.__dict__.get(self.attname)
        if isinstance(stored, str):
            if self.fingerprint_field:
                # The last moment the plaintext exists on the instance.
                fingerprint = model_instance.value_fingerprint(stored)
                model_instance.__dict__[self.fingerprint_field] = fingerprint
            stored = SealedValue(crypto.seal(stored, model_instance.associated_data()))
            model_instance.__dict__[self.attname] = stored
        return stored

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if isinstance(value, str):
            raise TypeError("Refusing to write an unsealed value to the database.")
        return super().get_db_prep_value(value, connection, prepared)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> SealedValue | None:
        return None if value is None else SealedValue(bytes(value))

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith(SERIALIZED_PREFIX):
            try:
                return SealedValue(base64.b64decode(value[len(SERIALIZED_PREFIX) :], validate=True))
            except binascii.Error:
                raise exceptions.ValidationError("Malformed sealed value.", code="invalid") from None
        if isinstance(value, (bytes, memoryview)) and not isinstance(value, SealedValue):
            return SealedValue(bytes(value))
        return value

    def value_to_string(self, obj: models.Model) -> str:
        stored = self.value_from_object(obj)
        if not isinstance(stored, SealedValue):
            raise TypeError("Refusing to serialize an unsealed value.")
        return SERIALIZED_PREFIX + base64.b64encode(stored).decode("ascii")


class _DerivedFromSealedField(models.CharField):
    """A column derived from `sealed_field` as that field seals its value on a write."""

    def __init__(self, *args: Any, sealed_field: str = "value", **kwargs: Any) -> None:
        self.sealed_field = sealed_field
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        kwargs["sealed_field"] = self.sealed_field
        return name, path, args, kwargs

    def seal(self, model_instance: models.Model, add: bool) -> Any:
        """The sealed bytes. Sealing is idempotent: whichever field is saved first, the value field
        seals once (setting the fingerprint as it does) and then hands back the same bytes."""
        return model_instance._meta.get_field(self.sealed_field).pre_save(model_instance, add)


class SealingKeyIdField(_DerivedFromSealedField):
    """The id of the key that sealed `sealed_field`, copied out of its header on every write.

    Key rotation finds the rows still sealed under an older key through this indexed column
    instead of opening every row. It cannot disagree with the header: it is derived from the
    sealed bytes as they are written, and only `SecretQuerySet.reseal` writes both together.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 32)
        super().__init__(*args, **kwargs)

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        key_id = crypto.sealed_key_id(self.seal(model_instance, add))
        setattr(model_instance, self.attname, key_id)
        return key_id


class SealedValueFingerprintField(_DerivedFromSealedField):
    """The keyed fingerprint of `sealed_field`'s plaintext, set as that field seals it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 64)
        super().__init__(*args, **kwargs)

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        self.seal(model_instance, add)
        return getattr(model_instance, self.attname)
