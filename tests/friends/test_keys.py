"""The owner's identity and the sealed key file (PROTOCOL.md §2.2–2.3, THREATS.md 48).

Every test seals with libsodium's minimum Argon2id limits, which the file records, so
the suite stays fast; the production defaults only run in bench/bench_unlock.py.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.pwhash import argon2id

from o2m_pub.errors import O2MError
from o2m_pub.friends.identity import (
    KEY_FILE,
    PUBLIC_FILE,
    change_passphrase,
    create_identity_files,
    export_identity,
    import_identity,
    key_file_mode_warning,
    load_identity,
    passphrase_from_env_or_file,
)
from o2m_pub.protocol import keyfile as keys
from o2m_pub.protocol.canonical import b64u_encode, canonical_json
from o2m_pub.protocol.keyfile import (
    Identity,
    IdentityExistsError,
    KeyFileError,
    NoIdentityError,
    PassphraseError,
    WrongPassphraseError,
    fingerprint,
    key_file_params,
    open_identity,
    public_json,
    seal_identity,
)

FAST = {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN}
PW = b"correct horse battery staple"

# ---- Test vectors (copy of PROTOCOL.md §2 test vectors) --------------------------------
# Secret: sign_seed = 00 01 … 1f, box_sk = 20 21 … 3f.
VECTOR_SECRET = bytes(range(64))
VECTOR_SIGN_PK = bytes.fromhex("03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8")
VECTOR_BOX_PK = bytes.fromhex("358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254")
VECTOR_FINGERPRINT = "88831 03398 91558 10686 45431 67909"
VECTOR_PUBLIC_JSON = (b'{"box_pk":"NYBy1jZYgNGu6jKa35EhODhR7SGijjt16WXQ0s0WYlQ",'
                      b'"sign_pk":"A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg","v":1}')
# Sealed with passphrase PW, salt = 40 41 … 4f, nonce = 50 51 … 67, opslimit 2,
# memlimit 65536: the whole 253-byte file.
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
    return Identity.generate()


@pytest.fixture(scope="module")
def sealed(identity: Identity) -> bytes:
    """One small sealed file shared by the tamper tests."""
    return seal_identity(identity, PW, salt=bytes(16), nonce=bytes(24), **FAST)


def _seal_fast(identity: Identity, passphrase: bytes = PW) -> bytes:
    return seal_identity(identity, passphrase, salt=os.urandom(16), nonce=os.urandom(24),
                         **FAST)


def _forge(header: dict, ciphertext: bytes = bytes(80), *, raw: bytes | None = None) -> bytes:
    """A key file with any header an attacker likes (the AEAD tag is then wrong)."""
    body = canonical_json(header) if raw is None else raw
    return keys.MAGIC + len(body).to_bytes(2, "big") + body + ciphertext


def _header(**changes: object) -> dict:
    header = {"aead": "xchacha20poly1305-ietf", "kdf": "argon2id13", "memlimit": 8192,
              "nonce": b64u_encode(bytes(24)), "opslimit": 1, "salt": b64u_encode(bytes(16))}
    header.update(changes)
    return {k: v for k, v in header.items() if v is not None}


def _no_kdf(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Make any Argon2id run fail the test, and record attempts."""
    calls: list[tuple] = []

    def spy(*args: object, **kwargs: object) -> bytes:
        calls.append((args, kwargs))
        raise AssertionError("Argon2id ran on a header that should have been refused")

    monkeypatch.setattr(argon2id, "kdf", spy)
    return calls


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A site folder with an identity sealed under PW (fast KDF limits)."""
    root = tmp_path / "site"
    root.mkdir()
    create_identity_files(root, PW, **FAST)
    return root


# ---- Vectors and the pure core -------------------------------------------------------


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
    data = _seal_fast(ident, passphrase)
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
    """Two fresh identities differ, and the box key is not derived from the signing key."""
    a, b = Identity.generate(), Identity.generate()
    assert a.to_secret_bytes() != b.to_secret_bytes()
    assert a.fingerprint != b.fingerprint
    assert a.to_secret_bytes()[:32] != a.to_secret_bytes()[32:]


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
    a, b = _seal_fast(identity), _seal_fast(identity)
    assert a != b
    assert a[-80:] != b[-80:]


# ---- Attacks on the key file (core) --------------------------------------------------


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
    calls = _no_kdf(monkeypatch)
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
    calls = _no_kdf(monkeypatch)
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
    _no_kdf(monkeypatch)
    with pytest.raises(KeyFileError, match=message):
        open_identity(_forge({}, raw=raw), PW)


def test_header_with_spaces_is_not_canonical(monkeypatch: pytest.MonkeyPatch):
    """The exact header bytes matter: the same fields with whitespace are refused."""
    _no_kdf(monkeypatch)
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


# ---- Files on disk -------------------------------------------------------------------


def test_create_writes_modes_and_public_file(site: Path):
    """keys/ is 0700, the secret file 0600, and the public file holds the public keys."""
    assert stat.S_IMODE((site / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((site / KEY_FILE).stat().st_mode) == 0o600
    ident = load_identity(site, PW)
    assert (site / PUBLIC_FILE).read_bytes() == public_json(ident) + b"\n"
    assert key_file_mode_warning(site) is None
    assert not [p for p in (site / "keys").iterdir() if p.name.startswith(".~o2m-")]


def test_create_ignores_loose_umask(tmp_path: Path):
    """Even with umask 000 the key file and folder get 0600 and 0700."""
    old = os.umask(0)
    try:
        create_identity_files(tmp_path, PW, **FAST)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600


def test_create_refuses_existing_identity(site: Path):
    """A second create never overwrites the keys people already verified."""
    before = _snapshot(site)
    with pytest.raises(IdentityExistsError, match="already has an identity"):
        create_identity_files(site, PW, **FAST)
    assert _snapshot(site) == before


def test_load_without_identity(tmp_path: Path):
    """No key file gives NoIdentityError (a KeyFileError) naming the file."""
    with pytest.raises(NoIdentityError) as info:
        load_identity(tmp_path, PW)
    assert info.value.where == KEY_FILE


def test_load_damaged_file_names_the_file(site: Path):
    """A damaged key file on disk is a KeyFileError whose `where` is the key file."""
    (site / KEY_FILE).write_bytes(b"o2m-secret-v1\n\x00")
    with pytest.raises(KeyFileError) as info:
        load_identity(site, PW)
    assert info.value.where == KEY_FILE


def test_wrong_passphrase_changes_nothing_on_disk(site: Path):
    """Loading or changing the passphrase with a wrong one leaves every file as it was."""
    before = _snapshot(site)
    with pytest.raises(WrongPassphraseError):
        load_identity(site, b"guess")
    with pytest.raises(WrongPassphraseError):
        change_passphrase(site, b"guess", b"new passphrase", **FAST)
    assert _snapshot(site) == before


def test_passphrase_change_keeps_keys_and_retires_old_passphrase(site: Path):
    """Same keys (same fingerprint) under the new passphrase, new salt and nonce, the
    old passphrase no longer opens the file, and the modes stay tight."""
    before = load_identity(site, PW)
    old_bytes = (site / KEY_FILE).read_bytes()
    after = change_passphrase(site, PW, b"new passphrase", **FAST)
    assert after.fingerprint == before.fingerprint
    assert load_identity(site, b"new passphrase").to_secret_bytes() == before.to_secret_bytes()
    with pytest.raises(WrongPassphraseError):
        load_identity(site, PW)
    new_bytes = (site / KEY_FILE).read_bytes()
    assert new_bytes[-80:] != old_bytes[-80:]
    assert key_file_mode_warning(site) is None


@pytest.mark.parametrize("fail_in", ["write", "fsync", "replace"])
def test_enospc_during_passphrase_change_keeps_old_file(site: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        fail_in: str):
    """A full disk while writing, flushing or renaming the new key file leaves the old
    file valid under the old passphrase and no temporary file behind (THREATS.md 48)."""
    before = _snapshot(site)

    def enospc(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, fail_in, enospc)
    with pytest.raises(OSError) as info:
        change_passphrase(site, PW, b"new passphrase", **FAST)
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC
    assert _snapshot(site) == before
    assert load_identity(site, PW)


def test_short_writes_are_completed(site: Path, monkeypatch: pytest.MonkeyPatch):
    """os.write may write fewer bytes than asked; the key file is still whole."""
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:7])))
    change_passphrase(site, PW, b"new passphrase", **FAST)
    monkeypatch.undo()
    assert load_identity(site, b"new passphrase")


def test_mode_warning_when_loosened(site: Path):
    """A group/world-readable key file or folder is reported, naming the fix."""
    os.chmod(site / KEY_FILE, 0o644)
    warning = key_file_mode_warning(site)
    assert warning and "chmod 600" in warning and "0644" in warning
    os.chmod(site / KEY_FILE, 0o600)
    os.chmod(site / "keys", 0o755)
    warning = key_file_mode_warning(site)
    assert warning and "chmod 700" in warning
    os.chmod(site / "keys", 0o700)
    assert key_file_mode_warning(site) is None


def test_mode_warning_without_identity(tmp_path: Path):
    """No key file, nothing to warn about."""
    assert key_file_mode_warning(tmp_path) is None


def test_export_import_round_trip(site: Path, tmp_path: Path):
    """An export opens with the export passphrase only, and importing it elsewhere gives
    the same identity under the new passphrase, with tight modes."""
    ident = load_identity(site, PW)
    exported = export_identity(site, PW, b"export pw", **FAST)
    assert exported != (site / KEY_FILE).read_bytes()
    with pytest.raises(WrongPassphraseError):
        open_identity(exported, PW)
    other = tmp_path / "other"
    other.mkdir()
    imported = import_identity(other, exported, b"export pw", b"other pw", **FAST)
    assert imported.fingerprint == ident.fingerprint
    assert load_identity(other, b"other pw").to_secret_bytes() == ident.to_secret_bytes()
    assert (other / PUBLIC_FILE).read_bytes() == (site / PUBLIC_FILE).read_bytes()
    assert key_file_mode_warning(other) is None


def test_import_refuses_to_overwrite_identity(site: Path, monkeypatch: pytest.MonkeyPatch):
    """Importing over an existing identity is refused before any KDF and changes nothing;
    with replace=True it goes through."""
    exported = _seal_fast(Identity.generate(), b"export pw")
    before = _snapshot(site)
    with monkeypatch.context() as m:
        _no_kdf(m)
        with pytest.raises(IdentityExistsError):
            import_identity(site, exported, b"export pw", PW, **FAST)
    assert _snapshot(site) == before
    new = import_identity(site, exported, b"export pw", PW, replace=True, **FAST)
    assert load_identity(site, PW).fingerprint == new.fingerprint


def test_import_of_bad_data_touches_nothing(tmp_path: Path):
    """A damaged export or a wrong passphrase for it leaves the site without keys/."""
    exported = _seal_fast(Identity.generate(), b"export pw")
    with pytest.raises(KeyFileError):
        import_identity(tmp_path, exported[:-1], b"export pw", PW, **FAST)
    with pytest.raises(WrongPassphraseError):
        import_identity(tmp_path, exported, b"wrong", PW, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_keys_path_that_is_a_file_is_refused(tmp_path: Path):
    """A plain file named keys is a KeyFileError, not a crash."""
    (tmp_path / "keys").write_text("not a folder")
    with pytest.raises(KeyFileError, match="not a folder"):
        create_identity_files(tmp_path, PW, **FAST)


# ---- Passphrase sources ---------------------------------------------------------------


def test_passphrase_from_env():
    """O2M_PASSPHRASE is used (UTF-8) when no file is given; neither means prompt (None)."""
    assert passphrase_from_env_or_file({"O2M_PASSPHRASE": "pässword"}, None) == \
        "pässword".encode()
    assert passphrase_from_env_or_file({}, None) is None
    assert passphrase_from_env_or_file({"O2M_PASSPHRASE": ""}, None) == b""


def test_passphrase_from_file_first_line(tmp_path: Path):
    """The first line of the file without its line ending; the file beats the env."""
    f = tmp_path / "pw"
    f.write_bytes(b"secret words\r\nsecond line\n")
    assert passphrase_from_env_or_file({"O2M_PASSPHRASE": "env"}, f) == b"secret words"
    f.write_bytes(b"no newline")
    assert passphrase_from_env_or_file({}, f) == b"no newline"


def test_unreadable_passphrase_file(tmp_path: Path):
    """A missing passphrase file is a PassphraseError naming the file."""
    with pytest.raises(PassphraseError, match="passphrase file"):
        passphrase_from_env_or_file({}, tmp_path / "missing")
