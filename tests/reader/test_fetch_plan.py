"""The fetch plan (`reader/fetch_plan.py`, PROTOCOL.md §3.5) without sockets: a site
simulator holds a friend's site in memory, as `o2m build` would publish it (a head,
archive pages and objects, sealed with real keys by `protocol.feeds`), serves it through
fetch_plan's `get`, and records every path asked for, in order, as python-tuf tests its
updater against its RepositorySimulator. Updates go to a real ReaderStore, so that a
second fetch starts from what the first one stored."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import nacl.public
import nacl.signing
import pytest

from o2m_pub.protocol import feeds
from o2m_pub.protocol.canonical import b64u_encode, canonical_json
from o2m_pub.protocol.cards import make_card
from o2m_pub.reader.attachments import FriendAttachments
from o2m_pub.reader.fetch_plan import (
    MAX_FRIEND_BYTES,
    FriendKeys,
    Outcome,
    Reason,
    Refused,
    Download,
    fetch_friend,
)
from o2m_pub.reader.store import ReaderStore

ADA_SIGN = nacl.signing.SigningKey(bytes([1]) * 32)
ADA_BOX = nacl.public.PrivateKey(bytes([2]) * 32)
BOB_SIGN = nacl.signing.SigningKey(bytes([3]) * 32)
BOB_BOX = nacl.public.PrivateKey(bytes([4]) * 32)
SITE_URL = "https://ada.example/"
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)
PICTURE = b"\x89PNG a picture"


def _time(minutes: int) -> str:
    return (dt.datetime(2026, 11, 15, tzinfo=dt.timezone.utc)
            + dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


class SiteSimulator:
    """Ada's site for Bob, in memory. `publish` is one build: new objects, then the
    archive pages cut from the head, then a new head (§1.5, §3.4). `get` is the
    fetch plan's Getter: it serves these files (404 for any other path, Refused over
    the cap, as the HTTPS getter does) and appends each path to `requests`."""

    def __init__(self) -> None:
        self.secrets = feeds.pairwise_secrets(bytes(ADA_BOX), bytes(BOB_BOX.public_key),
                                              bytes(ADA_SIGN.verify_key),
                                              bytes(BOB_SIGN.verify_key))
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.pages: list[feeds.PageRef] = []  # archive pages, oldest first
        self.objects: dict[int, list[str]] = {}  # post number -> its object, attachments
        self.posts = 0
        self._head_items: list[feeds.Item] = []
        self._prev: feeds.PageRef | None = None
        self._seq = 0
        self._counter = 0

    @property
    def head_path(self) -> str:
        return self.secrets.head_path

    def _random(self, n: int) -> bytes:
        self._counter += 1
        return hashlib.sha256(b"simulator %d" % self._counter).digest()[:n]

    def _seal(self, plaintext: bytes) -> feeds.ObjectRef:
        data, ref = feeds.seal_object(plaintext, key=self._random(32), nonce=self._random(24))
        self.files[ref.path] = data
        return ref

    def publish(self, count: int, *, picture_in: int | None = None,
                wrong_key_in: int | None = None) -> None:
        """Publish `count` more posts and a new head. Post number `picture_in` carries
        an attachment; post number `wrong_key_in` is listed with a key its object does
        not open with (THREATS.md 19)."""
        new = []
        for number in range(self.posts, self.posts + count):
            doc = {"v": 1, "type": "o2m-post", "title": f"Post {number}",
                   "markdown": f"Body {number}.", "date": _time(number)}
            paths = []
            if number == picture_in:
                picture = self._seal(PICTURE)
                doc["attachments"] = [{"name": "pic.png", "media_type": "image/png",
                                       "hash": picture.hash, "size": picture.size,
                                       "key": b64u_encode(picture.key)}]
                paths.append(picture.path)
            ref = self._seal(canonical_json(doc))
            if number == wrong_key_in:
                ref = feeds.ObjectRef(ref.hash, ref.size, self._random(32))
            self.objects[number] = [ref.path, *paths]
            item_id = b64u_encode(hashlib.sha256(b"post %d" % number).digest()[:16])
            new.insert(0, feeds.Item(item_id, _time(number), ref))  # newest first
        self.posts += count
        self._head_items, cut = feeds.append_to_feed(self._head_items, new)
        for page_items in cut:  # oldest first, each pointing at the one before
            data, self._prev = feeds.seal_page(
                signing_key=ADA_SIGN, reader_sign_pk=bytes(BOB_SIGN.verify_key),
                secrets=self.secrets, items=page_items, prev=self._prev,
                nonce=self._random(24))
            self.files[self._prev.path] = data
            self.pages.append(self._prev)
        self._seq += 1
        self.files[self.head_path] = feeds.seal_head(
            signing_key=ADA_SIGN, reader_sign_pk=bytes(BOB_SIGN.verify_key),
            secrets=self.secrets, seq=self._seq, updated=_time(self.posts),
            expires=_time(self.posts + 30 * 24 * 60), items=self._head_items, prev=self._prev,
            nonce=self._random(24))

    def objects_newest_first(self, numbers: range) -> list[str]:
        """The object paths of these posts, newest post first, each followed by its
        attachment's: the order §3.5 step 12 downloads them in."""
        return [path for number in reversed(numbers) for path in self.objects[number]]

    def get(self, path: str, *, cap: int, etag: str | None = None,
            last_modified: str | None = None) -> Download:
        self.requests.append(path)
        data = self.files.get(path)
        if data is None:
            return Download(404)
        if len(data) > cap:
            raise Refused(Reason.OVERSIZED, f"{path}: over the cap of {cap:,} bytes")
        return Download(200, data)


