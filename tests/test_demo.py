"""`o2m_pub.demo`: the demo's world is made from the sample files (the whole loop, with
servers and fetches, is tests/cli/test_cli.py's)."""

from __future__ import annotations

import datetime as dt

import pytest

from o2m_pub.demo import DEMO_MARKER, PEOPLE, demo_content, make_world, parse_story
from o2m_pub.friends.friend_store import FriendStore


def test_make_world_copies_each_persons_tree_and_groups(tmp_path):
    """Each site's content/ is exactly that person's sample tree dated for `now` (init's
    hello post gone), each has the other two as friends, and Ada keeps Mum in "family"."""
    now = dt.datetime(2027, 8, 3, 20, 15, tzinfo=dt.timezone.utc)
    roots = make_world(tmp_path / "demo", now=now, ports=[4431, 4432, 4433])
    assert (tmp_path / "demo" / DEMO_MARKER).exists()
    for person in PEOPLE:
        content = roots[person.slug] / "content"
        found = {p.relative_to(content).as_posix(): p.read_bytes()
                 for p in content.rglob("*") if p.is_file()}
        assert found == demo_content(person, now), person.slug
        store = FriendStore(roots[person.slug])
        assert sorted(f.name for f in store.list()) == sorted(p.slug for p in PEOPLE if p is not person)
    assert FriendStore(roots["ada"]).groups() == {"family": ("mum",)}
    assert FriendStore(roots["sam"]).groups() == {}


@pytest.mark.parametrize("text, message", [
    ('anchor = "yesterday"\n[[people]]\nslug = "a"', "anchor"),
    ("anchor = 2026-01-01T10:00:00\n", "anchor"),
    ('anchor = 2026-01-01\n[[people]]\nslug = "a"\n', "needs slug, site_name"),
])
def test_parse_story_names_what_is_wrong(text, message):
    """A broken demo.toml says which field is wrong, for whoever edits it."""
    with pytest.raises(ValueError, match=message):
        parse_story(text)
