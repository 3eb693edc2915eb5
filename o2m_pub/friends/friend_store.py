"""The owner's friends and groups, kept under ``keys/`` (never published).

A friend is a verified contact card (PROTOCOL.md §2.4) under a local name: the name the
owner writes in a post's ``audience:``. Friend names are private, so they live next to
the identity in ``keys/``, never under ``build/``:

    keys/friends/<name>.json   one friend: canonical JSON (§2.1), mode 0600, folder 0700
    keys/groups.json           the groups made with `o2m group`, mode 0600

Groups can also be written in ``o2m.toml`` (``[groups]``); those are read-only here and
merged with the groups of ``groups.json``.

Adding a card follows THREATS.md 6: a card that claims to be a friend we have (same URL
or same name) with other keys is refused with both fingerprints shown, and only stored
after an explicit ``accept_key_change`` under that friend's name; the old keys are kept
in ``previous_keys``.
Every other bad add (a key we already know under another name, a name in use, our own
card, a bad name) is one clear error, and nothing is written.

`resolve_audience` is pure: names, friends and groups in, who may read out.

    FriendError (O2MError, ValueError)  anything wrong with friends or groups
    ├── InvalidFriendNameError          a friend name breaks the name rule or clashes
    ├── UnknownFriendError              no friend has that name (``.name``)
    ├── DuplicateFriendNameError        the name is taken by someone else
    ├── SameKeyOtherNameError           the card's keys are a friend's under another name
    ├── KeyChangeError                  the card claims to be a friend, with new keys
    ├── SameOriginOtherPinError         the card pins another key for a friend's host
    ├── OwnCardError                    the card is the owner's own
    ├── FriendStoreError                a file under keys/ is damaged (``.path``)
    ├── GroupError                      a group cannot be changed that way
    │   ├── InvalidGroupNameError       a group name breaks the rule or clashes
    │   ├── UnknownGroupError           no group has that name
    │   └── ConfigGroupError            the group (or member) is set in o2m.toml
    ├── UnknownAudienceError            an audience name means nothing (``.name``)
    └── AmbiguousAudienceError          an audience name is both a friend and a group
"""

from __future__ import annotations

import builtins
import difflib
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from o2m_pub._files import fsync_dir, write_file
from o2m_pub.config import _NAME_RE, RESERVED_AUDIENCES, known_audience_names
from o2m_pub.errors import O2MError
from o2m_pub.friends.identity import ensure_keys_dir
from o2m_pub.protocol.canonical import (
    TIME_RE,
    EncodingError,
    b64u_decode,
    b64u_encode,
    canonical_json,
    parse_json,
    parse_utc_text,
    utc_text,
)
from o2m_pub.protocol.cards import (
    Card,
    CardError,
    card_from_text,
    card_to_text,
    parse_card,
    same_identity,
    site_origin,
)
from o2m_pub.protocol.keyfile import KeyFileError, fingerprint

FRIENDS_DIR = "keys/friends"
GROUPS_FILE = "keys/groups.json"
STORE_VERSION = 1
# A card's text is at most ~5.5 KB; the rest leaves room for many previous keys.
MAX_FRIEND_FILE_BYTES = 64 * 1024
MAX_GROUPS_FILE_BYTES = 1024 * 1024
_FRIEND_KEYS = frozenset({"added", "card", "name", "previous_keys", "v"})
_OPTIONAL_FRIEND_KEYS = frozenset({"rotations"})  # written only when there are some
MAX_KEPT_ROTATIONS = 8  # PROTOCOL.md §2.5: a chain is at most 8 statements
_GROUPS_KEYS = frozenset({"groups", "v"})
_NAME_RULE = "lower-case letters, digits, - and _, starting with a letter or digit, " \
             "at most 64 characters"
_LIST_HINT = "`o2m friend list` shows your friends"


# ---------------------------------------------------------------- errors


class FriendError(O2MError, ValueError):
    """Something is wrong with your friends or groups."""


class InvalidFriendNameError(FriendError):
    """This name cannot be a friend's name."""

    hint = f"a friend's name is {_NAME_RULE}; not public or friends"


