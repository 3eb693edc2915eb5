"""THREATS.md 46: a build killed (SIGKILL) before any one of its writes leaves a
readable site: every file is the old or the new version, whole, and every link from
the entry points (home page, feeds, sitemap) leads to a file that exists. The next
build repairs the rest.

THREATS.md 48: a full disk (ENOSPC) during a build publishes nothing partial and
leaves the key file valid; a builder whose state was restored from an older backup
refuses to publish a lower sequence number."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import run_o2m
from support.system import try_mount_tmpfs

LINK_RE = re.compile(rb'(?:href|src)="([^"#?]+)')


def _files(build: Path) -> dict[str, bytes]:
    return {p.relative_to(build).as_posix(): p.read_bytes()
            for p in build.rglob("*") if p.is_file() and not p.name.startswith(".~o2m-")}


def _reachable_links_resolve(build: Path, base: str) -> list[str]:
    """Crawl from the entry points; return links that point at missing files."""
    broken, seen = [], set()
    todo = ["index.html", "feed.json", "atom.xml", "sitemap.xml"]
    while todo:
        page = todo.pop()
        if page in seen:
            continue
        seen.add(page)
        path = build / page
        if not path.is_file():
            broken.append(page)
            continue
        if not page.endswith(".html"):
            data = path.read_bytes()
            for url in re.findall(rb"(https://test\.example/[^\"<&\s\\]*)", data):
                rel = url.decode()[len(base):]
                todo.append(rel + "index.html" if rel == "" or rel.endswith("/") else rel)
            continue
        for link in LINK_RE.findall(path.read_bytes()):
            link = link.decode()
            if urlsplit(link).scheme:
                continue
            target = (Path(page).parent / link).as_posix()
            target = str(Path(target)).replace("\\", "/")
            parts = []
            for part in target.split("/"):
                if part == "..":
                    parts.pop()
                elif part != ".":
                    parts.append(part)
            todo.append("/".join(parts))
    return broken


def _make_site(root: Path) -> None:
    (root / "content/2026").mkdir(parents=True)
    (root / "o2m.toml").write_text('[site]\nname = "T"\nurl = "https://test.example/"\n'
                                   'default_audience = "public"\nposts_per_page = 2\n')
    for i in range(5):
        (root / f"content/2026/p{i}.md").write_text(
            f"---\ntitle: Old {i}\ndate: 2026-01-0{i + 1}\ntags: [t{i % 2}]\n---\nOld body {i}\n")
    (root / "content/2026/gone.md").write_text("---\ntitle: Gone\ndate: 2026-01-09\n"
                                                "tags: [solo]\n---\nbye\n")


def _change_site(root: Path) -> None:
    (root / "content/2026/p1.md").write_text("---\ntitle: New 1\ndate: 2026-01-02\n"
                                              "tags: [t1, t5]\n---\nNew body\n")
    (root / "content/2026/gone.md").unlink()
    for name, day in (("n1", 10), ("n2", 11), ("n3", 12)):
        (root / f"content/2026/{name}.md").write_text(
            f"---\ntitle: Added {name}\ndate: 2026-01-{day}\ntags: [t5]\n---\n![i](../img.svg)\n")
    (root / "content/img.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')


def _add_friends(root: Path):
    """An identity and one friend whose feed gets a private post (returns the friend)."""
    import datetime as dt

    from nacl.pwhash import argon2id
    from support.friend import Friend

    from o2m_pub.config import load
    from o2m_pub.friends.friend_store import FriendStore
    from o2m_pub.friends.identity import create_owner

    now = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    create_owner(root, load(root), b"test passphrase", now=now,
                 opslimit=argon2id.OPSLIMIT_INTERACTIVE, memlimit=argon2id.MEMLIMIT_INTERACTIVE)
    bob = Friend(1, "bob")
    FriendStore(root).add("bob", bob.card, now=now)
    (root / "content/2026/secret.md").write_text(
        "---\ntitle: Secret 1\ndate: 2026-01-03\naudience: friends\n---\nfor bob\n")
    return bob


# Files whose bytes depend on when they were made: friends' feeds (fresh nonces) and
# feed.json.sig (its time and sequence number, PROTOCOL.md §1.4).
TIMED = ("f/", "o/", "p/", "feed.json.sig")


def _public_feed_signed(root: Path) -> None:
    """A site with keys signs the feed.json it publishes. (A build killed between the
    two writes leaves the signature of the other feed.json, which readers refuse
    until the next build: §1.4 tells them to ask again then.)"""
    from o2m_pub.friends.identity import own_card
    from o2m_pub.protocol.feed_signature import check_feed, open_feed_signature
    card = own_card(root)
    sig = root / "build/feed.json.sig"
    if card is None or not sig.exists():
        return
    signature = open_feed_signature(sig.read_bytes(), feed_pk=card.feed_pk,
                                    author_sign_pk=card.sign_pk)
    check_feed(signature, (root / "build/feed.json").read_bytes())


def _feed_is_whole(build: Path, bob, root: Path) -> None:
    """Every object and page the published head references exists and opens."""
    from o2m_pub.friends.identity import own_card
    posts = bob.read_feed(build, own_card(root))  # raises if anything is missing or bad
    assert posts


@pytest.mark.parametrize("with_friends", [False, True], ids=["public", "with-friends"])
def test_threat_46_kill_before_each_write_leaves_a_whole_site(tmp_path, with_friends):
    """SIGKILL before each write of a build in turn (with and without friends): every public
    file is the old or the new version, links from the entry points resolve, the friend's
    feed opens, and the next build repairs the site into what an uninterrupted build makes."""
    base = tmp_path / "base"
    base.mkdir()
    _make_site(base)
    bob = _add_friends(base) if with_friends else None
    assert run_o2m("build", cwd=base).returncode == 0
    old = _files(base / "build")
    _change_site(base)
    if with_friends:
        (base / "content/2026/secret.md").write_text(
            "---\ntitle: Secret 2\ndate: 2026-01-03\naudience: friends\n---\nnew\n")
        (base / "content/2026/secret2.md").write_text(
            "---\ntitle: Secret 3\ndate: 2026-01-04\naudience: bob\n---\nmore\n")
    new, writes = _reference_build(base, tmp_path / "reference")
    assert writes > 10

    for k in range(1, writes + 1):
        trial = tmp_path / f"kill-{k}"
        shutil.copytree(base, trial)
        killed = run_o2m("build", cwd=trial, env={"O2M_FAULT": f"kill:{k}"})
        assert killed.returncode == -signal.SIGKILL, (k, killed.stderr)
        now = _files(trial / "build")
        for name, data in now.items():
            if not name.startswith(TIMED):  # feeds: fresh nonces every run
                assert data in (old.get(name), new.get(name)), (k, name)
        assert _reachable_links_resolve(trial / "build", "https://test.example/") == [], k
        if bob is not None:
            _feed_is_whole(trial / "build", bob, trial)
        repaired = run_o2m("build", cwd=trial)
        assert repaired.returncode == 0, repaired.stderr
        if bob is not None:
            _feed_is_whole(trial / "build", bob, trial)
        public = lambda files: {n: d for n, d in files.items()  # noqa: E731
                                if not n.startswith(TIMED)}
        assert public(_files(trial / "build")) == public(new), k
        _public_feed_signed(trial)
        assert not [p for p in (trial / "build").rglob(".~o2m-*")], k
        shutil.rmtree(trial)


def _reference_build(base: Path, reference: Path) -> tuple[dict[str, bytes], int]:
    """What an uninterrupted build of `base` writes, on a copy: its files and count."""
    shutil.copytree(base, reference)
    done = run_o2m("build", cwd=reference)
    assert done.returncode == 0
    return _files(reference / "build"), int(re.search(r"wrote (\d+) files", done.stdout).group(1))


def _public(files: dict[str, bytes]) -> dict[str, bytes]:
    """The public files (friends' feeds get fresh nonces on every build)."""
    return {n: d for n, d in files.items() if not n.startswith(TIMED)}


def test_threat_48_enospc_during_a_build_publishes_nothing_partial_and_keeps_the_key_valid(
        tmp_path):
    """The disk fills up at the first, a middle and the last write of a build with a
    friend: one line, exit 1, every file old or new and whole, links resolve, the
    friend's feed opens, the key file is untouched and unlocks; the next build ends
    the job."""
    from o2m_pub.friends.identity import KEY_FILE, load_identity

    base = tmp_path / "base"
    base.mkdir()
    _make_site(base)
    bob = _add_friends(base)
    assert run_o2m("build", cwd=base).returncode == 0
    old = _files(base / "build")
    key = (base / KEY_FILE).read_bytes()
    _change_site(base)
    (base / "content/2026/secret.md").write_text(
        "---\ntitle: Secret 2\ndate: 2026-01-03\naudience: friends\n---\nnew\n")
    new, writes = _reference_build(base, tmp_path / "reference")

    for k in sorted({1, writes // 2, writes}):
        trial = tmp_path / f"enospc-{k}"
        shutil.copytree(base, trial)
        full = run_o2m("build", cwd=trial, env={"O2M_FAULT": f"enospc:{k}"})
        assert full.returncode == 1, (k, full.stderr)
        assert "No space left on device" in full.stderr and "Traceback" not in full.stderr
        now = _files(trial / "build")
        for name, data in _public(now).items():
            assert data in (old.get(name), new.get(name)), (k, name)
        assert not [p for p in (trial / "build").rglob(".~o2m-*")], k
        assert _reachable_links_resolve(trial / "build", "https://test.example/") == [], k
        _feed_is_whole(trial / "build", bob, trial)
        assert (trial / KEY_FILE).read_bytes() == key
        assert load_identity(trial, b"test passphrase")
        repaired = run_o2m("build", cwd=trial)
        assert repaired.returncode == 0, repaired.stderr
        assert _public(_files(trial / "build")) == _public(new), k
        _feed_is_whole(trial / "build", bob, trial)
        shutil.rmtree(trial)


def test_threat_48_a_real_full_disk_during_a_build_publishes_nothing_partial(tmp_path):
    """The same on a real full file system (a small tmpfs holding the whole site; needs
    root with mount rights, else skips): a post's attachment fits in content/ but its
    copy in build/ does not. One line, exit 1, every public file old or new and whole,
    no temporary left, links resolve, the friend's feed opens, the key file is
    untouched and unlocks; once the disk has room, the next build ends the job."""
    from o2m_pub.friends.identity import KEY_FILE, load_identity

    disk = tmp_path / "disk"
    if not try_mount_tmpfs(disk, "2m"):
        pytest.skip("cannot mount a small tmpfs here (needs root with mount rights)")
    try:
        site = disk / "site"
        site.mkdir()
        _make_site(site)
        bob = _add_friends(site)
        assert run_o2m("build", cwd=site).returncode == 0
        old = _files(site / "build")
        key = (site / KEY_FILE).read_bytes()
        _change_site(site)
        bundle = site / "content/2026/big"
        bundle.mkdir()
        (bundle / "index.md").write_text("---\ntitle: Big\ndate: 2026-01-20\n---\n"
                                         "[the data](big.bin)\n")
        (bundle / "big.bin").write_bytes(os.urandom(shutil.disk_usage(disk).free // 2 + 50_000))
        new, _ = _reference_build(site, tmp_path / "reference")  # on a disk with room

        full = run_o2m("build", cwd=site)
        assert full.returncode == 1, full.stderr
        assert "No space left on device" in full.stderr and "Traceback" not in full.stderr
        for name, data in _public(_files(site / "build")).items():
            assert data in (old.get(name), new.get(name)), name
        assert not [p for p in (site / "build").rglob(".~o2m-*")]
        assert _reachable_links_resolve(site / "build", "https://test.example/") == []
        _feed_is_whole(site / "build", bob, site)
        assert (site / KEY_FILE).read_bytes() == key
        assert load_identity(site, b"test passphrase")

        remount = subprocess.run(["mount", "-o", "remount,size=16m", str(disk)],
                                 capture_output=True, text=True)
        assert remount.returncode == 0, remount.stderr
        repaired = run_o2m("build", cwd=site)
        assert repaired.returncode == 0, repaired.stderr
        assert _public(_files(site / "build")) == _public(new)
        _feed_is_whole(site / "build", bob, site)
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_threat_48_a_builder_restored_with_a_lower_seq_refuses_to_publish(tmp_path):
    """.o2m/ restored from a backup older than build/: `o2m build` says so in one line,
    exits 1, and the friend's published head stays as it was (no fork of the feed)."""
    root = tmp_path / "site"
    root.mkdir()
    _make_site(root)
    bob = _add_friends(root)
    assert run_o2m("build", cwd=root).returncode == 0
    backup = tmp_path / "backup"
    shutil.copytree(root / ".o2m", backup)
    (root / "content/2026/secret.md").write_text(
        "---\ntitle: Secret 2\ndate: 2026-01-03\naudience: friends\n---\nnewer\n")
    assert run_o2m("build", cwd=root).returncode == 0
    heads = {p: p.read_bytes() for p in (root / "build/f").rglob("*") if p.is_file()}
    assert heads
    shutil.rmtree(root / ".o2m")
    shutil.copytree(backup, root / ".o2m")
    (root / "content/2026/secret.md").write_text(
        "---\ntitle: Secret 3\ndate: 2026-01-03\naudience: friends\n---\nnewest\n")
    refused = run_o2m("build", cwd=root)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("o2m: error:") and "already carries sequence" in refused.stderr
    assert {p: p.read_bytes() for p in (root / "build/f").rglob("*") if p.is_file()} == heads
    from o2m_pub.friends.identity import own_card
    assert {p["title"] for p in bob.read_feed(root / "build", own_card(root)).values()
            if p} == {"Secret 2"}