class Bob:
    """Bob's reader: fetch_friend over the simulator, its update stored in a real
    ReaderStore (a refusal recorded), as `o2m fetch` does for each friend."""

    def __init__(self, root: Path) -> None:
        self.store = ReaderStore.open(root)
        ada_sign_pk, bob_sign_pk = bytes(ADA_SIGN.verify_key), bytes(BOB_SIGN.verify_key)
        secrets = feeds.pairwise_secrets(bytes(BOB_BOX), bytes(ADA_BOX.public_key),
                                         ada_sign_pk, bob_sign_pk)  # Bob's side of §3.1
        self.keys = FriendKeys("ada", ada_sign_pk, bytes(ADA_BOX.public_key), bob_sign_pk,
                               secrets, SITE_URL)

    def fetch(self, site: SiteSimulator, max_bytes: int = MAX_FRIEND_BYTES) -> Outcome:
        site.requests.clear()
        store, name = self.store, self.keys.name
        outcome = fetch_friend(self.keys, store.friend_state(name),
                               store.stored_object_hashes(name), site.get,
                               FriendAttachments(store.attachments,
                                                 store.credited_attachments(name)),
                               NOW, public=False, max_bytes=max_bytes)
        if outcome.update is not None:
            store.apply_update(outcome.update, now=NOW)
        else:
            store.record_failure(name, self.keys.sign_pk_text, outcome.reason,
                                 outcome.detail, now=NOW, notifications=outcome.notifications)
        return outcome

    def titles(self) -> set[str]:
        return {p.title for p in self.store.timeline(limit=10_000)}


@pytest.fixture
def site() -> SiteSimulator:
    return SiteSimulator()


@pytest.fixture
def bob(tmp_path: Path):
    reader = Bob(tmp_path)
    yield reader
    reader.store.close()


def titles(numbers: range) -> set[str]:
    return {f"Post {n}" for n in numbers}


# ---------------------------------------------------------------- a pure core


