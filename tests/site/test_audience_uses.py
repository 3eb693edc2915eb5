"""Where a friend's name is used as an audience, and the careful rewrite a rename offers
(site/audience_uses.py): only the name, only in the audience, and only when the post
or o2m.toml reads the same otherwise."""

from __future__ import annotations

import zoneinfo

import pytest

from o2m_pub.config import parse_config
from o2m_pub.site.audience_uses import (
    config_uses,
    find_uses,
    post_uses,
    rewrite_config,
    rewrite_post,
)

TZ = zoneinfo.ZoneInfo("Europe/Berlin")
SRC = "content/2026/p.md"


def _post(audience: str, body: str = "Hello bob.") -> bytes:
    return f"---\ntitle: bob's day\ndate: 2026-03-01\naudience: {audience}\n---\n{body}\n".encode()


@pytest.mark.parametrize(("audience", "expected"), [
    ("bob", "robert"),
    ('"bob"', '"robert"'),
    ("[carol, bob]", "[carol, robert]"),
    ("[bob, bob-two]", "[robert, bob-two]"),
])
def test_a_rename_changes_the_name_in_the_audience_alone(audience, expected):
    """The name, as a whole word, in the audience line; the title and the body that say
    "bob" too, and a longer name that starts with it, stay as written."""
    data = _post(audience)
    assert post_uses(data, SRC, "bob", TZ) == 4
    assert rewrite_post(data, SRC, "bob", "robert", TZ) == _post(expected)


def test_a_block_list_is_changed_line_by_line_crlf_kept():
    """A block list under `audience:` (Windows line ends kept)."""
    data = (b"---\r\ntitle: T\r\ndate: 2026-03-01\r\naudience:\r\n  - bob\r\n  - carol\r\n"
            b"---\r\nx\r\n")
    assert post_uses(data, SRC, "bob", TZ) == 4
    assert rewrite_post(data, SRC, "bob", "robert", TZ) == data.replace(b"- bob", b"- robert")


def test_a_post_that_does_not_name_the_friend_is_not_a_use():
    """bobby is not bob; a post without `audience:` takes the default (o2m.toml's use)."""
    assert post_uses(_post("[bobby, friends]"), SRC, "bob", TZ) is None
    assert post_uses(b"---\ntitle: T\ndate: 2026-03-01\n---\nbob\n", SRC, "bob", TZ) is None


def test_a_post_that_does_not_parse_is_listed_but_never_rewritten():
    """A broken post (a bad date) that names the friend is found by its audience line's
    words, and left for the owner: no rewrite can be checked on it."""
    data = b"---\ntitle: T\ndate: someday\naudience: bob\n---\nx\n"
    assert post_uses(data, SRC, "bob", TZ) == 4
    assert rewrite_post(data, SRC, "bob", "robert", TZ) is None


def test_a_rewrite_that_would_change_more_than_the_audience_is_refused():
    """An alias: `audience: &who bob` used by another field too. Renaming it would
    change that field as well, so the rewrite is refused."""
    data = b"---\ntitle: T\ndate: 2026-03-01\naudience: &who bob\nsummary: *who\n---\nx\n"
    assert post_uses(data, SRC, "bob", TZ) == 4
    assert rewrite_post(data, SRC, "bob", "robert", TZ) is None


TOML = """[site]
name = "A"
author = "A"
url = "https://a.example/"
default_audience = ["bob", "carol"]

[groups]
family = [
  "carol",
  "bob",  # bob, since 2020
]
work = ["bobby"]
"""


def test_o2m_toml_uses_are_its_groups_and_default_audience():
    """default_audience and a group spread over lines; "bobby" is another name."""
    config = parse_config(TOML.encode())
    assert [(u.line, u.what) for u in config_uses(TOML, config, "bob")] == [
        (5, "default_audience"), (10, "group family")]
    changed = rewrite_config(TOML, config, "bob", "robert")
    assert changed == TOML.replace('["bob", "carol"]', '["robert", "carol"]').replace(
        '  "bob",  # bob', '  "robert",  # bob')
    after = parse_config(changed.encode())
    assert after.groups == {"family": ("carol", "robert"), "work": ("bobby",)}
    assert after.default_audience == ("robert", "carol")


def test_find_uses_lists_o2m_toml_then_the_posts_in_order(tmp_path):
    """The site's uses, o2m.toml first, posts by path; a post file without the name's
    bytes is not parsed at all (a big site's rename stays quick)."""
    (tmp_path / "o2m.toml").write_text(TOML, encoding="utf-8")
    for rel, audience in (("content/b.md", "bob"), ("content/a.md", "[x, bob]"),
                          ("content/c.md", "carol")):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_bytes(_post(audience, body="x"))
    uses = find_uses(tmp_path, parse_config(TOML.encode()), "bob")
    assert [str(u) for u in uses] == ["o2m.toml:5", "o2m.toml:10", "content/a.md:4",
                                      "content/b.md:4"]
