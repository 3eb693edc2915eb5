"""`o2m build` with friends: per-friend encrypted feeds in build/ (PROTOCOL.md §3), read
back with the friends' own keys, exactly as their reader will."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest
from conftest import run_o2m
from support.friend import NOW, Friend, titles
from support.sites import add_friends, new_site
from support.system import locked, o2m_unprivileged

from o2m_pub.friends.identity import load_identity
from o2m_pub.friends.private_feeds import RollbackRefusedError
from o2m_pub.protocol import feeds
from o2m_pub.protocol.cards import card_to_text
from o2m_pub.site.build import build_site


@pytest.fixture
def social(tmp_path):
    root = new_site(tmp_path)
    bob, carol = Friend(1, "bob"), Friend(2, "carol")
    add_friends(root, {"bob": bob, "carol": carol})
    assert run_o2m("group", "add", "tribe", "bob", cwd=root).returncode == 0
    from o2m_pub.friends.identity import own_card
    return root, bob, carol, own_card(root)


def post(root, name, title, audience, body="Body.", date="2026-11-20"):
    (root / "content" / "2026").mkdir(parents=True, exist_ok=True)
    (root / "content/2026" / f"{name}.md").write_text(
        f"---\ntitle: {title}\ndate: {date}\naudience: {audience}\n---\n{body}\n")


def build(root, **kw):
    unlocks = []

    def unlock():
        unlocks.append(1)
        return load_identity(root, b"test passphrase")

    report = build_site(root, unlock=unlock, now=kw.pop("now", NOW), **kw)
    assert not report.problems, report.problems
    return report, len(unlocks)


def test_each_friend_reads_exactly_their_posts(social):
    """Each friend's feed holds exactly the posts whose audience names them (by friends,
    group, name or list), read with their own keys; one unlock signs both heads; private
    posts stay off the public pages."""
    root, bob, carol, ada = social
    post(root, "open", "Open to all", "public")
    post(root, "circle", "For friends", "friends")
    post(root, "fam", "Family only", "tribe")
    post(root, "c", "Just Carol", "carol")
    post(root, "both", "Bob and Carol", "[bob, carol]")
    report, unlocks = build(root)
    assert report.heads == 2 and unlocks == 1
    out = root / "build"
    assert titles(bob.read_feed(out, ada)) == {"For friends", "Family only", "Bob and Carol"}
    assert titles(carol.read_feed(out, ada)) == {"For friends", "Just Carol", "Bob and Carol"}
    assert "Family only" not in (out / "index.html").read_text()
    assert "Open to all" in (out / "index.html").read_text()  # public: feed.json, not here


def test_a_stranger_finds_no_feed_and_decrypts_nothing(social):
    """A stranger finds no head for their keys, and no object opens without its key."""
    root, bob, carol, ada = social
    post(root, "circle", "For friends", "friends")
    build(root)
    eve = Friend(3, "eve")
    assert eve.read_feed(root / "build", ada) == {}
    for path in (root / "build" / "o").iterdir():
        with pytest.raises(feeds.FeedAuthError):
            feeds.open_object(path.read_bytes(), feeds.ObjectRef(
                path.name, path.stat().st_size, bytes(32)))


def test_nothing_in_build_names_a_friend(social):
    """No file in build/ holds a friend's or a group's name, nor a private post's title in
    clear."""
    root, bob, carol, ada = social
    post(root, "circle", "Zebra crossing", "friends")
    post(root, "fam", "Quokka party", "tribe")
    build(root)
    for path in (root / "build").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for word in (b"bob", b"Bob", b"carol", b"Carol", b"tribe", b"Zebra", b"Quokka"):
                assert word not in data, (path, word)


def test_an_object_is_encrypted_once_for_all_its_readers(social):
    """A post for two friends is one object in build/o, which both read the same."""
    root, bob, carol, ada = social
    post(root, "circle", "For friends", "friends", body="x" * 2000)
    build(root)
    objects = list((root / "build/o").iterdir())
    assert len(objects) == 1
    assert bob.read_feed(root / "build", ada) == carol.read_feed(root / "build", ada)


def _files_under(root, folder: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (root / "build" / folder).iterdir()}


def _seven_more_friends_and_five_posts(root) -> list[Friend]:  # noqa: ANN001
    """Seven friends besides Bob and Carol, and five posts for all friends."""
    from o2m_pub.friends.friend_store import FriendStore
    others = [Friend(n, f"friend{n}") for n in range(3, 10)]
    store = FriendStore(root)
    for f in others:
        store.add(f.card.name.lower(), f.card, now=NOW)
    for i in range(5):
        post(root, f"p{i}", f"Post {i}", "friends", date=f"2026-11-0{i + 1}")
    return others


def test_threat_55_a_post_for_one_friend_rewrites_every_head(social):
    """THREATS 55: with nine friends, a post for Bob alone writes one object and rewrites
    every file in `f/` (nine real heads and seven dummies: sixteen, a power of two of at
    least 8), so the host cannot tell from the heads who may read it. Nothing else
    appears or goes in `f/`, and each friend still reads exactly their posts."""
    root, bob, carol, ada = social
    others = _seven_more_friends_and_five_posts(root)
    report, _ = build(root)
    heads, objects = _files_under(root, "f"), _files_under(root, "o")
    assert len(heads) == 16 and report.heads == 9
    post(root, "new", "For Bob", "bob")
    report, _ = build(root, now=NOW + dt.timedelta(hours=1))
    after = _files_under(root, "f")
    assert len(after) == 16 and len(after) & (len(after) - 1) == 0
    assert set(after) == set(heads)
    assert [name for name in heads if after[name] == heads[name]] == []
    assert len(set(_files_under(root, "o")) - set(objects)) == 1 and report.heads == 9
    assert titles(bob.read_feed(root / "build", ada)) == {f"Post {i}" for i in range(5)} | {
        "For Bob"}
    for f in [carol, *others]:
        assert titles(f.read_feed(root / "build", ada)) == {f"Post {i}" for i in range(5)}


def test_threat_55_no_head_stands_out_by_its_size(social):
    """THREATS 55: with nine friends, five posts for Bob alone, one build each: after
    every build all sixteen files in `f/` (real heads and dummies) have one size, so the
    host cannot tell from sizes whose feed a post made grow (before, Bob's head alone
    crossed into bigger padding buckets). Each friend still reads exactly their posts."""
    root, bob, carol, ada = social
    others = _seven_more_friends_and_five_posts(root)
    build(root)
    grew = set()
    for k in range(1, 6):
        before = {len(data) for data in _files_under(root, "f").values()}
        post(root, f"b{k}", f"For Bob {k}", "bob", date=f"2026-11-1{k}")
        build(root, now=NOW + dt.timedelta(hours=k))
        sizes = {len(data) for data in _files_under(root, "f").values()}
        assert len(sizes) == 1 and len(_files_under(root, "f")) == 16
        grew |= sizes - before
    assert grew  # Bob's feed did grow past a bucket: every head grew with it
    assert titles(bob.read_feed(root / "build", ada)) == {f"Post {i}" for i in range(5)} | {
        f"For Bob {k}" for k in range(1, 6)}
    for f in [carol, *others]:
        assert titles(f.read_feed(root / "build", ada)) == {f"Post {i}" for i in range(5)}


def test_threat_55_a_friend_who_sees_no_post_has_a_head_of_the_same_size(social):
    """THREATS 55: with nine friends and posts for Bob alone, one build each, the eight
    friends who see no post have heads with no items; every file in `f/` still has one
    size after every build (pad tombstones of no post, §3.4), so the host cannot tell who
    sees nothing. Those friends read no post from their heads (only tombstones of ids no
    post has), Bob reads his, and once one of them gets a post the tombstones are gone."""
    root, bob, carol, ada = social
    others = _seven_more_friends_and_five_posts(root)
    for p in (root / "content" / "2026").glob("p*.md"):
        p.unlink()  # no post for all friends: only Bob has any
    grew = set()
    for k in range(1, 6):
        post(root, f"b{k}", f"For Bob {k}", "bob", body="Words. " * 40 * k,
             date=f"2026-11-1{k}")
        build(root, now=NOW + dt.timedelta(hours=k))
        sizes = {len(data) for data in _files_under(root, "f").values()}
        assert len(sizes) == 1 and len(_files_under(root, "f")) == 16
        grew |= sizes
    assert len(grew) > 1  # Bob's head crossed buckets, and the empty heads with it
    bobs = bob.read_feed(root / "build", ada)
    assert titles(bobs) == {f"For Bob {k}" for k in range(1, 6)}
    for f in [carol, *others]:
        seen = f.read_feed(root / "build", ada)
        assert seen and set(seen.values()) == {None} and not set(seen) & set(bobs)
    post(root, "c", "For Carol", "carol")
    build(root, now=NOW + dt.timedelta(hours=6))
    assert len({len(data) for data in _files_under(root, "f").values()}) == 1
    carols = carol.read_feed(root / "build", ada)
    assert len(carols) == 1 and titles(carols) == {"For Carol"}  # her item holds the pad


def test_no_change_signs_nothing_and_never_asks_for_the_key(social):
    """A build with nothing new for friends writes nothing and never asks for the
    passphrase."""
    root, bob, carol, ada = social
    post(root, "circle", "For friends", "friends")
    build(root)
    report, unlocks = build(root)
    assert unlocks == 0 and report.heads == 0 and report.written == 0


def test_heads_are_resigned_before_they_expire(social):
    """A head close to its expiry is signed again (a new seq, a later expiry), though no
    post changed: one unlock for both heads."""
    root, bob, carol, ada = social
    post(root, "circle", "For friends", "friends")
    build(root)
    report, unlocks = build(root, now=NOW + dt.timedelta(days=24))
    assert report.heads == 2 and unlocks == 1
    secrets = feeds.pairwise_secrets(bytes(bob.box), ada.box_pk, ada.sign_pk,
                                     bytes(bob.sign.verify_key))
    head = feeds.open_head((root / "build" / secrets.head_path).read_bytes(), secrets,
                           author_sign_pk=ada.sign_pk, reader_sign_pk=bytes(bob.sign.verify_key))
    assert head.seq == 2 and head.expires > "2026-12-20"


def test_edit_and_delete_leave_new_versions_and_tombstones(social):
    """An edited post reaches friends as its new version; a deleted one as a tombstone."""
    root, bob, carol, ada = social
    post(root, "a", "First version", "friends")
    post(root, "b", "Doomed", "friends")
    build(root)
    post(root, "a", "Second version", "friends")
    (root / "content/2026/b.md").unlink()
    build(root)
    posts = bob.read_feed(root / "build", ada)
    assert titles(posts) == {"Second version"}
    assert list(posts.values()).count(None) == 1  # Doomed is a tombstone


def test_narrowing_an_audience_cuts_the_removed_friend_off(social):
    """A post narrowed from friends to Bob leaves Carol's feed as a tombstone, not as the
    post."""
    root, bob, carol, ada = social
    post(root, "a", "Shared", "friends")
    build(root)
    post(root, "a", "Shared", "bob")
    build(root)
    assert titles(bob.read_feed(root / "build", ada)) == {"Shared"}
    assert set(carol.read_feed(root / "build", ada).values()) == {None}


def test_a_removed_friend_loses_their_feed(social):
    """A removed friend's head goes from build/, and later posts go to the others only."""
    root, bob, carol, ada = social
    post(root, "a", "Shared", "friends")
    build(root)
    assert run_o2m("friend", "remove", "carol", cwd=root).returncode == 0
    post(root, "b", "Later", "friends")
    build(root)
    assert carol.read_feed(root / "build", ada) == {}
    assert titles(bob.read_feed(root / "build", ada)) == {"Shared", "Later"}