def test_the_fetch_plan_imports_no_store_no_sqlite_and_no_http():
    """Imported alone (a fresh interpreter), the fetch plan brings in only the protocol
    core, the reader's model and its pure part for conversations (thread_fetch): not the
    SQLite store (nor sqlite3 or fcntl), not the HTTP shell (nor urllib3)."""
    code = ("import json, sys; import o2m_pub.reader.fetch_plan; "
            "print(json.dumps(sorted(sys.modules)))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], check=True,
                                           capture_output=True, text=True).stdout))
    assert not loaded & {"sqlite3", "fcntl", "urllib3", "o2m_pub.reader.store",
                         "o2m_pub.reader.http_fetch", "o2m_pub.reader.attachments"}
    ours = {m for m in loaded if m.startswith("o2m_pub.")}
    assert {m for m in ours if not m.startswith("o2m_pub.protocol")} == {
        "o2m_pub.errors", "o2m_pub.reader", "o2m_pub.reader.fetch_plan",
        "o2m_pub.reader.model", "o2m_pub.reader.thread_fetch"}


# ---------------------------------------------------------------- the order of downloads


def test_a_first_fetch_gets_the_head_then_the_pages_newest_first_then_each_object(site, bob):
    """§3.5 in order: the head, the archive pages from the head's `prev` back to the
    first one (newest first), then each post's object, newest post first, an
    attachment right after its post. 200 posts: a head of 72 and two pages of 64."""
    site.publish(200, picture_in=150)
    assert len(site.pages) == 2
    got = bob.fetch(site)
    newer, older = site.pages[1], site.pages[0]
    assert site.requests == ([site.head_path, newer.path, older.path]
                             + site.objects_newest_first(range(200)))
    assert (got.status, got.new, got.skipped) == ("new", 200, 0)
    assert bob.titles() == titles(range(200))
    assert bob.store.friend_state("ada").pages == (newer.hash, older.hash)


def test_a_second_fetch_reads_only_the_new_archive_page_and_the_new_objects(site, bob):
    """After 70 more posts, the head cuts a third page. The next fetch reads the head,
    that new page alone (the walk stops at the first page already stored: §3.5 step
    11, never the stored pages again) and the objects of the 70 new posts alone (the
    posts still in the head, and in the new page, are stored already)."""
    site.publish(200)
    bob.fetch(site)
    site.publish(70)
    assert len(site.pages) == 3
    got = bob.fetch(site)
    assert site.requests == [site.head_path, site.pages[2].path] + site.objects_newest_first(
        range(200, 270))
    assert (got.status, got.new, got.updated) == ("new", 70, 0)
    assert bob.titles() == titles(range(270))
    assert bob.store.friend_state("ada").pages == tuple(
        page.hash for page in (site.pages[1], site.pages[0], site.pages[2]))


def test_the_same_head_again_downloads_nothing_else(site, bob):
    """A head with the stored seq and bytes is no news: no page, no object."""
    site.publish(150)
    bob.fetch(site)
    got = bob.fetch(site)
    assert site.requests == [site.head_path]
    assert (got.status, got.new) == ("unchanged", 0)


# ---------------------------------------------------------------- the byte budget


def _downloads(site: SiteSimulator) -> list[str]:
    """What a first fetch of `site` downloads after the head, in order."""
    return [page.path for page in reversed(site.pages)] + site.objects_newest_first(
        range(site.posts))


@pytest.mark.parametrize("fits", [0, 1, 2, 10, 11, 40])
def test_the_budget_is_charged_before_each_download(site, bob, fits):
    """With a budget one byte short of the first `fits` downloads and the next, that
    next file is never asked for: its size (from its reference) is charged before the
    download, be it the archive page (0), an object (1, 2, 40) or an attachment (11:
    post 140's, after its object). The friend is refused as oversized, and nothing of
    it is stored."""
    site.publish(150, picture_in=140)
    downloads = _downloads(site)
    assert downloads[0] == site.pages[0].path and downloads[10:12] == site.objects[140]
    sizes = [len(site.files[path]) for path in downloads]
    got = bob.fetch(site, max_bytes=sum(sizes[:fits + 1]) - 1)
    assert site.requests == [site.head_path] + downloads[:fits]
    assert (got.status, got.reason) == ("refused", Reason.OVERSIZED)
    assert bob.titles() == set() and bob.store.friend_state("ada").seq is None


