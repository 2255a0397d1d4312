"""gateway.vault: secrets sealed with AES-256-GCM, bound to (provider, name), stored sealed in a real SQLite store."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.models.time import utcnow
from gateway.secrets import Secret
from gateway.store.sqlite import SQLiteStore
from gateway.vault import Vault, VaultError

KEY = Secret("vault-unit-test-encryption-key-0123456789")
OTHER_KEY = Secret("vault-unit-test-encryption-key-9876543210")
PROVIDER, NAME = "mastercard-au", "consent_signing_key"
PLAINTEXT = "5f1b7c0e9a2d4c6b8e3f1a0d7c9b2e4f6a8c0e2d4b6f8a1c3e5d7b9f0a2c4e6d"


def _vault(key: Secret = KEY, store: Any = None) -> Vault:
    return Vault(store, key)  # seal/open never touch the store


# --- seal / open ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("plaintext", [PLAINTEXT, "", "x", "ünïcødé – 🔑", "a" * 10_000])
def test_round_trip(plaintext: str) -> None:
    vault = _vault()
    sealed = vault.seal(PROVIDER, NAME, plaintext)
    assert isinstance(sealed, bytes)
    assert vault.open(PROVIDER, NAME, sealed) == plaintext


def test_opens_with_another_vault_on_the_same_key() -> None:
    sealed = _vault().seal(PROVIDER, NAME, PLAINTEXT)
    assert _vault(Secret(KEY.reveal())).open(PROVIDER, NAME, sealed) == PLAINTEXT


def test_layout_version_nonce_ciphertext_tag() -> None:
    plaintext = "hello, vault"
    sealed = _vault().seal(PROVIDER, NAME, plaintext)
    assert sealed[:1] == b"\x01"
    assert len(sealed) == 1 + 12 + len(plaintext.encode()) + 16
    assert plaintext.encode() not in sealed


def test_a_fresh_nonce_every_time() -> None:
    vault = _vault()
    seals = [vault.seal(PROVIDER, NAME, PLAINTEXT) for _ in range(50)]
    assert len(set(seals)) == len(seals)
    assert len({s[1:13] for s in seals}) == len(seals)  # the nonces themselves differ
    assert all(vault.open(PROVIDER, NAME, s) == PLAINTEXT for s in seals)


def test_tampering_with_any_byte_fails() -> None:
    vault = _vault()
    sealed = vault.seal(PROVIDER, NAME, "short secret")
    for i in range(len(sealed)):
        for flip in (0x01, 0x80, 0xFF):
            tampered = bytearray(sealed)
            tampered[i] ^= flip
            with pytest.raises(VaultError):
                vault.open(PROVIDER, NAME, bytes(tampered))


def test_truncated_or_extended_fails() -> None:
    vault = _vault()
    sealed = vault.seal(PROVIDER, NAME, PLAINTEXT)
    for cut in (0, 1, 12, 13, 28, len(sealed) - 1):
        with pytest.raises(VaultError):
            vault.open(PROVIDER, NAME, sealed[:cut])
    with pytest.raises(VaultError):
        vault.open(PROVIDER, NAME, sealed + b"\x00")


@pytest.mark.parametrize("junk", [b"", b"\x01", b"\x02" + bytes(40), bytes(29), PLAINTEXT.encode()])
def test_not_a_sealed_value(junk: bytes) -> None:
    with pytest.raises(VaultError):
        _vault().open(PROVIDER, NAME, junk)


@pytest.mark.parametrize("provider, name", [
    (PROVIDER, "consent_subscription_id"),
    ("mastercard-us", NAME),
    ("mastercard-au\x00consent", "signing_key"),
    (PROVIDER.upper(), NAME),
    (PROVIDER, NAME + " "),
])
def test_bound_to_provider_and_name(provider: str, name: str) -> None:
    vault = _vault()
    sealed = vault.seal(PROVIDER, NAME, PLAINTEXT)
    with pytest.raises(VaultError) as caught:
        vault.open(provider, name, sealed)
    assert PLAINTEXT not in str(caught.value)


def test_another_key_fails() -> None:
    sealed = _vault().seal(PROVIDER, NAME, PLAINTEXT)
    with pytest.raises(VaultError, match="does not open with the configured encryption_key") as caught:
        _vault(OTHER_KEY).open(PROVIDER, NAME, sealed)
    assert PLAINTEXT not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


# --- through a real SQLite store ------------------------------------------------------------------------------------
@pytest.fixture
async def store(tmp_path: Path) -> Any:
    s = SQLiteStore(f"sqlite:///{tmp_path}/x.db")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def test_put_get_round_trip(store: SQLiteStore) -> None:
    vault = Vault(store, KEY)
    await vault.put(PROVIDER, NAME, Secret(PLAINTEXT))
    got = await vault.get(PROVIDER, NAME)
    assert isinstance(got, Secret) and got.reveal() == PLAINTEXT
    assert PLAINTEXT not in repr(got)


async def test_get_of_nothing_stored(store: SQLiteStore) -> None:
    vault = Vault(store, KEY)
    assert await vault.get(PROVIDER, NAME) is None
    await vault.put(PROVIDER, NAME, Secret(PLAINTEXT))
    assert await vault.get(PROVIDER, "consent_subscription_id") is None
    assert await vault.get("mastercard-us", NAME) is None


async def test_stored_bytes_are_sealed(store: SQLiteStore, tmp_path: Path) -> None:
    vault = Vault(store, KEY)
    await vault.put(PROVIDER, NAME, Secret(PLAINTEXT))
    stored = await store.get_secret(PROVIDER, NAME)
    assert stored is not None
    assert PLAINTEXT.encode() not in stored and stored[:1] == b"\x01"
    assert vault.open(PROVIDER, NAME, stored) == PLAINTEXT
    # nor anywhere in the database files (main file and write-ahead log)
    for path in tmp_path.iterdir():
        if path.name.startswith("x.db"):
            assert PLAINTEXT.encode() not in path.read_bytes(), path.name


async def test_put_replaces_and_reseals(store: SQLiteStore) -> None:
    vault = Vault(store, KEY)
    await vault.put(PROVIDER, NAME, Secret(PLAINTEXT))
    first = await store.get_secret(PROVIDER, NAME)
    await vault.put(PROVIDER, NAME, Secret(PLAINTEXT))
    second = await store.get_secret(PROVIDER, NAME)
    assert first != second  # same value, fresh nonce
    await vault.put(PROVIDER, NAME, Secret("rotated-signing-key-value"))
    assert (await vault.get(PROVIDER, NAME)).reveal() == "rotated-signing-key-value"


async def test_names_are_kept_apart(store: SQLiteStore) -> None:
    vault = Vault(store, KEY)
    await vault.put(PROVIDER, NAME, Secret("the signing key"))
    await vault.put(PROVIDER, "consent_subscription_id", Secret("the subscription id"))
    await vault.put("mastercard-us", NAME, Secret("another provider's key"))
    assert (await vault.get(PROVIDER, NAME)).reveal() == "the signing key"
    assert (await vault.get(PROVIDER, "consent_subscription_id")).reveal() == "the subscription id"
    assert (await vault.get("mastercard-us", NAME)).reveal() == "another provider's key"


async def test_a_value_copied_to_another_name_does_not_open(store: SQLiteStore) -> None:
    vault = Vault(store, KEY)
    await vault.put(PROVIDER, NAME, Secret(PLAINTEXT))
    sealed = await store.get_secret(PROVIDER, NAME)
    assert sealed is not None
    await store.put_secret(PROVIDER, "consent_subscription_id", sealed, utcnow())
    with pytest.raises(VaultError):
        await vault.get(PROVIDER, "consent_subscription_id")


async def test_another_key_on_the_same_store_fails(store: SQLiteStore) -> None:
    await Vault(store, KEY).put(PROVIDER, NAME, Secret(PLAINTEXT))
    with pytest.raises(VaultError):
        await Vault(store, OTHER_KEY).get(PROVIDER, NAME)


async def test_survives_reopening_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    first = SQLiteStore(url)
    await first.open()
    try:
        await Vault(first, KEY).put(PROVIDER, NAME, Secret(PLAINTEXT))
    finally:
        await first.close()
    second = SQLiteStore(url)
    await second.open()
    try:
        assert (await Vault(second, KEY).get(PROVIDER, NAME)).reveal() == PLAINTEXT
    finally:
        await second.close()