def test_many_posts_page_into_archives_and_read_back_whole(social):
    """200 posts for one friend page into archive pages (build/p), and the friend reads all
    200 back through the chain."""
    root, bob, carol, ada = social
    for i in range(200):
        post(root, f"p{i:03d}", f"Post {i}", "bob", date=f"2026-0{i % 9 + 1}-{i % 28 + 1:02d}")
    build(root)
    assert len(titles(bob.read_feed(root / "build", ada))) == 200
    assert list((root / "build/p").iterdir())


def test_a_site_restored_from_an_old_backup_refuses_to_publish_a_lower_seq(social, tmp_path):
    """THREATS 48: the state folder is older than build/: refuse rather than fork."""
    root, bob, carol, ada = social
    post(root, "a", "One", "friends")
    build(root)
    shutil.copytree(root / ".o2m", tmp_path / "backup")
    post(root, "b", "Two", "friends")
    build(root)
    shutil.rmtree(root / ".o2m")
    shutil.copytree(tmp_path / "backup", root / ".o2m")
    post(root, "c", "Three", "friends")
    with pytest.raises(RollbackRefusedError):
        build_site(root, unlock=lambda: load_identity(root, b"test passphrase"), now=NOW)


def test_a_wrong_passphrase_still_builds_the_public_site_and_keeps_the_feeds(social):
    """The key cannot be unlocked: one clear line, exit 1, the public site is built, and
    friends keep the feeds they had (nothing half-written, nothing deleted)."""
    root, bob, carol, ada = social
    post(root, "a", "One", "friends")
    build(root)
    before = bob.read_feed(root / "build", ada)
    post(root, "b", "Two", "friends")
    post(root, "pub", "Public news", "public")
    for env in ({"O2M_PASSPHRASE": "wrong"}, {"O2M_PASSPHRASE": ""}):
        r = run_o2m("build", cwd=root, env=env)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert "o2m: error: friends' feeds were not updated" in r.stderr
        assert "Public news" in (root / "build/index.html").read_text()
        assert bob.read_feed(root / "build", ada) == before
    assert run_o2m("build", cwd=root).returncode == 0
    assert titles(bob.read_feed(root / "build", ada)) == {"One", "Two"}