def test_a_budget_of_exactly_every_download_fetches_everything(site, bob):
    """The budget is an upper bound that can be met: every byte of it may be spent."""
    site.publish(150)
    downloads = _downloads(site)
    got = bob.fetch(site, max_bytes=sum(len(site.files[path]) for path in downloads))
    assert site.requests == [site.head_path] + downloads
    assert (got.status, got.new) == ("new", 150)


# ---------------------------------------------------------------- what fails what


def test_an_object_that_does_not_open_with_its_key_fails_that_item_alone(site, bob):
    """THREATS.md 19: one item whose key does not open its object is skipped; every
    other object is still downloaded and stored, and the head is accepted."""
    site.publish(10, wrong_key_in=4)
    got = bob.fetch(site)
    assert site.requests == [site.head_path] + site.objects_newest_first(range(10))
    assert (got.status, got.new, got.skipped) == ("new", 9, 1)
    assert bob.titles() == titles(range(10)) - {"Post 4"}
    assert bob.store.friend_state("ada").seq == 1


def test_an_object_missing_from_the_host_refuses_the_update_until_it_is_there(site, bob):
    """A 404 for an object stops the fetch there and refuses the whole update as an
    HTTP error, keeping the prior state (THREATS.md 29): the head is not accepted, so
    the next fetch asks for every object again, and stores all once the host has it."""
    site.publish(10)
    missing = site.objects[6][0]
    kept = site.files.pop(missing)
    got = bob.fetch(site)
    assert site.requests == [site.head_path] + site.objects_newest_first(range(6, 10))
    assert site.requests[-1] == missing
    assert (got.status, got.reason) == ("refused", Reason.HTTP_ERROR)
    assert bob.titles() == set() and bob.store.friend_state("ada").seq is None
    site.files[missing] = kept
    again = bob.fetch(site)
    assert site.requests == [site.head_path] + site.objects_newest_first(range(10))
    assert (again.status, again.new) == ("new", 10)


def test_an_archive_page_missing_from_the_host_refuses_the_update(site, bob):
    """A 404 for an archive page refuses the whole update before any object is asked
    for: nothing of the head or its pages is stored."""
    site.publish(200)
    del site.files[site.pages[0].path]
    got = bob.fetch(site)
    assert site.requests == [site.head_path, site.pages[1].path, site.pages[0].path]
    assert (got.status, got.reason) == ("refused", Reason.HTTP_ERROR)
    assert "archive page" in got.detail
    assert bob.titles() == set() and bob.store.friend_state("ada").seq is None


# ---------------------------------------------------------------- refusal reasons


OLD_TEXTS = {"UNREACHABLE": "unreachable", "TIMEOUT": "timeout",
             "BAD_CERTIFICATE": "bad certificate", "HTTP_ERROR": "http error",
             "REDIRECT": "redirect refused", "OVERSIZED": "oversized",
             "MALFORMED": "malformed", "BAD_SIGNATURE": "bad signature",
             "ROLLBACK": "rollback", "EQUIVOCATION": "equivocation",
             "KEY_CHANGED": "key changed", "BAD_OBJECT": "bad object"}
# Added since (security review findings 10 and 5): what really happened.
NEW_TEXTS = {"TLS_TOO_OLD": "TLS version too old", "OVER_QUOTA": "over quota"}


