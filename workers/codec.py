"""Payload encryption: what a customer says never reaches the Temporal server in plaintext.

Every payload (workflow inputs, signals, updates, activity arguments and results, query
answers, memos, failures' details) is sealed with AES-256-GCM before it leaves the process
and opened when it comes back. The Temporal server, its database and its backups only ever
hold ciphertext. Workflow ids, search attributes and summaries are not payloads: those stay
free of personal data by design (workflows/privacy.py).

- The key id travels in each payload's metadata, so keys rotate: new payloads are sealed
  with the primary key, old ones open with whichever key sealed them.
- Keys come from a `KeyProvider`. The one here reads them from the environment or a file
  (`TICKETFLOW_CODEC__KEYS`, `TICKETFLOW_CODEC__KEYS_FILE`); a KMS or Vault provider
  implements the same two calls and nothing else changes.
- Payloads written before encryption (no `binary/encrypted` encoding) pass through as they
  are, so old histories still decode and replay.
- `data_converter(...)` is the one place every client, worker, replayer and test gets its
  converter from.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import temporalio.api.common.v1
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, Field, SecretStr
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from api.settings import ConfigurationError

ENCODING = b"binary/encrypted"
CIPHER = b"AES256-GCM"
META_ENCODING = "encoding"
META_KEY_ID = "encryption-key-id"
META_CIPHER = "encryption-cipher"
NONCE_BYTES = 12
KEY_BYTES = 32


class CodecError(Exception):
    """A payload that cannot be opened: unknown key, or tampered or truncated ciphertext."""


class KeyProvider(Protocol):
    """Where data keys come from, shaped like a KMS: one key to seal with, any key by id to
    open with. Implementations may call a network service; the codec caches what they give."""

    async def primary_key_id(self) -> str: ...

    async def key(self, key_id: str) -> bytes | None:
        """The key with this id, or None if this provider never had it."""
        ...


@dataclass(frozen=True)
class StaticKeys:
    """Keys held in memory, read from the environment or a file."""

    keys: Mapping[str, bytes]
    primary: str

    def __post_init__(self) -> None:
        if self.primary not in self.keys:
            raise ConfigurationError(
                f"codec: the primary key {self.primary!r} is not among the keys"
            )
        for key_id, key in self.keys.items():
            if len(key) != KEY_BYTES:
                raise ConfigurationError(
                    f"codec: key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES}"
                )

    async def primary_key_id(self) -> str:
        return self.primary

    async def key(self, key_id: str) -> bytes | None:
        return self.keys.get(key_id)

    def without(self, key_id: str) -> StaticKeys:
        """These keys less one (tests: a reader that lacks the key)."""
        remaining = {k: v for k, v in self.keys.items() if k != key_id}
        return replace(self, keys=remaining, primary=next(iter(remaining), ""))


def new_key() -> str:
    """A fresh 256-bit key as configuration holds it (base64)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


class EncryptionCodec(PayloadCodec):
    def __init__(self, provider: KeyProvider) -> None:
        self._provider = provider
        self._ciphers: dict[str, AESGCM] = {}

    async def _cipher(self, key_id: str) -> AESGCM:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            key = await self._provider.key(key_id)
            if key is None:
                raise CodecError(f"payload sealed with key {key_id!r}, which this process lacks")
            cipher = self._ciphers[key_id] = AESGCM(key)
        return cipher

    async def encode(
        self, payloads: Sequence[temporalio.api.common.v1.Payload]
    ) -> list[temporalio.api.common.v1.Payload]:
        key_id = await self._provider.primary_key_id()
        cipher = await self._cipher(key_id)
        sealed = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            # The key id is authenticated too: a payload relabelled to another key fails.
            ciphertext = cipher.encrypt(nonce, payload.SerializeToString(), key_id.encode())
            sealed.append(
                temporalio.api.common.v1.Payload(
                    metadata={
                        META_ENCODING: ENCODING,
                        META_KEY_ID: key_id.encode(),
                        META_CIPHER: CIPHER,
                    },
                    data=nonce + ciphertext,
                )
            )
        return sealed

    async def decode(
        self, payloads: Sequence[temporalio.api.common.v1.Payload]
    ) -> list[temporalio.api.common.v1.Payload]:
        opened = []
        for payload in payloads:
            if payload.metadata.get(META_ENCODING) != ENCODING:
                opened.append(payload)  # written before encryption: plaintext as it was
                continue
            try:
                key_id = payload.metadata.get(META_KEY_ID, b"").decode()
            except UnicodeDecodeError:
                raise CodecError("payload names a key id that is not text") from None
            cipher = await self._cipher(key_id)
            nonce, ciphertext = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
            try:
                plaintext = cipher.decrypt(nonce, ciphertext, key_id.encode())
            except (InvalidTag, ValueError):  # ValueError: shorter than the tag
                raise CodecError(
                    f"payload sealed with key {key_id!r} fails authentication"
                ) from None
            inner = temporalio.api.common.v1.Payload()
            inner.ParseFromString(plaintext)
            opened.append(inner)
        return opened


