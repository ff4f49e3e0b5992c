"""Payload encoding: one JSON encoder and one cached decoder per type, reused on every message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from bus.errors import MalformedPayload

__all__ = ["Codec", "malformed"]

T = TypeVar("T")


class Codec:
    """Encodes structs to JSON bytes and decodes bytes into a requested type.

    ``encode(obj)`` encodes a struct, or any msgspec-supported value, as JSON.
    Building a msgspec decoder compiles a validator for its type, so decoders are
    built once per type and kept. Unknown fields are ignored (schema evolution);
    missing required fields, wrong types and invalid values raise
    :class:`~bus.errors.MalformedPayload`.
    """

    encode: Callable[[object], bytes]

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()
        # The encoder's own method: no Python call in between on every message.
        self.encode = self._encoder.encode
        self._decoders: dict[Any, msgspec.json.Decoder[Any]] = {}

    def decoder(self, type_: type[T]) -> msgspec.json.Decoder[T]:
        """The shared decoder for ``type_``."""
        decoder = self._decoders.get(type_)
        if decoder is None:
            decoder = self._decoders[type_] = msgspec.json.Decoder(type_)
        return decoder

    def decode(self, data: bytes | memoryview, type_: type[T]) -> T:
        """Decode ``data`` as ``type_``.

        Raises:
            MalformedPayload: the bytes are not valid JSON or do not match ``type_``.
        """
        try:
            return self.decoder(type_).decode(data)
        except msgspec.DecodeError as exc:  # ValidationError is a subclass
            raise malformed(exc, type_) from exc


def malformed(exc: msgspec.DecodeError, type_: object) -> MalformedPayload:
    """The typed error for bytes that did not decode as ``type_``."""
    return MalformedPayload(expected=getattr(type_, "__name__", repr(type_)), reason=str(exc))
