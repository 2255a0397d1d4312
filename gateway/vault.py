"""Secrets the gateway must keep at rest, sealed with AES-256-GCM before they reach the store.

A provider may hand the gateway a secret only once (Mastercard's consent-notification signing key cannot be fetched
again), so it must be stored, and stored so that a copy of the database alone reveals nothing. The key comes from
`security.encryption_key`; each value is sealed with a fresh 96-bit nonce and bound to its (provider, name) as
associated data, so a sealed value copied to another name does not open.
"""
from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.exceptions import InvalidTag

from gateway.models.time import utcnow
from gateway.secrets import Secret
from gateway.store.base import Store

_VERSION = b"\x01"


class VaultError(Exception):
    """A sealed value could not be opened (wrong key, or tampered with)."""


class Vault:
    def __init__(self, store: Store, key: Secret) -> None:
        self._store = store
        material = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"gateway-vault-v1", info=b"aes-256-gcm")
        self._aead = AESGCM(material.derive(key.reveal().encode()))

    def seal(self, provider: str, name: str, plaintext: str) -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext.encode(), _aad(provider, name))

    def open(self, provider: str, name: str, sealed: bytes) -> str:
        if not sealed.startswith(_VERSION) or len(sealed) < 1 + 12 + 16:
            raise VaultError(f"the stored {name} of {provider} is not a sealed value")
        try:
            return self._aead.decrypt(sealed[1:13], sealed[13:], _aad(provider, name)).decode()
        except InvalidTag:
            raise VaultError(f"the stored {name} of {provider} does not open with the configured encryption_key") \
                from None

    async def put(self, provider: str, name: str, value: Secret) -> None:
        await self._store.put_secret(provider, name, self.seal(provider, name, value.reveal()), utcnow())

    async def delete(self, provider: str, name: str) -> None:
        await self._store.delete_secret(provider, name)

    async def get(self, provider: str, name: str) -> Secret | None:
        sealed = await self._store.get_secret(provider, name)
        if sealed is None:
            return None
        return Secret(self.open(provider, name, sealed), transient=True)


def _aad(provider: str, name: str) -> bytes:
    return f"{provider}\x00{name}".encode()
