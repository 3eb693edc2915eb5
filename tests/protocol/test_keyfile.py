"""The sealed key file and fingerprints as bytes (PROTOCOL.md §2.2–2.3): vectors, every
malformed header refused before Argon2id runs, the identity's two independent keys.

Every test seals with libsodium's minimum Argon2id limits, which the file records, so
the suite stays fast; the production defaults only run in bench/bench_unlock.py.
"""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from nacl.pwhash import argon2id
from support.keys import FAST, PW, no_kdf, seal_fast

from o2m_pub.errors import O2MError
from o2m_pub.friends.identity import new_identity
from o2m_pub.protocol import keyfile as keys
from o2m_pub.protocol.canonical import b64u_encode, canonical_json
from o2m_pub.protocol.keyfile import (
    Identity,
    KeyFileError,
    PassphraseError,
    WrongPassphraseError,
    fingerprint,
    key_file_params,
    open_identity,
    public_json,
    seal_identity,
)

VECTOR_SECRET = bytes(range(64))


VECTOR_SIGN_PK = bytes.fromhex("03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8")


VECTOR_BOX_PK = bytes.fromhex("358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254")


VECTOR_FINGERPRINT = "88831 03398 91558 10686 45431 67909"


VECTOR_PUBLIC_JSON = (b'{"box_pk":"NYBy1jZYgNGu6jKa35EhODhR7SGijjt16WXQ0s0WYlQ",'
                      b'"sign_pk":"A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg","v":1}')


VECTOR_SALT = bytes(range(0x40, 0x50))


VECTOR_NONCE = bytes(range(0x50, 0x68))


VECTOR_SEALED = bytes.fromhex(
    "6f326d2d7365637265742d76310a009d7b2261656164223a22786368616368613230706f6c7931333035"
    "2d69657466222c226b6466223a226172676f6e3269643133222c226d656d6c696d6974223a3635353336"
    "2c226e6f6e6365223a225546465355315256566c6459575670625846316558324268596d4e6b5a575a6e"
    "222c226f70736c696d6974223a322c2273616c74223a225145464351305246526b64495355704c544531"
    "4f5477227dcb63139ba2057f5e86e2f435fdcf2f099606de11426ffc32a6cc865055752155c2dda6c9fa"
    "721c251a6ca391169cca4d0b0521ca724c28f47f94c54920deef39b8850f30d79b89bac0237821c3285d"
    "80")


VECTOR_PREFIX = (
    b'o2m-secret-v1\n\x00\x9d{"aead":"xchacha20poly1305-ietf","kdf":"argon2id13",'
    b'"memlimit":65536,"nonce":"UFFSU1RVVldYWVpbXF1eX2BhYmNkZWZn","opslimit":2,'
    b'"salt":"QEFCQ0RFRkdISUpLTE1OTw"}')


FINGERPRINT_RE = re.compile(r"^\d{5}( \d{5}){5}$")


@pytest.fixture(scope="module")
def identity() -> Identity:
    return new_identity()


@pytest.fixture(scope="module")
def sealed(identity: Identity) -> bytes:
    """One small sealed file shared by the tamper tests."""
    return seal_identity(identity, PW, salt=bytes(16), nonce=bytes(24), **FAST)




def _forge(header: dict, ciphertext: bytes = bytes(80), *, raw: bytes | None = None) -> bytes:
    """A key file with any header an attacker likes (the AEAD tag is then wrong)."""
    body = canonical_json(header) if raw is None else raw
    return keys.MAGIC + len(body).to_bytes(2, "big") + body + ciphertext


def _header(**changes: object) -> dict:
    header = {"aead": "xchacha20poly1305-ietf", "kdf": "argon2id13", "memlimit": 8192,
              "nonce": b64u_encode(bytes(24)), "opslimit": 1, "salt": b64u_encode(bytes(16))}
    header.update(changes)
    return {k: v for k, v in header.items() if v is not None}