def test_the_state_folder_holding_post_keys_is_private(social):
    """.o2m/ keeps the sealed objects' keys: never readable by others, never in build/."""
    root, bob, carol, ada = social
    post(root, "a", "One", "friends")
    build(root)
    assert (root / ".o2m").stat().st_mode & 0o777 == 0o700
    assert (root / ".o2m/build.db").stat().st_mode & 0o077 == 0
    import sqlite3
    keys = [json.loads(v)["ref"]["key"] for (v,) in
            sqlite3.connect(root / ".o2m/build.db").execute("SELECT sealed FROM sealed")]
    assert keys
    for path in (root / "build").rglob("*"):
        if path.is_file():
            assert not any(k.encode() in path.read_bytes() for k in keys)


def test_a_friend_removed_and_added_again_never_sees_the_sequence_go_back(social):
    """Their old feed state is deleted with them; the site's sequence floor is not."""
    root, bob, carol, ada = social
    post(root, "a", "One", "friends")
    build(root)
    post(root, "b", "Two", "friends")
    build(root)
    secrets = feeds.pairwise_secrets(bytes(carol.box), ada.box_pk, ada.sign_pk,
                                     bytes(carol.sign.verify_key))

    def carol_seq():
        return feeds.open_head((root / "build" / secrets.head_path).read_bytes(), secrets,
                               author_sign_pk=ada.sign_pk,
                               reader_sign_pk=bytes(carol.sign.verify_key)).seq
    before = carol_seq()
    assert run_o2m("friend", "remove", "carol", cwd=root).returncode == 0
    build(root)
    r = run_o2m("friend", "add", "carol", card_to_text(carol.card), "--yes", cwd=root)
    assert r.returncode == 0, r.stderr
    build(root)
    assert carol_seq() > before


