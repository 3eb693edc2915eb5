"""Key-file helpers shared by the protocol and identity tests: the passphrase, the
fastest Argon2id limits libsodium allows (recorded in every file they seal, so the
suite stays fast; the defaults run only in bench/bench_unlock.py), and a spy that fails
a test if Argon2id runs."""

from __future__ import annotations

import os

import pytest
from nacl.pwhash import argon2id

from o2m_pub.protocol.keyfile import Identity, seal_identity

FAST = {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN}
PW = b"correct horse battery staple"


def seal_fast(identity: Identity, passphrase: bytes = PW) -> bytes:
    """`identity` sealed under `passphrase` with fresh randomness and the fast limits."""
    return seal_identity(identity, passphrase, salt=os.urandom(16), nonce=os.urandom(24),
                         **FAST)


def no_kdf(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Make any Argon2id run fail the test, and record attempts."""
    calls: list[tuple] = []

    def spy(*args: object, **kwargs: object) -> bytes:
        calls.append((args, kwargs))
        raise AssertionError("Argon2id ran on a header that should have been refused")

    monkeypatch.setattr(argon2id, "kdf", spy)
    return calls