def test_vector_keys_and_fingerprint():
    """Fixed secret bytes give the documented public keys, fingerprint and public JSON."""
    ident = Identity.from_secret_bytes(VECTOR_SECRET)
    assert ident.sign_pk == VECTOR_SIGN_PK
    assert ident.box_pk == VECTOR_BOX_PK
    assert ident.fingerprint == VECTOR_FINGERPRINT
    assert fingerprint(VECTOR_SIGN_PK, VECTOR_BOX_PK) == VECTOR_FINGERPRINT
    assert public_json(ident) == VECTOR_PUBLIC_JSON
    assert ident.to_secret_bytes() == VECTOR_SECRET


def test_vector_fingerprint_of_constant_keys():
    """Fingerprints of all-zero and all-ones keys, for other implementations to check."""
    assert fingerprint(bytes(32), bytes(32)) == "08450 45476 75409 59926 29476 89013"
    assert fingerprint(b"\xff" * 32, b"\xff" * 32) == "55095 43955 63833 28423 48145 12722"


def test_vector_sealed_file_bytes():
    """Fixed secret, passphrase, salt, nonce and limits give exactly the documented file,
    and it opens back to the same keys (PROTOCOL.md §2.3 byte for byte)."""
    ident = Identity.from_secret_bytes(VECTOR_SECRET)
    data = seal_identity(ident, PW, salt=VECTOR_SALT, nonce=VECTOR_NONCE, opslimit=2,
                         memlimit=65536)
    assert data == VECTOR_SEALED
    assert data[:-80] == VECTOR_PREFIX
    assert open_identity(VECTOR_SEALED, PW).to_secret_bytes() == VECTOR_SECRET
    assert key_file_params(VECTOR_SEALED) == (2, 65536)


@settings(max_examples=25, deadline=None)
@given(secret=st.binary(min_size=64, max_size=64), passphrase=st.binary(min_size=1, max_size=200))
def test_seal_open_round_trip(secret: bytes, passphrase: bytes):
    """open(seal(x)) == x for any secret and any non-empty passphrase."""
    ident = Identity.from_secret_bytes(secret)
    data = seal_fast(ident, passphrase)
    opened = open_identity(data, passphrase)
    assert opened.to_secret_bytes() == secret
    assert opened.fingerprint == ident.fingerprint


@given(sign_pk=st.binary(min_size=32, max_size=32), box_pk=st.binary(min_size=32, max_size=32))
def test_fingerprint_format(sign_pk: bytes, box_pk: bytes):
    """A fingerprint is always six groups of five digits separated by single spaces."""
    assert FINGERPRINT_RE.match(fingerprint(sign_pk, box_pk))


def test_fingerprint_binds_key_order():
    """Swapping the signing and box keys gives another fingerprint (no key confusion)."""
    a, b = bytes(range(32)), bytes(range(32, 64))
    assert fingerprint(a, b) != fingerprint(b, a)


def test_fingerprint_refuses_wrong_key_length():
    """A 31- or 33-byte key is a bug upstream, not something to fingerprint."""
    with pytest.raises(ValueError):
        fingerprint(bytes(31), bytes(32))
    with pytest.raises(ValueError):
        fingerprint(bytes(32), bytes(33))


def test_generate_gives_distinct_independent_keys():
    """Fresh identities differ, and the box key is not derived from the signing key
    (DESIGN: two independent key pairs): it is neither the signing key's own X25519 form
    (crypto_sign_ed25519_pk_to_curve25519, the usual shortcut) nor its seed."""
    from nacl.bindings import (
        crypto_sign_ed25519_pk_to_curve25519,
        crypto_sign_ed25519_sk_to_curve25519,
    )
    identities = [new_identity() for _ in range(64)]
    assert len({i.to_secret_bytes() for i in identities}) == len(identities)
    assert len({i.fingerprint for i in identities}) == len(identities)
    for ident in identities:
        secret = ident.to_secret_bytes()
        sign_seed, box_secret = secret[:32], secret[32:]
        sign_sk = sign_seed + ident.sign_pk  # libsodium form of the Ed25519 secret key
        assert ident.box_pk != crypto_sign_ed25519_pk_to_curve25519(ident.sign_pk)
        assert box_secret != crypto_sign_ed25519_sk_to_curve25519(sign_sk)
        assert box_secret != sign_seed


