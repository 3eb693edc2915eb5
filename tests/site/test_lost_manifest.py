"""A build with no record of build/ (a new or deleted .o2m/build.db, as o2m's own hint
for a damaged one says to do) does not trust what is there: every file it did not make
goes, as a normal build removes the outputs it no longer makes; what is not the public
site's (dotfiles, friends' sealed files) stays."""

from __future__ import annotations

import json

import pytest
from conftest import run_o2m
from support.friend import Friend, titles

from o2m_pub.protocol.cards import card_to_text

BOB = Friend(1, "bob")


@pytest.fixture
def ada(tmp_path):
    """A site made by `o2m init` with Bob as a friend, a public diary and a post for
    friends, built."""
    root = tmp_path / "ada"
    assert run_o2m("init", str(root), "--name", "Ada", "--url", "https://ada.example/",
                   cwd=tmp_path).returncode == 0
    added = run_o2m("friend", "add", "bob", card_to_text(BOB.card), "--yes", cwd=root)
    assert added.returncode == 0, added.stderr
    write(root, "diary", "Diary", "public")
    write(root, "secret", "Secret", "friends")
    built = run_o2m("build", cwd=root)
    assert built.returncode == 0, built.stderr
    return root


def write(root, name: str, title: str, audience: str) -> None:
    (root / "content/2026" / f"{name}.md").write_text(
        f"---\ntitle: {title}\ndate: 2026-11-20\naudience: {audience}\n---\nWords.\n")


def public_mentions(build, slug: str) -> list[str]:
    """The public files of `build` that name the post `slug`, or are its pages."""
    return sorted(p.relative_to(build).as_posix() for p in build.rglob("*")
                  if p.is_file() and not p.relative_to(build).as_posix().startswith(
                      ("f/", "o/", "p/"))
                  and (f"2026/{slug}/" in p.relative_to(build).as_posix()
                       or f"2026/{slug}/".encode() in p.read_bytes()))


def test_a_post_made_private_after_the_state_is_lost_leaves_build_and_the_host(ada, tmp_path):
    """PRIVACY (newcomer trial): public post built and published, .o2m/build.db deleted,
    the post made friends-only, built again: its page and every mention of it are gone
    from build/, so `o2m publish` deletes them from the host too. Bob still reads both
    posts; the card, an ACME challenge (a dotfile) and files outside build/ stay."""
    build, www = ada / "build", tmp_path / "www"
    assert public_mentions(build, "diary")
    assert run_o2m("publish", str(www), cwd=ada).returncode == 0
    assert (www / "2026/diary/index.html").is_file()
    challenge = build / ".well-known/acme-challenge/token"
    challenge.parent.mkdir(parents=True)
    challenge.write_text("ACME")
    beside = ada / "notes.txt"
    beside.write_text("mine")

    (ada / ".o2m/build.db").unlink()
    write(ada, "diary", "Diary", "friends")
    built = run_o2m("build", cwd=ada)
    assert built.returncode == 0, built.stderr
    assert [] == public_mentions(build, "diary")
    assert "no build recorded (.o2m/build.db was new or deleted): removed" in built.stderr
    assert {"Diary", "Secret"} == titles(BOB.read_feed(build, _card(ada)))
    assert (build / ".well-known/o2m-card.json").is_file()
    assert "ACME" == challenge.read_text() and "mine" == beside.read_text()
    published = run_o2m("publish", str(www), cwd=ada)
    assert published.returncode == 0, published.stderr
    assert not (www / "2026/diary").exists()
    assert "2026/diary/" not in (www / "feed.json").read_text()


def test_a_file_a_person_put_in_build_is_kept_aside_not_deleted(ada):
    """With no record of build/, a file no build makes leaves the site, but a person may
    have put it there (a host's verification file, a CNAME): it is moved into the state
    folder under the same path, not deleted (it was lost for good, found by a review),
    and the warning says where; the next build, with a record, leaves a file put back
    alone."""
    build = ada / "build"
    (build / "google1234.html").write_text("google-site-verification: 1234")
    (build / "notes").mkdir()
    (build / "notes/todo.txt").write_text("mine")
    (ada / ".o2m/build.db").unlink()
    built = run_o2m("build", cwd=ada)
    assert built.returncode == 0, built.stderr
    assert not (build / "google1234.html").exists() and not (build / "notes/todo.txt").exists()
    (kept,) = (ada / ".o2m").glob("unrecorded-*")
    assert f"kept in .o2m/{kept.name}/: put back any that is yours" in built.stderr
    assert "google-site-verification: 1234" == (kept / "google1234.html").read_text()
    assert "mine" == (kept / "notes/todo.txt").read_text()
    (kept / "google1234.html").rename(build / "google1234.html")
    again = run_o2m("build", cwd=ada)
    assert (0, "") == (again.returncode, again.stderr)
    assert (build / "google1234.html").is_file()


def test_a_lost_state_with_nothing_changed_removes_nothing(ada):
    """The same site built again without its record: every file is one this build makes
    (or a friend's sealed file): nothing is removed, nothing warned."""
    build = ada / "build"
    before = {p.relative_to(build).as_posix() for p in build.rglob("*") if p.is_file()}
    (ada / ".o2m/build.db").unlink()
    built = run_o2m("build", cwd=ada)
    assert (0, "") == (built.returncode, built.stderr)
    after = {p.relative_to(build).as_posix() for p in build.rglob("*") if p.is_file()}
    assert before <= after
    items = json.loads((build / "feed.json").read_text())["items"]
    assert ["Hello, world", "Diary"] == [i["title"] for i in items]


def test_a_symlink_in_build_is_neither_followed_nor_removed(ada, tmp_path):
    """The clean-up looks only inside build/: a symlink there (o2m never makes one) is
    left as it is, and what it points to is never looked into."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.html").write_text("not o2m's")
    (ada / "build/linked").symlink_to(outside)
    (ada / ".o2m/build.db").unlink()
    assert run_o2m("build", cwd=ada).returncode == 0
    assert (ada / "build/linked").is_symlink()
    assert "not o2m's" == (outside / "keep.html").read_text()


def _card(root):
    from o2m_pub.friends.identity import own_card
    return own_card(root)
