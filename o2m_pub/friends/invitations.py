"""The owner's invitations (PROTOCOL.md §2.7): the ones handed out and not yet used, and
what happens when an acceptance comes back.

    .o2m/invites.json   {"invites": [...], "v": 1}: canonical JSON, mode 0600, in the
                        private state folder (never published, never in git)
    .o2m/invites.lock   one writer at a time: `o2m friend invite`, `o2m friend accept
                        REPLY` and every worker of `o2m serve` may race

Each record keeps the invitation's id and secret (the server must open acceptances
without the passphrase, so the secret is stored as the state folder's other secrets
are), the name the owner chose, the expiry and, once used, when and whom it made a
friend. A used invitation is kept until 30 days after its expiry, so that a replayed
acceptance is told apart from one for an invitation never made (both are refused).

`InvitationBook.accept` is the owner's side of an acceptance, whether it came to the
server's inbox (§5) or as `o2m1r:` reply text: the invitation must be known, unused and
unexpired, the acceptance must open with its secret, and then the friend is added
(`FriendStore.add`, with all its refusals) and the invitation marked used, under the
lock. Anything refused stores nothing.

    InvitationError (protocol.invite)   this invitation or reply cannot be used
    ├── UnknownInvitationError          no invitation of this site has that id
    ├── UsedInvitationError             the invitation made a friend already
    └── InvitationStoreError            .o2m/invites.json is damaged
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import re
import unicodedata
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from o2m_pub._files import write_file
from o2m_pub.config import RESERVED_AUDIENCES, STATE_DIR
from o2m_pub.friends.friend_store import Friend, FriendStore, valid_name
from o2m_pub.protocol.canonical import (
    EncodingError,
    b64u_decode,
    b64u_encode,
    canonical_json,
    parse_json,
    parse_utc_text,
    utc_text,
)
from o2m_pub.protocol.cards import Card
from o2m_pub.protocol.invite import (
    SECRET_BYTES,
    ExpiredInvitationError,
    Invitation,
    InvitationError,
    acceptance_invite_id,
    make_invitation,
    open_acceptance,
)

INVITES_FILE = f"{STATE_DIR}/invites.json"
INVITES_LOCK = f"{STATE_DIR}/invites.lock"
STORE_VERSION = 1
MAX_PENDING = 256  # invitations not yet used nor expired; more is a mistake or a leak
MAX_INVITES_FILE_BYTES = 1 << 20
KEEP_AFTER_EXPIRY = dt.timedelta(days=30)
MAX_EXPIRY = dt.timedelta(days=365)
_RECORD_KEYS = frozenset({"created", "expires", "id", "secret"})
_OPTIONAL_KEYS = frozenset({"friend", "name", "used"})


class UnknownInvitationError(InvitationError):
    """No invitation of this site has that id (never made here, revoked, or long gone)."""

    hint = "`o2m friend invite --list` shows your invitations"


class UsedInvitationError(InvitationError):
    """This invitation was used already."""

    hint = "an invitation makes one friend; `o2m friend invite` makes another"


class InvitationStoreError(InvitationError):
    """The file of your invitations is damaged."""

    hint = ("delete it (your friends are not in it) and make new invitations; "
            "never edit it by hand")

    def __init__(self, message: str) -> None:
        super().__init__(message, path=INVITES_FILE)


# ---------------------------------------------------------------- records (pure)


@dataclass(frozen=True)
class PendingInvitation:
    """One invitation the owner made: its id (b64u of §2.7's 16 bytes), its secret, the
    name the owner chose, when it was made and when it expires, and, once used, when
    and whom it made a friend."""

    id: str
    secret: bytes
    name: str | None
    created: str
    expires: str
    used: str | None = None
    friend: str | None = None

    def status(self, now: dt.datetime) -> str:
        """"used", "expired" or "pending"."""
        if self.used is not None:
            return "used"
        return "expired" if parse_utc_text(self.expires) <= now else "pending"


def records_to_json(records: Collection[PendingInvitation]) -> bytes:
    """The bytes of invites.json: canonical JSON (§2.1) and a final newline."""
    docs = []
    for r in records:
        doc = {"created": r.created, "expires": r.expires, "id": r.id,
               "secret": b64u_encode(r.secret)}
        doc.update({k: v for k, v in (("name", r.name), ("used", r.used),
                                      ("friend", r.friend)) if v is not None})
        docs.append(doc)
    return canonical_json({"invites": docs, "v": STORE_VERSION}) + b"\n"


def records_from_json(data: bytes) -> list[PendingInvitation]:
    """Read invites.json strictly.

    Raises:
        InvitationStoreError: for anything but a file `records_to_json` could write.
    """
    try:
        doc = parse_json(data, max_bytes=MAX_INVITES_FILE_BYTES)
    except EncodingError as e:
        raise InvitationStoreError(f"not a valid invitations file: {e}") from None
    if not isinstance(doc, dict) or set(doc) != {"invites", "v"} or \
            type(doc["v"]) is not int or doc["v"] != STORE_VERSION or \
            not isinstance(doc["invites"], list):
        raise InvitationStoreError('not a valid invitations file: expected {"invites": [...], '
                                   f'"v": {STORE_VERSION}}}')
    records = []
    for item in doc["invites"]:
        if not isinstance(item, dict) or not _RECORD_KEYS <= set(item) <= \
                _RECORD_KEYS | _OPTIONAL_KEYS:
            raise InvitationStoreError("not a valid invitations file: a record has other fields")
        try:
            record = PendingInvitation(
                id=b64u_encode(b64u_decode(item["id"], length=16)),
                secret=b64u_decode(item["secret"], length=SECRET_BYTES),
                name=_optional_name(item.get("name")), created=_time(item["created"]),
                expires=_time(item["expires"]), used=_optional_time(item.get("used")),
                friend=_optional_name(item.get("friend")))
        except (EncodingError, ValueError) as e:
            raise InvitationStoreError(f"not a valid invitations file: {e}") from None
        records.append(record)
    return records


def _time(value: object) -> str:
    parse_utc_text(value)  # type: ignore[arg-type] - raises ValueError for a non-str
    return value  # type: ignore[return-value]


def _optional_time(value: object) -> str | None:
    return None if value is None else _time(value)


def _optional_name(value: object) -> str | None:
    if value is not None and not valid_name(value):
        raise ValueError(f"{value!r} is not a friend name")
    return value  # type: ignore[return-value]


def prune(records: Collection[PendingInvitation], now: dt.datetime) -> list[PendingInvitation]:
    """The records still worth keeping: all but those expired more than
    `KEEP_AFTER_EXPIRY` ago (used or not)."""
    horizon = now - KEEP_AFTER_EXPIRY
    return [r for r in records if parse_utc_text(r.expires) > horizon]


_SLUG_RUN = re.compile(r"[^a-z0-9]+")


def friend_name_for(display_name: str, taken: Collection[str]) -> str:
    """A friend name (lower-case letters, digits and -) made from a card's display name,
    not among `taken`: "Bob Smith" gives bob-smith, then bob-smith-2, … Names with no
    Latin letters give "friend", "friend-2", …"""
    ascii_name = unicodedata.normalize("NFKD", display_name).encode("ascii", "ignore").decode()
    base = _SLUG_RUN.sub("-", ascii_name.lower()).strip("-")[:56].strip("-") or "friend"
    unavailable = set(taken) | RESERVED_AUDIENCES
    candidate, n = base, 1
    while candidate in unavailable:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def find_record(records: Collection[PendingInvitation], prefix: str) -> PendingInvitation:
    """The one record whose id starts with `prefix` (as `--list` shows ids).

    Raises:
        UnknownInvitationError: none, or several (the message says which).
    """
    found = [r for r in records if prefix and r.id.startswith(prefix)]
    if len(found) != 1:
        what = "no invitation" if not found else f"{len(found)} invitations"
        raise UnknownInvitationError(f"{what} with an id starting {prefix!r}")
    return found[0]


# ---------------------------------------------------------------- the book (files)


@dataclass(frozen=True)
class Accepted:
    """An acceptance that made (or found) a friend."""

    friend: Friend
    invitation: PendingInvitation  # as stored now: used
    already: bool  # the card's keys were a friend's before: nothing was added


class InvitationBook:
    """The invitations of the site at `root` (``.o2m/invites.json``). Every change
    reads, decides and writes under ``.o2m/invites.lock``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        state = self.root / STATE_DIR
        state.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(state, 0o700)
        fd = os.open(self.root / INVITES_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _load(self) -> list[PendingInvitation]:
        try:
            with open(self.root / INVITES_FILE, "rb") as f:
                data = f.read(MAX_INVITES_FILE_BYTES + 1)
        except FileNotFoundError:
            return []
        except OSError as e:
            raise InvitationStoreError(f"cannot read it: {e.strerror or e}") from None
        return records_from_json(data)

    def _save(self, records: Collection[PendingInvitation]) -> None:
        write_file(self.root / INVITES_FILE, records_to_json(records), 0o600)

    def list(self) -> list[PendingInvitation]:
        """Every invitation kept, oldest first."""
        return self._load()

    def create(self, card: Card, *, secret: bytes, name: str | None, now: dt.datetime,
               expires: dt.datetime) -> Invitation:
        """Make an invitation and remember it.

        Args:
            card: the owner's current card (it goes into the invitation).
            secret: 32 fresh random bytes.
            name: the friend name the invitee will get, or None (from their card).
            now, expires: aware datetimes; `expires` within a year of `now`.

        Raises:
            InvitationError: too many invitations pending, or an expiry out of range.
        """
        if not now < expires <= now + MAX_EXPIRY:
            raise InvitationError("an invitation expires between now and a year from now",
                                  hint="e.g. --expires 7d, 12h or 30m")
        invitation = make_invitation(card, secret=secret, expires=expires, name=name)
        record = PendingInvitation(id=b64u_encode(invitation.invite_id), secret=secret,
                                   name=name, created=utc_text(now),
                                   expires=invitation.expires)
        with self._locked():
            records = prune(self._load(), now)
            if sum(r.status(now) == "pending" for r in records) >= MAX_PENDING:
                raise InvitationError(f"{MAX_PENDING} invitations are pending already",
                                      hint="revoke some: `o2m friend invite --list`, "
                                           "then `--revoke ID`")
            self._save([*records, record])
        return invitation

    def revoke(self, prefix: str) -> PendingInvitation:
        """Forget an unused invitation: an acceptance of it is then refused.

        Raises:
            UnknownInvitationError: no one invitation's id starts with `prefix`.
            UsedInvitationError: it was used (remove the friend instead).
        """
        with self._locked():
            records = self._load()
            record = find_record(records, prefix)
            if record.used is not None:
                raise UsedInvitationError(f"this invitation made {record.friend} a friend "
                                          f"on {record.used}",
                                          hint=f"`o2m friend remove {record.friend}` ends "
                                               "that friendship")
            self._save([r for r in records if r is not record])
        return record

    def accept(self, data: bytes, store: FriendStore, *, now: dt.datetime) -> Accepted:
        """The owner's side of an acceptance (§2.7, "what the owner checks"): known,
        unused and unexpired invitation; opens with its secret; the invitee's card is
        valid and can be added. Then the friend is added under the invitation's name
        (else one made from their card's name) and the invitation marked used.

        Raises:
            MalformedInvitationError: not shaped as an acceptance, or not well formed
                inside.
            UnknownInvitationError, UsedInvitationError, ExpiredInvitationError: the
                invitation it names cannot take an answer.
            BadAcceptanceError: it does not open with that invitation's secret.
            FriendError: the card cannot be added (e.g. it is the owner's own, or new
                keys for a friend's site); the invitation stays unused.
            InvitationStoreError: invites.json is damaged.
        """
        ident = b64u_encode(acceptance_invite_id(data))
        with self._locked():
            records = self._load()
            record = next((r for r in records if r.id == ident), None)
            if record is None:
                raise UnknownInvitationError("this reply answers no invitation of yours "
                                             "(never made here, or revoked)")
            if record.used is not None:
                raise UsedInvitationError(f"this invitation was used already: it made "
                                          f"{record.friend} a friend on {record.used}")
            if record.status(now) == "expired":
                raise ExpiredInvitationError(f"this reply came after the invitation "
                                             f"expired ({record.expires})")
            card = open_acceptance(data, record.secret).card
            friend, already = self._add(store, record, card, now)
            used = replace(record, used=utc_text(now), friend=friend.name)
            # the record is unexpired, so pruning keeps it
            self._save([used if r is record else r for r in prune(records, now)])
        return Accepted(friend=friend, invitation=used, already=already)

    @staticmethod
    def _add(store: FriendStore, record: PendingInvitation, card: Card,
             now: dt.datetime) -> tuple[Friend, bool]:
        """Add the invitee: as the friend they already are (the same keys), else under
        the invitation's name when it is free, else a name made from their card."""
        existing = store.find_by_keys(card.sign_pk)
        if existing is not None:
            return store.add(existing.name, card, now=now), True
        taken = {f.name for f in store.list()} | set(store.groups())
        name = record.name if record.name and record.name not in taken else \
            friend_name_for(card.name, taken)
        return store.add(name, card, now=now), False


__all__ = [
    "Accepted", "INVITES_FILE", "InvitationBook", "InvitationStoreError", "PendingInvitation",
    "UnknownInvitationError", "UsedInvitationError", "find_record", "friend_name_for",
    "prune", "records_from_json", "records_to_json",
]