def test_from_secret_bytes_refuses_wrong_length():
    """Only exactly 64 secret bytes make an identity."""
    for n in (0, 32, 63, 65):
        with pytest.raises(ValueError):
            Identity.from_secret_bytes(bytes(n))


def test_repr_leaks_no_secret():
    """A repr (tracebacks, logs) shows the fingerprint and none of the secret bytes."""
    ident = Identity.from_secret_bytes(VECTOR_SECRET)
    text = repr(ident) + str(ident)
    assert VECTOR_FINGERPRINT in text
    for secret in (VECTOR_SECRET[:32], VECTOR_SECRET[32:]):
        for form in (secret.hex(), b64u_encode(secret), repr(secret)):
            assert form not in text
    assert "SigningKey" not in text and "PrivateKey" not in text


def test_seal_refuses_empty_passphrase(identity: Identity):
    """Sealing under an empty passphrase would leave the key effectively unencrypted."""
    with pytest.raises(PassphraseError):
        seal_identity(identity, b"", salt=bytes(16), nonce=bytes(24), **FAST)


def test_seal_refuses_limits_a_reader_would_refuse(identity: Identity):
    """Never write a file that open_identity would then refuse."""
    with pytest.raises(KeyFileError):
        seal_identity(identity, PW, salt=bytes(16), nonce=bytes(24), opslimit=5,
                      memlimit=8192)
    with pytest.raises(ValueError):
        seal_identity(identity, PW, salt=bytes(15), nonce=bytes(24), **FAST)


def test_fresh_salt_and_nonce_give_different_files(identity: Identity):
    """Two seals of the same keys under the same passphrase share no salt or nonce."""
    a, b = seal_fast(identity), seal_fast(identity)
    assert a != b
    assert a[-80:] != b[-80:]


def test_wrong_passphrase_raises(sealed: bytes):
    """A wrong passphrase gives WrongPassphraseError, with the scripted-use hint."""
    with pytest.raises(WrongPassphraseError) as info:
        open_identity(sealed, b"correct horse battery stapler")
    assert isinstance(info.value, O2MError)
    assert "O2M_PASSPHRASE" in (info.value.hint or "")
    assert str(info.value)  # the docstring is the user text