class UnknownFriendError(FriendError):
    """You have no friend of that name."""

    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        close = _close_names(name, known)
        hint = (f"did you mean {', '.join(close)}? " if close else "") + _LIST_HINT
        super().__init__(f"you have no friend called {name!r}", hint=hint)
        self.name = name


class DuplicateFriendNameError(FriendError):
    """You already have a friend of that name, with another card."""

    def __init__(self, name: str) -> None:
        super().__init__(f"you already have a friend called {name!r}, with a different "
                         "card (another name, site and keys)",
                         hint=f"choose another name, or `o2m friend remove {name}` first")
        self.name = name


class SameKeyOtherNameError(FriendError):
    """This card is already one of your friends, under another name."""

    def __init__(self, existing: str, new: str, *, previous: bool = False) -> None:
        if previous:
            message = f"this card's keys were the old keys of your friend {existing!r}"
            hint = ("an old key may be a lost or stolen one; ask your friend for their "
                    "current card")
        else:
            message = f"this card is already your friend as {existing!r}"
            hint = f"to call them {new!r} instead: `o2m friend rename {existing} {new}`"
        super().__init__(message, hint=hint)
        self.existing, self.new = existing, new


class KeyChangeError(FriendError):
    """This card claims to be one of your friends, but has new keys."""

    def __init__(self, name: str, old_fingerprint: str, new_fingerprint: str, *,
                 site: str | None = None) -> None:
        what = (f"this card is for the site of your friend {name!r} ({site})"
                if site else f"the card for {name!r}")
        super().__init__(f"{what} has new keys: fingerprint was {old_fingerprint}, the "
                         f"new card's is {new_fingerprint}",
                         hint=f"it may be a lost key, or someone else; verify the new "
                              f"fingerprint with {name} (in person or on a call), then "
                              f"add it as {name} with `o2m friend add --accept-key-change`")
        self.name = name
        self.old_fingerprint, self.new_fingerprint = old_fingerprint, new_fingerprint


class SameOriginOtherPinError(FriendError):
    """This card pins another TLS key for the host of one of your friends' sites."""

    def __init__(self, other: str, other_url: str, url: str) -> None:
        super().__init__(f"this card's site {url} is on the host of your friend {other!r} "
                         f"({other_url}), but pins another TLS key; one host serves one "
                         "key, so one of the two cards is out of date or not genuine",
                         hint=f"ask both for their current card; if {other} changed their "
                              f"server's key, add {other}'s new card first")
        self.other = other


class OwnCardError(FriendError):
    """This is your own card."""

    hint = "add your friends' cards; `o2m card` shows yours, to give to them"


