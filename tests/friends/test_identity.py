"""The owner's identity on disk (PROTOCOL.md §2.3, THREATS.md 48): modes, atomic
replacement, passphrase changes, export and import, nothing half-written on a full disk.

Every test seals with libsodium's minimum Argon2id limits, which the file records, so
the suite stays fast; the production defaults only run in bench/bench_unlock.py.
"""

from __future__ import annotations

import errno
import os
import stat
import unicodedata
from pathlib import Path

import pytest
from support.keys import FAST, PW, no_kdf, seal_fast

from o2m_pub.friends.identity import (
    KEY_FILE,
    PUBLIC_FILE,
    change_passphrase,
    create_identity_files,
    export_identity,
    import_identity,
    key_file_mode_warning,
    load_identity,
    new_identity,
    passphrase_from_env_or_file,
)
from o2m_pub.protocol.keyfile import (
    IdentityExistsError,
    KeyFileError,
    NoIdentityError,
    PassphraseError,
    WrongPassphraseError,
    open_identity,
    public_json,
)


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


def test_a_passphrase_opens_whichever_way_its_accents_were_typed(tmp_path: Path):
    """PROTOCOL.md §2.3 (protocol 1.1): an identity made with a passphrase typed as
    decomposed characters (as from O2M_PASSPHRASE on a system that writes NFD) opens
    with the precomposed spelling typed at a terminal, and the other way round."""
    nfc = "Crème brûlée".encode()
    nfd = unicodedata.normalize("NFD", nfc.decode()).encode()
    for made_with, opened_with in ((nfd, nfc), (nfc, nfd)):
        root = tmp_path / made_with.hex()
        root.mkdir()
        made = create_identity_files(root, made_with, **FAST)
        env = {"O2M_PASSPHRASE": opened_with.decode()}
        loaded = load_identity(root, passphrase_from_env_or_file(env, None))
        assert loaded.to_secret_bytes() == made.to_secret_bytes()


@pytest.mark.parametrize("fail_in", ["write", "fsync", "replace"])
def test_threat_48_enospc_during_passphrase_change_keeps_old_file(
        site: Path, monkeypatch: pytest.MonkeyPatch, fail_in: str):
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
    exported = seal_fast(new_identity(), b"export pw")
    before = _snapshot(site)
    with monkeypatch.context() as m:
        no_kdf(m)
        with pytest.raises(IdentityExistsError):
            import_identity(site, exported, b"export pw", PW, **FAST)
    assert _snapshot(site) == before
    new = import_identity(site, exported, b"export pw", PW, replace=True, **FAST)
    assert load_identity(site, PW).fingerprint == new.fingerprint


def test_import_of_bad_data_touches_nothing(tmp_path: Path):
    """A damaged export or a wrong passphrase for it leaves the site without keys/."""
    exported = seal_fast(new_identity(), b"export pw")
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