def test_every_single_bit_flip_is_detected(sealed: bytes):
    """Flipping any one bit anywhere (magic, length, header or ciphertext) is refused
    with one of the two documented errors; the header is authenticated as AD."""
    for i in range(len(sealed) * 8):
        damaged = bytearray(sealed)
        damaged[i // 8] ^= 1 << (i % 8)
        with pytest.raises((KeyFileError, WrongPassphraseError)):
            open_identity(bytes(damaged), PW)


def test_every_truncation_is_refused(sealed: bytes):
    """Every prefix of a key file is a KeyFileError, never a crash or a WrongPassphrase."""
    for n in range(len(sealed)):
        with pytest.raises(KeyFileError):
            open_identity(sealed[:n], PW)


@given(garbage=st.binary(min_size=1, max_size=64))
def test_trailing_garbage_is_refused(sealed: bytes, garbage: bytes):
    """Bytes appended after the ciphertext are a KeyFileError."""
    with pytest.raises(KeyFileError, match="trailing"):
        open_identity(sealed + garbage, PW)


@settings(max_examples=300)
@given(data=st.one_of(st.binary(max_size=400),
                      st.binary(max_size=400).map(lambda b: keys.MAGIC + b)))
def test_random_bytes_fail_closed(data: bytes):
    """Arbitrary bytes (with or without the magic) never raise anything else than the
    two documented errors (THREATS.md: no exception escapes as a traceback)."""
    with pytest.raises((KeyFileError, WrongPassphraseError)):
        open_identity(data, PW)


@pytest.mark.parametrize("header, message", [
    (_header(memlimit=4 << 30), "memlimit"),
    (_header(memlimit=(1 << 30) + 1), "memlimit"),
    (_header(opslimit=1000), "opslimit"),
    (_header(opslimit=argon2id.OPSLIMIT_SENSITIVE + 1), "opslimit"),
    (_header(opslimit=0), "opslimit"),
    (_header(memlimit=1024), "memlimit"),
    (_header(opslimit=True), "integers"),
    (_header(memlimit="8192"), "integers"),
])
def test_hostile_kdf_limits_refused_before_kdf(monkeypatch: pytest.MonkeyPatch,
                                               header: dict, message: str):
    """A header asking for 4 GiB, 1000 passes, or values libsodium would reject is refused
    quickly, before Argon2id runs (PROTOCOL.md §2.3: unlocking must not take forever)."""
    calls = no_kdf(monkeypatch)
    with pytest.raises(KeyFileError, match=message):
        open_identity(_forge(header), PW)
    assert calls == []  # refused before Argon2id: no timing assert needed


@pytest.mark.parametrize("header, message", [
    (_header(kdf="scrypt"), "unsupported kdf"),
    (_header(aead="aes256gcm"), "unsupported aead"),
    (_header(salt=b64u_encode(bytes(8))), "salt"),
    (_header(salt="AAAA="), "salt"),
    (_header(nonce=b64u_encode(bytes(12))), "nonce"),
    (_header(nonce=None), "missing: nonce"),
    (_header(extra="x"), "unknown: extra"),
])
def test_unsupported_or_malformed_header_refused_before_kdf(
        monkeypatch: pytest.MonkeyPatch, header: dict, message: str):
    """Another KDF or AEAD, or a salt/nonce of the wrong size, is a precise KeyFileError
    raised before any KDF runs."""
    calls = no_kdf(monkeypatch)
    with pytest.raises(KeyFileError, match=message):
        open_identity(_forge(header), PW)
    assert calls == []


@pytest.mark.parametrize("raw, message", [
    (b'{"aead":"xchacha20poly1305-ietf", "kdf":"argon2id13"}', "canonical|fields"),
    (b'{"kdf":"argon2id13","kdf":"argon2id13"}', "duplicate"),
    (b'[1,2,3]', "object"),
    (b'{"memlimit":8192.0}', "float"),
    (b'\xff\xfe', "UTF-8"),
])
def test_non_canonical_or_invalid_header_json_refused(monkeypatch: pytest.MonkeyPatch,
                                                      raw: bytes, message: str):
    """Header bytes that are not the canonical JSON object of §2.3 are refused."""
    no_kdf(monkeypatch)
    with pytest.raises(KeyFileError, match=message):
        open_identity(_forge({}, raw=raw), PW)


def test_header_with_spaces_is_not_canonical(monkeypatch: pytest.MonkeyPatch):
    """The exact header bytes matter: the same fields with whitespace are refused."""
    no_kdf(monkeypatch)
    raw = canonical_json(_header()).replace(b",", b", ")
    with pytest.raises(KeyFileError, match="canonical"):
        open_identity(_forge({}, raw=raw), PW)


def test_other_version_magic_is_unsupported(sealed: bytes):
    """An o2m-secret-v2 file says "unsupported version", a PNG says "not a key file"."""
    with pytest.raises(KeyFileError, match="unsupported key file version"):
        open_identity(b"o2m-secret-v2\n" + sealed[len(keys.MAGIC):], PW)
    with pytest.raises(KeyFileError, match="not an o2m key file"):
        open_identity(b"\x89PNG\r\n\x1a\n" + bytes(300), PW)


def test_header_length_out_of_range_refused(sealed: bytes):
    """A header length of 0 or above the cap is refused without reading further."""
    body = sealed[len(keys.MAGIC) + 2:]
    for n in (0, keys.MAX_HEADER_BYTES + 1, 0xFFFF):
        with pytest.raises(KeyFileError, match="header length"):
            open_identity(keys.MAGIC + n.to_bytes(2, "big") + body, PW)


# ---------------------------------------------------------------- the passphrase's bytes (§2.3)

NFC_PW = "Crème brûlée à Zürich".encode()  # precomposed: already NFC
NFD_PW = unicodedata.normalize("NFD", NFC_PW.decode()).encode()  # "e" + U+0300, …


def _seal_by_hand(secret: bytes, passphrase: bytes, salt: bytes, nonce: bytes) -> bytes:
    """A key file laid out from §2.3 with libsodium's primitives, the passphrase bytes
    used exactly as given: how o2m sealed before protocol 1.1."""
    header = (b'{"aead":"xchacha20poly1305-ietf","kdf":"argon2id13","memlimit":8192,'
              b'"nonce":"' + b64u_encode(nonce).encode() + b'","opslimit":1,'
              b'"salt":"' + b64u_encode(salt).encode() + b'"}')
    prefix = b"o2m-secret-v1\n" + len(header).to_bytes(2, "big") + header
    key = argon2id.kdf(32, passphrase, salt, opslimit=1, memlimit=8192)
    return prefix + crypto_aead_xchacha20poly1305_ietf_encrypt(secret, prefix, nonce, key)


def test_the_passphrase_is_sealed_under_its_nfc_form(identity: Identity):
    """§2.3 (review item 11): a passphrase is UTF-8 in NFC. A file sealed with the
    decomposed spelling opens with either spelling, and its key is Argon2id of the NFC
    bytes (checked by opening it by hand with those bytes)."""
    assert NFD_PW != NFC_PW and keys.normalized_passphrase(NFD_PW) == NFC_PW
    data = seal_identity(identity, NFD_PW, salt=bytes(16), nonce=bytes(24), **FAST)
    assert open_identity(data, NFC_PW).to_secret_bytes() == identity.to_secret_bytes()
    assert open_identity(data, NFD_PW).to_secret_bytes() == identity.to_secret_bytes()
    key = argon2id.kdf(32, NFC_PW, bytes(16), **FAST)
    assert crypto_aead_xchacha20poly1305_ietf_decrypt(
        data[-80:], data[:-80], bytes(24), key) == identity.to_secret_bytes()


def test_a_file_sealed_under_a_non_nfc_passphrase_before_1_1_still_opens(identity: Identity):
    """A key file of before protocol 1.1, sealed under the decomposed bytes as typed,
    still opens with those bytes (NFC is tried first, then the bytes as given); the
    precomposed spelling never opened it and still does not."""
    old = _seal_by_hand(identity.to_secret_bytes(), NFD_PW, bytes(range(16)),
                        bytes(range(24)))
    assert open_identity(old, NFD_PW).to_secret_bytes() == identity.to_secret_bytes()
    with pytest.raises(WrongPassphraseError):
        open_identity(old, NFC_PW)
    with pytest.raises(WrongPassphraseError):  # both forms tried, one error
        open_identity(old, NFD_PW + b"x")


def test_a_passphrase_that_is_not_utf8_is_used_as_given(identity: Identity):
    """Bytes that are not UTF-8 (a Latin-1 passphrase file) have no NFC form: they are
    sealed and opened as they are."""
    latin1 = "crème".encode("latin-1")
    assert keys.normalized_passphrase(latin1) == latin1
    data = seal_identity(identity, latin1, salt=bytes(16), nonce=bytes(24), **FAST)
    assert open_identity(data, latin1).to_secret_bytes() == identity.to_secret_bytes()
    assert data == _seal_by_hand(identity.to_secret_bytes(), latin1, bytes(16), bytes(24))
