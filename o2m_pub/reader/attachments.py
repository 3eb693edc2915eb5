"""The attachment cache: friends' decrypted attachments, as files beside the reader's store.

They live under ``.o2m/objects/<first 2 hex>/<object hash>`` (0600, in the private state
folder, never under ``build/``), named by the SHA-256 of the encrypted object they came
from, which the fetch checked before it decrypted them (PROTOCOL.md §3.3). A file is
written whole (a temporary file of a unique name, fsync, rename) before the store's
transaction that refers to it commits, so an orphan file is harmless (THREATS.md 31, 47).

Bytes are cached once per hash, but shown in a friend's post only when credited to that
friend (THREATS.md 23): `FriendAttachments` is the cache as one friend's fetch sees it,
given the hashes their own downloads vouched for (the store's ``attachment_credits``).
"""

from __future__ import annotations

from pathlib import Path

from o2m_pub._files import write_file


def _is_sha256_hex(text: str) -> bool:
    return len(text) == 64 and not text.strip("0123456789abcdef")


class AttachmentCache:
    """Decrypted attachments by the hash of their encrypted object, under `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, object_hash: str) -> Path | None:
        """Where the decrypted bytes of an attachment are cached, or None if they are
        not (yet), or `object_hash` is no SHA-256 in hex (so never a path elsewhere)."""
        if not _is_sha256_hex(object_hash):
            return None
        path = self.folder / object_hash[:2] / object_hash
        return path if path.is_file() else None

    def save(self, object_hash: str, plaintext: bytes) -> Path | None:
        """Cache a verified, decrypted attachment by its object's hash, all or nothing
        (THREATS.md 31; two friends' fetches may save one hash at once).

        Returns:
            Its path; None when other bytes are cached under that hash already (they
            stay): the cipher does not commit to its key, so one object could open to
            two plaintexts under two keys, and a post must never show the other one.

        Raises:
            ValueError: `object_hash` is no SHA-256 in hex.
            OSError: the file could not be written (nothing of it is left).
        """
        if not _is_sha256_hex(object_hash):
            raise ValueError("an attachment is cached by the SHA-256 of its object")
        folder = self.folder / object_hash[:2]
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = folder / object_hash
        if target.is_file():
            same = (target.stat().st_size == len(plaintext)
                    and target.read_bytes() == plaintext)
            return target if same else None
        try:
            write_file(target, plaintext, 0o600)  # a random temporary name, fsync, rename
        except OSError as e:  # a full disk (THREATS.md 48): the error names the file
            e.filename = e.filename or str(target)
            raise
        return target

    def remove(self, object_hash: str) -> None:
        """Forget a cached attachment (no post of any friend is credited with it)."""
        path = self.path(object_hash)
        if path is not None:
            path.unlink(missing_ok=True)
            try:
                path.parent.rmdir()  # when it was the last of its folder
            except OSError:
                pass


class FriendAttachments:
    """The cache as one friend's fetch sees it (fetch_plan's `Attachments`), for worker
    threads (files only, no SQL): a cached attachment counts for this friend only if
    `credited` (read from the store before the run) says their own download vouched
    for it."""

    def __init__(self, cache: AttachmentCache, credited: frozenset[str]) -> None:
        self._cache, self._credited = cache, credited
        self.saved: list[str] = []  # hashes this fetch cached anew (dropped if refused)

    def has(self, object_hash: str) -> bool:
        return object_hash in self._credited and self._cache.path(object_hash) is not None

    def save(self, object_hash: str, plaintext: bytes) -> bool:
        new = self._cache.path(object_hash) is None
        saved = self._cache.save(object_hash, plaintext) is not None
        if saved and new:
            self.saved.append(object_hash)
        return saved