class PlaintextCodec(PayloadCodec):
    """A process told to run without keys: it writes plaintext, and says what is wrong when
    it meets a sealed payload (the SDK alone would only name an unknown encoding)."""

    async def encode(
        self, payloads: Sequence[temporalio.api.common.v1.Payload]
    ) -> list[temporalio.api.common.v1.Payload]:
        return list(payloads)

    async def decode(
        self, payloads: Sequence[temporalio.api.common.v1.Payload]
    ) -> list[temporalio.api.common.v1.Payload]:
        for payload in payloads:
            if payload.metadata.get(META_ENCODING) == ENCODING:
                key_id = payload.metadata.get(META_KEY_ID, b"").decode(errors="replace")
                raise CodecError(
                    f"payload sealed with key {key_id!r}, but this process runs without keys "
                    "(TICKETFLOW_CODEC__PLAINTEXT=true): give it the keys the workers use "
                    "(TICKETFLOW_CODEC__KEYS_FILE), or run it from the `make dev` checkout"
                )
        return list(payloads)


def data_converter(keys: KeyProvider | None) -> DataConverter:
    """Pydantic payloads, sealed with `keys` (or plaintext when None)."""
    if keys is None:
        return replace(pydantic_data_converter, payload_codec=PlaintextCodec())
    return DataConverter(
        payload_converter_class=pydantic_data_converter.payload_converter_class,
        payload_codec=EncryptionCodec(keys),
        # Failure messages and stack traces move into an encoded payload too: an
        # exception's text may quote what a customer wrote.
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


# ---------------------------------------------------------------- configuration


class CodecServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8089, ge=1, le=65535)
    # Origins of the Temporal UI pages allowed to call it from a browser.
    cors_origins: list[str] = Field(
        default_factory=lambda: ["http://localhost:8233", "http://127.0.0.1:8233"]
    )


class CodecSettings(BaseModel):
    """`TICKETFLOW_CODEC__*`. Keys are base64 of 32 random bytes (`ticketflow codec new-key`).

    e.g. TICKETFLOW_CODEC__KEYS='{"2026-11": "…", "2026-05": "…"}' and
    TICKETFLOW_CODEC__PRIMARY=2026-11; or a JSON file of the same shape,
    `{"primary": "2026-11", "keys": {...}}`, named by TICKETFLOW_CODEC__KEYS_FILE.
    """

    keys: dict[str, SecretStr] = Field(default_factory=dict)
    primary: str | None = None
    keys_file: Path | None = None
    # Outside `make dev`, a process without keys refuses to start unless this says
    # plaintext payloads are meant (a throwaway local cluster).
    plaintext: bool = False
    server: CodecServerSettings = Field(default_factory=CodecServerSettings)

    def provider(self) -> StaticKeys | None:
        """The configured keys, or None if none are configured."""
        encoded = {key_id: secret.get_secret_value() for key_id, secret in self.keys.items()}
        primary = self.primary
        if self.keys_file is not None:
            stored = read_keys_file(self.keys_file)
            encoded = {**stored.keys, **encoded}
            primary = primary or stored.primary
        if not encoded:
            return None
        if primary is None:
            if len(encoded) > 1:
                raise ConfigurationError(
                    "codec: several keys but no TICKETFLOW_CODEC__PRIMARY to seal new payloads with"
                )
            primary = next(iter(encoded))
        return StaticKeys(
            {key_id: _decode_key(key_id, text) for key_id, text in encoded.items()}, primary
        )


class KeysFile(BaseModel):
    primary: str | None = None
    keys: dict[str, str]


def read_keys_file(path: Path) -> KeysFile:
    try:
        return KeysFile.model_validate_json(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigurationError(f"codec keys file {path}: {error.strerror or error}") from None
    except ValueError:
        raise ConfigurationError(
            f'codec keys file {path}: expected {{"primary": "<id>", "keys": {{"<id>": "<base64>"}}}}'
        ) from None


def _decode_key(key_id: str, text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"codec: key {key_id!r} is not base64") from None


DEV_KEYS_FILE = "codec-keys.json"


def dev_keys(data_dir: Path) -> StaticKeys:
    """`make dev`'s key, made once per data directory (mode 0600); `make clean` forgets it
    together with the histories it sealed."""
    path = data_dir / DEV_KEYS_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        key_id = "dev-1"
        text = json.dumps({"primary": key_id, "keys": {key_id: new_key()}})
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
    provider = CodecSettings(keys_file=path).provider()
    assert provider is not None
    return provider