class FriendStoreError(FriendError):
    """A file of your friends list is damaged."""

    hint = ("restore it from a backup, or delete it and add that friend's card again; "
            "never edit it by hand")

    def __init__(self, message: str, *, path: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path

    @property
    def where(self) -> str:
        return self.path


class GroupError(FriendError):
    """This group cannot be changed that way."""

    hint = "`o2m group list` shows your groups"


class InvalidGroupNameError(GroupError):
    """This name cannot be a group's name."""

    hint = (f"a group's name is {_NAME_RULE}; not public, friends or a friend's name")


class UnknownGroupError(GroupError):
    """You have no group of that name."""

    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        close = _close_names(name, known)
        hint = (f"did you mean {', '.join(close)}? " if close else "") + \
            "`o2m group list` shows your groups"
        super().__init__(f"you have no group called {name!r}", hint=hint)
        self.name = name


class ConfigGroupError(GroupError):
    """This group is set in o2m.toml."""

    hint = "edit the [groups] table of o2m.toml"


class UnknownAudienceError(FriendError):
    """This audience is not public, friends, a group or a friend."""

    hint = "use public, friends, a group or a friend's name; " + _LIST_HINT

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown audience {name!r}")
        self.name = name


class AmbiguousAudienceError(FriendError):
    """This audience is both a friend's name and a group's name."""

    hint = "rename the friend (`o2m friend rename`) or the group, so that it means one thing"

    def __init__(self, name: str) -> None:
        super().__init__(f"audience {name!r} is both a friend and a group")
        self.name = name


def _close_names(name: object, known: Iterable[str]) -> list[str]:
    if not isinstance(name, str):
        return []
    known = sorted(set(known))
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    folded = name.strip().lower()  # `Alice` → alice
    if folded in known and folded not in close:
        close.insert(0, folded)
    return close[:3]


# ---------------------------------------------------------------- names and the model


def valid_name(name: object) -> bool:
    """True when `name` can name a friend or a group: the rule of o2m.toml's groups,
    matched in full (a trailing newline is refused), and not public or friends."""
    return (isinstance(name, str) and _NAME_RE.fullmatch(name) is not None
            and name not in RESERVED_AUDIENCES)


def _check_name(name: object, error: type[FriendError], kind: str) -> str:
    """A friend's or group's name, as `audience:` lines use it."""
    if not isinstance(name, str):
        raise error(f"a {kind}'s name is text, not {type(name).__name__}")
    if name in RESERVED_AUDIENCES:
        raise error(f"{name!r} is a reserved audience; it cannot be a {kind}'s name")
    if not valid_name(name):
        raise error(f"{name!r} is not a valid {kind} name")
    return name


def _check_friend_name(name: object) -> str:
    return _check_name(name, InvalidFriendNameError, "friend")


def _check_group_name(name: object) -> str:
    return _check_name(name, InvalidGroupNameError, "group")


# Scheme, host and port of a card's URL: what one TLS key serves (one rule with the
# fetcher's redirects).
_origin = site_origin


def _stamp(now: datetime) -> str:
    return utc_text(now)


@dataclass(frozen=True)
class Friend:
    """A friend: a verified card under the local name the owner uses in ``audience:``.

    `previous_keys` holds the (sign_pk, box_pk) pairs this friend used before, oldest
    first, one per accepted key change (THREATS.md 6). `rotations` holds the verified
    key rotation statements (§2.5) by which the fetcher followed their key, oldest
    first: the reader resets its rollback high-water mark only across them.
    """

    name: str
    card: Card
    added: str  # RFC 3339 UTC, whole seconds, e.g. "2026-11-24T10:30:00Z"
    previous_keys: tuple[tuple[bytes, bytes], ...] = ()
    rotations: tuple[bytes, ...] = ()

    @property
    def fingerprint(self) -> str:
        """The fingerprint of the current card's keys (PROTOCOL.md §2.2)."""
        return fingerprint(self.card.sign_pk, self.card.box_pk)


def friend_to_json(friend: Friend) -> bytes:
    """The bytes of a friend's file: canonical JSON (§2.1) and a final newline."""
    doc = {"added": friend.added, "card": card_to_text(friend.card), "name": friend.name,
           "previous_keys": [[b64u_encode(s), b64u_encode(b)] for s, b in friend.previous_keys],
           "v": STORE_VERSION}
    if friend.rotations:  # only then: a friend file without them reads in older o2m
        doc["rotations"] = [b64u_encode(r) for r in friend.rotations]
    return canonical_json(doc) + b"\n"


def friend_from_json(data: bytes, *, path: str, expected_name: str | None = None) -> Friend:
    """Read a friend's file strictly: the card is parsed and verified again (§2.4).

    Args:
        data: the file's bytes.
        path: the file, relative to the site, for the error.
        expected_name: the name the file name gives; the name inside must equal it.

    Raises:
        FriendStoreError: for anything but a valid friend file, naming `path`.
    """
    def bad(message: str, hint: str | None = None) -> FriendStoreError:
        return FriendStoreError(message, path=path, hint=hint)

    try:
        doc = parse_json(data, max_bytes=MAX_FRIEND_FILE_BYTES)
    except EncodingError as e:
        raise bad(f"not a valid friend file: {e}") from None
    if not isinstance(doc, dict):
        raise bad("not a valid friend file: not a JSON object")
    if "v" in doc and (type(doc["v"]) is not int or doc["v"] != STORE_VERSION):
        raise bad(f"friend file version {doc['v']!r} is not supported (this o2m reads "
                  f"version {STORE_VERSION})", hint="update o2m")
    if set(doc) - _OPTIONAL_FRIEND_KEYS != _FRIEND_KEYS:
        missing = sorted(_FRIEND_KEYS - set(doc))
        extra = sorted(set(doc) - _FRIEND_KEYS - _OPTIONAL_FRIEND_KEYS)
        raise bad("not a valid friend file: "
                  + "; ".join(([f"missing {', '.join(missing)}"] if missing else [])
                              + ([f"unknown {', '.join(extra)}"] if extra else [])))
    name = doc["name"]
    if not valid_name(name):
        raise bad(f"the friend name {name!r} is not valid")
    if expected_name is not None and name != expected_name:
        raise bad(f"the file says the friend is {name!r}, but its file name says "
                  f"{expected_name!r}", hint=f"rename the file to {name}.json, or remove it "
                                              "and add the friend again")
    added = doc["added"]
    if not isinstance(added, str) or not TIME_RE.fullmatch(added):
        raise bad("'added' is not a UTC time like 2026-11-24T10:30:00Z")
    try:
        parse_utc_text(added)
    except ValueError:
        raise bad("'added' is not a real date and time") from None
    if not isinstance(doc["card"], str):
        raise bad("'card' is not an o2m1: text")
    try:
        card = card_from_text(doc["card"])
    except CardError as e:
        raise bad(f"the stored card is not valid: {e}") from None
    previous = doc["previous_keys"]
    if not isinstance(previous, list):
        raise bad("'previous_keys' is not a list")
    pairs = []
    for pair in previous:
        if not (isinstance(pair, list) and len(pair) == 2):
            raise bad("'previous_keys' must hold [sign_pk, box_pk] pairs")
        try:
            pairs.append((b64u_decode(pair[0], length=32), b64u_decode(pair[1], length=32)))
        except EncodingError as e:
            raise bad(f"'previous_keys' holds a key that is not b64u of 32 bytes ({e})") \
                from None
    rotations = doc.get("rotations", [])
    if not isinstance(rotations, list) or len(rotations) > MAX_KEPT_ROTATIONS:
        raise bad(f"'rotations' is not a list of at most {MAX_KEPT_ROTATIONS} statements")
    try:
        statements = tuple(b64u_decode(r) for r in rotations)
    except EncodingError as e:
        raise bad(f"'rotations' holds a statement that is not b64u ({e})") from None
    return Friend(name=name, card=card, added=added, previous_keys=tuple(pairs),
                  rotations=statements)


def groups_to_json(groups: Mapping[str, Iterable[str]]) -> bytes:
    """The bytes of groups.json: canonical JSON, members sorted and unique."""
    doc = {"groups": {g: sorted(set(m)) for g, m in groups.items()}, "v": STORE_VERSION}
    return canonical_json(doc) + b"\n"


def groups_from_json(data: bytes, *, path: str = GROUPS_FILE) -> dict[str, tuple[str, ...]]:
    """Read groups.json strictly. Members need not be friends now (resolving ignores
    those who are not).

    Raises:
        FriendStoreError: for anything but a valid groups file, naming `path`.
    """
    def bad(message: str) -> FriendStoreError:
        return FriendStoreError(message, path=path,
                                hint="fix or delete it (the groups of o2m.toml are not in it)")

    try:
        doc = parse_json(data, max_bytes=MAX_GROUPS_FILE_BYTES)
    except EncodingError as e:
        raise bad(f"not a valid groups file: {e}") from None
    if not isinstance(doc, dict):
        raise bad("not a valid groups file: not a JSON object")
    if "v" in doc and (type(doc["v"]) is not int or doc["v"] != STORE_VERSION):
        raise bad(f"groups file version {doc['v']!r} is not supported")
    if set(doc) != _GROUPS_KEYS or not isinstance(doc["groups"], dict):
        raise bad('not a valid groups file: expected {"groups": {...}, "v": 1}')
    groups: dict[str, tuple[str, ...]] = {}
    for group, members in doc["groups"].items():
        if not valid_name(group):
            raise bad(f"the group name {group!r} is not valid")
        if not isinstance(members, list) or not all(valid_name(m) for m in members):
            raise bad(f"the members of group {group!r} must be a list of friend names")
        groups[group] = tuple(sorted(set(members)))
    return groups


# ---------------------------------------------------------------- audiences (pure)


def resolve_audience(names: Iterable[str], friends: Collection[str],
                     groups: Mapping[str, Collection[str]]) -> tuple[bool, frozenset[str]]:
    """Who may read a post with this ``audience:``.

    "public" makes the post public and also puts it in every friend's feed; "friends"
    means every friend; a group means its members that are still friends; a friend's
    name means that friend. No names at all means nobody.

    Args:
        names: the post's audience names.
        friends: the names of all friends.
        groups: every group (o2m.toml's and groups.json's, merged) and its members.

    Returns:
        (is_public, the names of the friends who may read it).

    Raises:
        UnknownAudienceError: a name is none of these (the builder reports it at the
            post's file and line).
        AmbiguousAudienceError: a name is both a friend and a group; refused rather than
            guessing who was meant.
    """
    if isinstance(names, (str, bytes)):  # a bare string would be read letter by letter
        raise TypeError("names must be a collection of names, not a single string")
    everyone = frozenset(friends)
    is_public = False
    readers: set[str] = set()
    for name in names:
        if name == "public":
            is_public = True
            readers |= everyone
        elif name == "friends":
            readers |= everyone
        elif name in groups and name in everyone:
            raise AmbiguousAudienceError(name)
        elif name in groups:
            readers |= everyone.intersection(groups[name])
        elif name in everyone:
            readers.add(name)
        else:
            raise UnknownAudienceError(name)
    return is_public, frozenset(readers)


# ---------------------------------------------------------------- adding a card (pure)

# The rule (`decide_add`, `AddDecision`) is in add_rules.py, and still found here.


def __getattr__(name: str) -> object:
    if name in ("decide_add", "AddDecision"):
        from o2m_pub.friends import add_rules
        return getattr(add_rules, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------- the store (files)


class FriendStore:
    """The friends and groups of the site at `root`, on disk under ``keys/``.

    Every change checks everything first and then writes whole files atomically
    (temporary file, fsync, rename); a refused change writes nothing.

    Args:
        root: the site folder (the one holding o2m.toml and keys/).
        own_sign_pk: the owner's Ed25519 public key, to refuse adding our own card.
        config_groups: the [groups] of o2m.toml (`SiteConfig.groups`); read-only here.
    """

    def __init__(self, root: Path, *, own_sign_pk: bytes | None = None,
                 config_groups: Mapping[str, Iterable[str]] | None = None) -> None:
        self.root = Path(root)
        self.own_sign_pk = bytes(own_sign_pk) if own_sign_pk is not None else None
        self.config_groups: dict[str, tuple[str, ...]] = {
            g: tuple(sorted(set(m))) for g, m in (config_groups or {}).items()}

    # -- paths and files

    def _rel(self, name: str) -> str:
        return f"{FRIENDS_DIR}/{name}.json"

    def _friends_dir(self, *, create: bool) -> Path | None:
        folder = self.root / FRIENDS_DIR
        if os.path.isdir(folder):
            return folder
        if os.path.lexists(folder):
            raise FriendStoreError("exists and is not a folder", path=FRIENDS_DIR,
                                   hint="move it away; o2m keeps your friends there")
        if not create:
            return None
        try:
            ensure_keys_dir(self.root)
        except KeyFileError as e:
            raise FriendStoreError(str(e), path="keys", hint=e.hint) from None
        folder.mkdir(mode=0o700)
        os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask
        fsync_dir(folder.parent)
        return folder

    def _read(self, rel: str, cap: int) -> bytes | None:
        """The bytes of a file under keys/, None if it does not exist."""
        try:
            with open(self.root / rel, "rb") as f:
                data = f.read(cap + 1)
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise FriendStoreError("is a folder, not a file", path=rel) from None
        except OSError as e:  # e.g. permission denied: one clear line
            raise FriendStoreError(f"cannot read it: {e.strerror or e}", path=rel,
                                   hint="check the owner and mode of keys/") from None
        if len(data) > cap:
            raise FriendStoreError(f"is over {cap:,} bytes", path=rel)
        return data

    def _load(self, name: str) -> Friend | None:
        rel = self._rel(name)
        data = self._read(rel, MAX_FRIEND_FILE_BYTES)
        return None if data is None else friend_from_json(data, path=rel, expected_name=name)

    def _write(self, friend: Friend) -> None:
        folder = self._friends_dir(create=True)
        assert folder is not None
        write_file(folder / f"{friend.name}.json", friend_to_json(friend), 0o600)

    def _names(self) -> builtins.list[str]:
        folder = self._friends_dir(create=False)
        if folder is None:
            return []
        names = []
        for entry in sorted(os.listdir(folder)):
            # Dotfiles are ours or an editor's temporaries (_files.write_file writes
            # ".~o2m-<random>.<name>.json"); other extensions are not friends.
            if entry.startswith(".") or not entry.endswith(".json"):
                continue
            name = entry[:-len(".json")]
            if not valid_name(name):
                raise FriendStoreError(f"{name!r} is not a valid friend name",
                                       path=f"{FRIENDS_DIR}/{entry}",
                                       hint=f"rename it: a friend's name is {_NAME_RULE}")
            names.append(name)
        return names

    def _file_groups(self) -> dict[str, tuple[str, ...]]:
        data = self._read(GROUPS_FILE, MAX_GROUPS_FILE_BYTES)
        return {} if data is None else groups_from_json(data)

    def _write_groups(self, groups: Mapping[str, Iterable[str]]) -> None:
        try:
            ensure_keys_dir(self.root)
        except KeyFileError as e:
            raise FriendStoreError(str(e), path="keys", hint=e.hint) from None
        write_file(self.root / GROUPS_FILE,
                      groups_to_json({g: m for g, m in sorted(groups.items()) if m}), 0o600)

    # -- friends

    def list(self) -> builtins.list[Friend]:
        """Every friend, sorted by name.

        Raises:
            FriendStoreError: a friend's file is damaged (one error, naming it).
        """
        friends = []
        for name in self._names():
            friend = self._load(name)
            if friend is not None:  # removed since the folder was listed
                friends.append(friend)
        return friends

    def get(self, name: str) -> Friend:
        """The friend called `name`.

        Raises:
            UnknownFriendError: no such friend (the hint lists close names).
            FriendStoreError: their file is damaged.
        """
        friend = self._load(name) if valid_name(name) else None
        if friend is None:
            raise UnknownFriendError(name, self._names())
        return friend

    def find_by_keys(self, sign_pk: bytes) -> Friend | None:
        """The friend whose current card has this Ed25519 key, or None. Previous keys
        never match: an old key may be a lost or stolen one."""
        for friend in self.list():
            if friend.card.sign_pk == sign_pk:
                return friend
        return None

    def add(self, name: str, card: Card, *, now: datetime,
            accept_key_change: bool = False) -> Friend:
        """Add `card` as the friend `name`, or update that friend's card.

        THREATS.md 6 and the rules of PROTOCOL.md §2.4: the same keys under another name,
        a name used by someone else, and a card with new keys for a friend we have (same
        URL or same name) are refused, the last unless `accept_key_change`. The same
        keys under the same name update the card only if it is newer (e.g. a new URL).

        Args:
            name: the local name, used in ``audience:``.
            card: a verified card (its `raw` bytes are verified again and stored).
            now: when it is added (an aware datetime), stored as `added`.
            accept_key_change: the owner has checked the new fingerprint with the friend.

        Returns:
            The friend as stored (unchanged if the card was not newer).

        Raises:
            InvalidFriendNameError: `name` breaks the name rule, or is a group's name.
            OwnCardError: the card carries the owner's own key.
            SameKeyOtherNameError: the card's keys are (or were) another friend's.
            KeyChangeError: a key change, and `accept_key_change` is false; or the card
                is for another friend's site (URL) with other keys, whatever the flag.
            SameOriginOtherPinError: the card's site is on the host (scheme, host and
                port) of another friend's site, and both cards pin different TLS keys.
            DuplicateFriendNameError: `name` is another person's, not a key change.
            CardError: `card.raw` does not verify (a Card not made by cards.py).
            FriendStoreError: a stored file is damaged; nothing was changed.
        """
        from o2m_pub.friends.add_rules import decide_add
        friends = self.list()
        # the groups matter (and are read) only for a new name
        groups = self.groups() if all(f.name != name for f in friends) else {}
        decision = decide_add(friends, groups, self.own_sign_pk, name, card,
                              accept_key_change=accept_key_change, now=now)
        if decision.changed:
            self._write(decision.friend)
        return decision.friend

    def update_card(self, name: str, card: Card, *, rotations: Sequence[bytes] = ()) -> Friend:
        """Store a newer card of the friend `name`, which the fetcher adopted by the card
        update rule of PROTOCOL.md §2.4 (the same key, a higher seq) or through the
        verified key rotations `rotations` (§2.5: then the old keys join
        `previous_keys`, and the statements are kept, the newest MAX_KEPT_ROTATIONS).
        The name, groups and history stay; no other friend is consulted: the card is
        vouched for by their own key.

        Raises:
            UnknownFriendError: no such friend (removed meanwhile).
            CardError: `card.raw` does not verify.
        """
        friend = self.get(name)
        card = parse_card(card.raw)
        previous, kept = friend.previous_keys, friend.rotations
        if not same_identity(friend.card, card):
            old = (friend.card.sign_pk, friend.card.box_pk)
            previous = (*(k for k in previous if k != old), old)
            kept = tuple(dict.fromkeys((*kept, *rotations)))[-MAX_KEPT_ROTATIONS:]
        updated = Friend(name=name, card=card, added=friend.added, previous_keys=previous,
                         rotations=kept)
        self._write(updated)
        return updated

    def rename(self, old: str, new: str) -> Friend:
        """Call the friend `old` `new` from now on, in groups.json too. The groups of
        o2m.toml are not changed (edit them by hand).

        Written in order: the new file, groups.json, then the old file is removed; a
        crash in between leaves both files, never neither.

        Returns:
            The friend under the new name.

        Raises:
            UnknownFriendError: no friend `old`.
            InvalidFriendNameError: `new` breaks the rule or is a group's name.
            DuplicateFriendNameError: a friend is already called `new`.
        """
        friend = self.get(old)
        _check_friend_name(new)
        if new == old:
            return friend
        if new in self._names():
            raise DuplicateFriendNameError(new)
        if new in self.groups():
            raise InvalidFriendNameError(
                f"{new!r} is the name of a group; an audience name must mean one thing",
                hint="choose another name")
        file_groups = self._file_groups()
        renamed = Friend(name=new, card=friend.card, added=friend.added,
                         previous_keys=friend.previous_keys, rotations=friend.rotations)
        self._write(renamed)
        if any(old in m for m in file_groups.values()):
            self._write_groups({g: [new if x == old else x for x in m]
                                for g, m in file_groups.items()})
        self._unlink(old)
        return renamed

    def remove(self, name: str) -> Friend:
        """Forget the friend `name` and take them out of the groups of groups.json (a
        group left empty is deleted). Groups are changed first, so a crash never leaves
        a group naming a removed friend who may then be re-added as someone else.

        Returns:
            The friend removed.

        Raises:
            UnknownFriendError: no such friend.
        """
        friend = self.get(name)
        file_groups = self._file_groups()
        if any(name in m for m in file_groups.values()):
            self._write_groups({g: [x for x in m if x != name]
                                for g, m in file_groups.items()})
        self._unlink(name)
        return friend

    def _unlink(self, name: str) -> None:
        path = self.root / self._rel(name)
        path.unlink()
        fsync_dir(path.parent)

    # -- groups

    def groups(self) -> dict[str, tuple[str, ...]]:
        """Every group, o2m.toml's and groups.json's merged (a group in both has the
        members of both), sorted by name, members sorted.

        Raises:
            FriendStoreError: groups.json is damaged.
        """
        merged: dict[str, set[str]] = {}
        for source in (self.config_groups, self._file_groups()):
            for group, members in source.items():
                merged.setdefault(group, set()).update(members)
        return {g: tuple(sorted(merged[g])) for g in sorted(merged)}

    def group_add(self, group: str, members: Iterable[str]) -> tuple[str, ...]:
        """Add friends to a group of groups.json, making it if needed.

        Returns:
            The group's members now (o2m.toml's included).

        Raises:
            InvalidGroupNameError: the name breaks the rule or is a friend's name.
            UnknownFriendError: a member is not a friend.
            GroupError: no members were given.
        """
        _check_group_name(group)
        if isinstance(members, str):  # would be read letter by letter
            raise TypeError("members must be a collection of names, not a single string")
        members = list(dict.fromkeys(members))
        if not members:
            raise GroupError(f"name at least one friend to add to {group!r}")
        names = self._names()
        if group in names:
            raise InvalidGroupNameError(
                f"{group!r} is the name of a friend; an audience name must mean one thing")
        for member in members:
            if member not in names:
                raise UnknownFriendError(member, names)
        file_groups = self._file_groups()
        file_groups[group] = tuple(sorted({*file_groups.get(group, ()), *members}))
        self._write_groups(file_groups)
        return self.groups()[group]

    def group_remove(self, group: str, members: Iterable[str]) -> tuple[str, ...]:
        """Take friends out of a group of groups.json; a group left empty is deleted.

        Returns:
            The group's members now (o2m.toml's included); empty if it is gone.

        Raises:
            UnknownGroupError: no such group.
            ConfigGroupError: a member is in the group through o2m.toml.
            GroupError: a member is not in the group, or no members were given.
        """
        merged = self.groups()
        if group not in merged:
            raise UnknownGroupError(group, merged)
        if isinstance(members, str):
            raise TypeError("members must be a collection of names, not a single string")
        members = list(dict.fromkeys(members))
        if not members:
            raise GroupError(f"name at least one friend to take out of {group!r}")
        file_groups = self._file_groups()
        in_file = set(file_groups.get(group, ()))
        for member in members:
            if member in in_file:
                continue
            if member in self.config_groups.get(group, ()):
                raise ConfigGroupError(f"{member!r} is in group {group!r} through o2m.toml")
            raise GroupError(f"{member!r} is not in group {group!r}")
        left = tuple(m for m in file_groups[group] if m not in members)
        if left:
            file_groups[group] = left
        else:
            del file_groups[group]
        self._write_groups(file_groups)
        return self.groups().get(group, ())

    def group_delete(self, group: str) -> None:
        """Delete a group of groups.json. A group of o2m.toml cannot be deleted here; if a
        group is in both, its groups.json part is deleted and o2m.toml's stays.

        Raises:
            UnknownGroupError: no such group.
            ConfigGroupError: the group is only in o2m.toml.
        """
        file_groups = self._file_groups()
        if group not in file_groups:
            if group in self.config_groups:
                raise ConfigGroupError(f"group {group!r} is set in o2m.toml; it cannot be "
                                       "deleted here")
            raise UnknownGroupError(group, {**self.config_groups, **file_groups})
        del file_groups[group]
        self._write_groups(file_groups)


__all__ = [
    "AmbiguousAudienceError", "ConfigGroupError", "DuplicateFriendNameError",
    "FRIENDS_DIR", "Friend", "FriendError", "FriendStore", "FriendStoreError",
    "GROUPS_FILE", "GroupError", "InvalidFriendNameError", "InvalidGroupNameError",
    "KeyChangeError", "OwnCardError", "SameKeyOtherNameError", "SameOriginOtherPinError", "UnknownAudienceError",
    "UnknownFriendError", "UnknownGroupError", "friend_from_json", "friend_to_json",
    "groups_from_json", "groups_to_json", "known_audience_names", "resolve_audience",
    "valid_name",
]