def test_refusal_reasons_read_and_store_as_the_words_o2m_fetch_always_printed(tmp_path):
    """The Reason enum is the twelve texts the reasons were before it, and the ones
    added since: printed with str() or an f-string, compared with text, and stored by
    SQLite as plain text (what older stores hold in `last_reason`). Only the transport
    failures count as unreachable."""
    assert {r.name: r.value for r in Reason} == OLD_TEXTS | NEW_TEXTS
    all_texts = OLD_TEXTS | NEW_TEXTS
    db = sqlite3.connect(tmp_path / "reasons.db")
    db.execute("CREATE TABLE t (reason TEXT)")
    for reason in Reason:
        assert str(reason) == f"{reason}" == all_texts[reason.name] == reason
        db.execute("INSERT INTO t VALUES (?)", (reason,))
    stored = [r for (r,) in db.execute("SELECT reason FROM t")]
    assert sorted(stored) == sorted(all_texts.values()) and {type(r) for r in stored} == {str}
    assert {r for r in Reason if r.is_transport} == {
        Reason.UNREACHABLE, Reason.TIMEOUT, Reason.BAD_CERTIFICATE, Reason.TLS_TOO_OLD,
        Reason.HTTP_ERROR, Reason.REDIRECT}


# ---------------------------------------------------------------- suggested commands


def _run_suggested(command: str, folder: Path) -> list[str]:
    """Run a printed `o2m …` command with bash, as a user pasting it would, in
    `folder`, with `o2m` a shell function that prints the words it was given."""
    script = 'o2m() { printf "%s\\n" "$@"; }\n' + command
    done = subprocess.run(["bash", "-c", script], cwd=folder, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.parametrize("where", ["the new card", "the stored card"])
def test_threat_50_a_hostile_url_in_a_suggested_command_runs_nothing(site, bob, tmp_path, where):
    """THREATS 50 (security review finding 2): Ada's head is gone and her site's card has
    new keys, signed by them, with a URL a shell would run (`$(touch …)`, `;`, quotes),
    which PROTOCOL.md §2.4 allows. The refusal suggests a command to accept the new card;
    pasted into bash, it runs nothing, and gives `o2m` the words it means: the friend's
    stored name and the stored site's address (where the new card was found), never the
    new card's URL. The stored URL may itself hold such characters: it is quoted."""
    hostile = "https://ada.example/$(touch$IFS'PWNED')/;touch$IFS'PWNED2';x/"
    if where == "the stored card":
        bob.keys = dataclasses.replace(bob.keys, site_url=hostile)
    new_sign = nacl.signing.SigningKey(bytes([9]) * 32)
    card = make_card(new_sign, name="Ada", url=hostile if where == "the new card" else SITE_URL,
                     box_pk=bytes(nacl.public.PrivateKey(bytes([8]) * 32).public_key),
                     tls_pin=None, created=NOW - dt.timedelta(days=1))
    site.files[".well-known/o2m-card.json"] = card.raw
    got = bob.fetch(site)
    assert (got.status, got.reason) == ("refused", Reason.KEY_CHANGED), got
    command = got.detail.split("then run: ", 1)[1]
    assert "\n" not in command
    folder = tmp_path / "paste"
    folder.mkdir()
    words = _run_suggested(command, folder)
    assert list(folder.iterdir()) == []
    assert words == ["friend", "add", "ada", bob.keys.site_url, "--accept-key-change"]
    (notice,) = [n for n in bob.store.notifications() if n.kind == "key_changed"]
    assert _run_suggested(notice.detail.split("then run: ", 1)[1], folder) == words
    assert list(folder.iterdir()) == []


def test_an_unchanged_head_that_expires_this_second_is_stale(site, bob):
    """§3.5 step 9 for a head answered 304 (unchanged): fresh while its stored `expires`
    is after now, so one that expires this very second is flagged stale, as the same
    head read anew would be; a second later in its life it is not."""
    site.publish(1)
    bob.fetch(site)
    state = bob.store.friend_state("ada")
    now_text = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (NOW + dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def unchanged(path: str, **_: object) -> Download:
        return Download(304)
    for expires, stale_since in ((now_text, now_text), (later, None)):
        got = fetch_friend(bob.keys, dataclasses.replace(state, expires=expires), {},
                           unchanged, FriendAttachments(bob.store.attachments, set()), NOW,
                           public=False)
        assert (got.status, got.stale_since) == ("unchanged", stale_since)