def test_a_build_killed_after_writing_heads_does_not_reuse_their_numbers(social, tmp_path):
    """The heads are in build/ but the state was not committed (simulated by putting the
    previous state back, as a kill before the commit leaves it, floor excepted): the next
    head still carries a higher sequence number, which Bob's reader takes as fresh, not
    as a second head under a number it has seen (equivocation, PROTOCOL.md §3.5 step 8)."""
    root, bob, carol, ada = social
    post(root, "a", "One", "friends")
    build(root)
    import sqlite3
    db = root / ".o2m/build.db"
    states_before = sqlite3.connect(db).execute("SELECT reader, state FROM feeds").fetchall()
    post(root, "b", "Two", "friends")
    build(root)
    head2 = _bobs_head(root, bob, ada)
    with sqlite3.connect(db) as con:  # the feed states as they were before that build
        con.executemany("INSERT OR REPLACE INTO feeds VALUES (?, ?)", states_before)
    post(root, "c", "Three", "friends")
    build(root)  # no refusal: the floor was recorded before the heads were written
    head3 = _bobs_head(root, bob, ada)
    assert head3.seq > head2.seq
    verdict = feeds.accept_head(head3, stored_seq=head2.seq, stored_signed=head2.signed,
                                now=NOW.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert verdict.fresh
    assert titles(bob.read_feed(root / "build", ada)) == {"One", "Two", "Three"}


def _bobs_head(root, bob, ada) -> feeds.Head:
    """Bob's head as it lies in build/ now, opened with his keys."""
    secrets = feeds.pairwise_secrets(bytes(bob.box), ada.box_pk, ada.sign_pk,
                                     bytes(bob.sign.verify_key))
    return feeds.open_head((root / "build" / secrets.head_path).read_bytes(), secrets,
                           author_sign_pk=ada.sign_pk, reader_sign_pk=bytes(bob.sign.verify_key))


def test_losing_the_state_folder_continues_every_feed_above_the_published_one(social):
    """With .o2m/ gone, the builder reads the sequence number of each head it published
    (in build/) and continues above it: Bob's reader sees a newer head, not a rollback."""
    root, bob, carol, ada = social
    post(root, "a", "One", "friends")
    build(root)
    published = _bobs_head(root, bob, ada)
    shutil.rmtree(root / ".o2m")
    post(root, "b", "Two", "friends")
    report, _ = build(root)
    assert report.heads == 2
    assert _bobs_head(root, bob, ada).seq > published.seq
    assert titles(bob.read_feed(root / "build", ada)) == {"One", "Two"}


def test_a_superseded_object_stays_for_a_grace_period_then_goes(social):
    """A reader mid-fetch may still hold the old head: its objects stay a week."""
    root, bob, carol, ada = social
    post(root, "a", "First version", "friends")
    build(root)
    first = set((root / "build/o").iterdir())
    post(root, "a", "Second version", "friends")
    build(root, now=NOW + dt.timedelta(days=1))
    assert first <= set((root / "build/o").iterdir())  # still there
    build(root, now=NOW + dt.timedelta(days=9))
    assert not first & set((root / "build/o").iterdir())  # gone after the grace period
    assert titles(bob.read_feed(root / "build", ada)) == {"Second version"}


def test_the_plan_of_a_build_without_feeds_cannot_be_changed():
    """The one empty feed plan every friendless build shares is frozen, its collections
    immutable: no build can leave something in it for the next (audit B.8)."""
    import dataclasses

    from o2m_pub.site.build import NO_FEEDS

    with pytest.raises(TypeError):
        NO_FEEDS.states["reader"] = None  # type: ignore[index]
    with pytest.raises(TypeError):
        NO_FEEDS.objects["digest"] = {}  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        NO_FEEDS.max_seq = 1  # type: ignore[misc]
    assert (NO_FEEDS.files, NO_FEEDS.changed, dict(NO_FEEDS.states)) == ((), frozenset(), {})


def _warnings(root) -> list[str]:
    report = build_site(root, unlock=lambda: load_identity(root, b"test passphrase"), now=NOW)
    assert not report.problems, report.problems
    return report.warnings


def test_a_friends_only_post_naming_a_missing_file_warns_as_a_public_one_does(social):
    """`![x](nothere.png)` in a friends-only post: the public post's warning, word for
    word, naming the post's file, once in each build (also one that seals nothing); the
    post still goes to its friends."""
    root, bob, carol, ada = social
    post(root, "pub", "Public", "public", body="![x](nothere.png)")
    post(root, "priv", "Private", "friends", body="![x](nothere.png) ![y](gone/x.png)")
    expected = ["content/2026/pub.md: links to content/2026/nothere.png, which does not exist",
                "content/2026/priv.md: links to content/2026/nothere.png, which does not exist",
                "content/2026/priv.md: links to content/2026/gone/x.png, which does not exist"]
    assert expected == _warnings(root)
    assert "Private" in titles(bob.read_feed(root / "build", ada))
    assert expected == _warnings(root)  # nothing changed, said again


def test_a_friends_only_posts_files_are_named_as_its_markdown_writes_them(social):
    """The names in the sealed post are its references, decoded and normalised (§3.3):
    `../notes/x.png` from notes/ stays as written, not the path from the post's folder
    (`x.png`), which a reader could not match; a file written two ways is listed under
    both names, one object."""
    root, bob, carol, ada = social
    notes = root / "content/2026/notes"
    (notes / "sub").mkdir(parents=True)
    (root / "content/2026/bread").mkdir(exist_ok=True)
    for path in ("notes/x.png", "notes/sub/y.png", "bread/starter.png", "notes/a b.png"):
        (root / "content/2026" / path).write_bytes(b"\x89PNG")
    (notes / "today.md").write_text(
        "---\ntitle: Today\ndate: 2026-11-20\naudience: friends\n---\n"
        "![1](../bread/starter.png) ![2](./x.png) ![3](../notes/x.png) ![4](sub/y.png)"
        " ![5](a%20b.png?v=2)\n\n```\n![not a reference](code.png)\n```\n")
    assert [] == _warnings(root)
    (doc,) = bob.read_feed(root / "build", ada).values()
    assert ["../bread/starter.png", "a b.png", "sub/y.png", "x.png", "../notes/x.png"] == \
        [a["name"] for a in doc["attachments"]]
    assert doc["attachments"][3]["hash"] == doc["attachments"][4]["hash"]


def test_an_unreadable_file_of_a_friends_only_post_is_left_out_with_a_warning(social):
    """A friends-only post's picture the builder may not read is one warning naming
    the post and the file (the build stopped at it), and the post is sealed without
    it; the next build that can read it seals the post again, picture and all."""
    root, bob, carol, ada = social
    (root / "content/2026").mkdir(parents=True, exist_ok=True)
    view = root / "content/2026/view.png"
    view.write_bytes(b"\x89PNG a view")
    post(root, "trip", "Trip", "friends", body="![the view](view.png)")
    with locked(view):
        result = o2m_unprivileged("build", cwd=root)
    assert 0 == result.returncode, result.stderr
    assert ["o2m: warning: content/2026/trip.md: cannot read content/2026/view.png "
            "(permission denied), not published: check who may read it, then build again"
            ] == result.stderr.splitlines()
    (doc,) = bob.read_feed(root / "build", ada).values()
    assert (doc["title"], doc.get("attachments", [])) == ("Trip", [])
    assert [] == _warnings(root)
    (doc,) = bob.read_feed(root / "build", ada).values()
    assert ["view.png"] == [a["name"] for a in doc["attachments"]]


def test_a_file_no_reader_could_name_is_left_out_with_a_warning(social):
    """A file whose name has a backslash cannot be an attachment (§3.3: a reader refuses
    the whole post): the build says so, and the post goes without it."""
    root, bob, carol, ada = social
    (root / "content/2026").mkdir(parents=True, exist_ok=True)
    (root / "content/2026/a\\b.png").write_bytes(b"\x89PNG")
    (root / "content/2026/ok.png").write_bytes(b"\x89PNG")
    post(root, "p", "P", "friends", body="![1](a%5Cb.png) ![2](ok.png)")
    assert ["content/2026/p.md: content/2026/a\\b.png is not sent to friends as 'a%5Cb.png':"
            " an attachment's name ('a\\\\b.png') may have no backslash or control character"
            " and at most 255 bytes"] == _warnings(root)
    (doc,) = bob.read_feed(root / "build", ada).values()
    assert ["ok.png"] == [a["name"] for a in doc["attachments"]]
