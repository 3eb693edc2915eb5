"""Friends as the desk shows them: the name they call themselves (their card's `name`),
their picture (the card's `avatar`, as `o2m fetch` kept it, else their initials on a
colour of their own), their bio, their groups, and how their feed is doing, in plain
words.

`Directory` reads `keys/friends/` through `friends.friend_store.FriendStore` and keeps
what it read until a file there changes (one `stat` per friend per page: a timeline of
200 friends does not verify 200 signatures per request).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

from o2m_pub.config import STATE_DIR
from o2m_pub.friends.friend_store import FRIENDS_DIR, GROUPS_FILE, Friend, FriendStore
from o2m_pub.protocol.cards import MAX_AVATAR_BYTES
from o2m_pub.reader.avatars import AVATARS_DIR, avatar_file
from o2m_pub.reader.sanitize import display_text

if TYPE_CHECKING:
    from o2m_pub.reader.model import FriendState

AVATAR_COLOURS = 8  # desk.css has .hue-0 … .hue-7, each with enough contrast
# An avatar is shown only if its bytes are one of these (checked by content).
_IMAGE_MAGIC = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}


@dataclass(frozen=True)
class AvatarImage:
    media_type: str
    data: bytes


@dataclass(frozen=True)
class PersonView:
    """One friend (or a name the store still has posts of) as the desk shows them."""

    name: str  # the owner's name for them (keys/friends/NAME.json), used in audience:
    display: str  # the name on their card, neutralised; the local name when unknown
    initials: str
    hue: int
    has_avatar: bool
    url: str | None = None
    fingerprint: str | None = None
    added: str | None = None
    groups: tuple[str, ...] = ()
    is_friend: bool = True
    bio: tuple[str, ...] = ()  # the card's bio, its lines neutralised

    @property
    def distinct(self) -> bool:
        """Whether the local name says more than the display name ("bob" beside "Bob
        Builder", not "ada" beside "Ada")."""
        return self.display.casefold() != self.name.casefold()


def initials(name: str) -> str:
    """One or two capital letters of a name ("Ada Lovelace" -> "AL", "bob" -> "B")."""
    words = [w for w in display_text(name).replace("-", " ").replace("_", " ").split() if w]
    letters = [w[0] for w in words if w[0].isalnum()][:2]
    return "".join(letters).upper() or "?"


def hue_of(name: str) -> int:
    """A colour of their own, stable across runs (the avatar's background)."""
    return hashlib.sha256(name.encode()).digest()[0] % AVATAR_COLOURS


def card_avatar(card: object, state_dir: Path) -> AvatarImage | None:
    """The picture a friend's card names (PROTOCOL.md §2.4 `avatar`), as `o2m fetch`
    downloaded, checked and kept it (reader/avatars.py), if it is there and its bytes
    still begin as its type says; else None (their initials show)."""
    ref = getattr(card, "avatar", None)
    if ref is None or ref.media_type not in _IMAGE_MAGIC:
        return None
    try:
        with open(avatar_file(state_dir, ref), "rb") as f:
            data = f.read(MAX_AVATAR_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_AVATAR_BYTES or not data.startswith(_IMAGE_MAGIC[ref.media_type]):
        return None
    if ref.media_type == "image/webp" and data[8:12] != b"WEBP":
        return None
    return AvatarImage(ref.media_type, data)


def has_avatar(card: object, state_dir: Path) -> bool:
    ref = getattr(card, "avatar", None)
    return ref is not None and avatar_file(state_dir, ref).is_file()


def person_of(friend: Friend, groups: Mapping[str, Iterable[str]], state_dir: Path) -> PersonView:
    display = display_text(" ".join(friend.card.name.split())) or friend.name
    bio = friend.card.bio
    return PersonView(name=friend.name, display=display, initials=initials(display),
                  hue=hue_of(friend.name), has_avatar=has_avatar(friend.card, state_dir),
                  bio=tuple(display_text(line) for line in bio.split("\n")) if bio else (),
                  url=friend.card.url, fingerprint=friend.fingerprint, added=friend.added,
                  groups=tuple(g for g, members in groups.items() if friend.name in members))


def stranger(name: str) -> PersonView:
    """A name the store has posts of but that is no friend now (removed, or renamed)."""
    shown = display_text(name)
    return PersonView(name=name, display=shown, initials=initials(shown), hue=hue_of(name),
                  has_avatar=False, is_friend=False)


class Directory:
    """The owner's friends and groups, read from keys/ and kept until a file changes."""

    def __init__(self, root: Path, config_groups: Mapping[str, Iterable[str]] | None = None,
                 own_sign_pk: bytes | None = None) -> None:
        self.root = root
        self.state_dir = root / STATE_DIR
        self.store = FriendStore(root, own_sign_pk=own_sign_pk, config_groups=config_groups)
        self._stamp: tuple | None = None
        self._checked = False  # keys/ looked at during this request
        self._friends: dict[str, Friend] = {}
        self._people: dict[str, PersonView] = {}
        self._groups: dict[str, tuple[str, ...]] = {}

    def _current_stamp(self) -> tuple:
        folder = self.root / FRIENDS_DIR
        stamp: list[tuple] = []
        try:
            for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                st = entry.stat(follow_symlinks=False)
                stamp.append((entry.name, st.st_mtime_ns, st.st_size, st.st_ino))
        except FileNotFoundError:
            pass
        for name in (GROUPS_FILE, f"{STATE_DIR}/{AVATARS_DIR}"):  # a picture fetched
            try:
                st = os.stat(self.root / name)
                stamp.append((name, st.st_mtime_ns, st.st_size, st.st_ino))
            except FileNotFoundError:
                pass
        return tuple(stamp)

    def begin_request(self) -> None:
        """Look at keys/ again at the next use, once for the whole request."""
        self._checked = False

    def _refresh(self) -> None:
        if self._checked and self._stamp is not None:
            return
        self._checked = True
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return
        friends = {f.name: f for f in self.store.list()}
        groups = self.store.groups()
        self._friends, self._groups = friends, groups
        self._people = {name: person_of(f, groups, self.state_dir)
                        for name, f in friends.items()}
        self._stamp = stamp

    def forget(self) -> None:
        """Read everything again at the next call (after the desk changed keys/)."""
        self._stamp = None
        self._checked = False

    def people(self) -> dict[str, PersonView]:
        """Every friend by local name, sorted by name."""
        self._refresh()
        return self._people

    def person(self, name: str) -> PersonView:
        self._refresh()
        return self._people.get(name) or stranger(name)

    def friend(self, name: str) -> Friend | None:
        self._refresh()
        return self._friends.get(name)

    def groups(self) -> dict[str, tuple[str, ...]]:
        self._refresh()
        return self._groups

    def avatar(self, name: str) -> AvatarImage | None:
        friend = self.friend(name)
        return card_avatar(friend.card, self.state_dir) if friend is not None else None


# ---------------------------------------------------------------- feed health in words

_REASONS = {
    "unreachable": "their site could not be reached",
    "timeout": "their site was too slow to answer",
    "bad certificate": "their site's certificate is not the one their card names",
    "http error": "their site answered with an error",
    "redirect refused": "their site sent o2m somewhere else, which it does not follow",
    "oversized": "their feed was far bigger than a feed may be",
    "malformed": "their feed was damaged",
    "bad signature": "their feed was not signed by their key (tampered with on the way?)",
    "rollback": "their site served an older feed than one already read (a replay?)",
    "equivocation": "their site served two different feeds with one number",
    "key changed": "their key changed: check their new card with them before accepting it",
    "bad object": "a post in their feed would not open",
}


@dataclass(frozen=True)
class Health:
    """How a friend's feed is doing: one line, and whether it is a problem."""

    text: str
    problem: bool
    last_fetch: str | None  # RFC 3339 UTC of the last good fetch


def health(state: "FriendState | None", now: dt.datetime, relative) -> Health:  # noqa: ANN001
    """A friend's feed state in plain words. `relative(utc_text)` words a time."""
    if state is None:
        return Health("not fetched yet: the next `o2m fetch` reads their feed", False, None)
    if state.failing_since:
        reason = _REASONS.get(state.last_reason or "", display_text(state.last_reason or
                                                                    "failing"))
        since = relative(state.failing_since)
        last = f"; last good fetch {relative(state.last_success)}" if state.last_success else ""
        return Health(f"problem since {since}: {reason}{last}", True, state.last_success)
    if state.stale_since:
        return Health(f"their feed is out of date since {relative(state.stale_since)} (their "
                      "site has not been rebuilt, or a host holds an old copy)", True,
                      state.last_success)
    if state.last_success and state.seq is None:
        return Health(f"fetched {relative(state.last_success)}: no feed for you yet (they "
                      "have not added you back)", False, state.last_success)
    if state.last_success:
        return Health(f"fetched {relative(state.last_success)}", False, state.last_success)
    return Health("not fetched yet: the next `o2m fetch` reads their feed", False, None)
