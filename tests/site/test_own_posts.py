"""`site.own_posts`: one of the owner's posts found by the short id their readers see, or
by the reference a reply names (PROTOCOL.md §3.4, §4.1), on a real site made by `o2m
init`, with no build and no passphrase."""

from __future__ import annotations

from support.desk import make_site

from o2m_pub.friends.identity import item_id_key, own_sign_pk
from o2m_pub.friends.private_feeds import item_id
from o2m_pub.protocol.canonical import b64u_encode
from o2m_pub.reader.model import short_id_for
from o2m_pub.site.own_posts import OwnPosts


def test_a_post_is_found_by_its_readers_id_and_by_its_reference(tmp_path):
    """The id is the one a friend's reader makes of the owner's key and the item id;
    a unique prefix will do; the reference names it; another author's reference and an
    unknown id name nothing; a post the build would refuse is found with its problem."""
    root = make_site(tmp_path)
    folder = root / "content" / "2026"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "garden.md").write_text("---\ntitle: Garden update\ndate: 2026-11-20\n"
                                      "audience: friends\n---\nThe tomatoes are in.\n")
    (folder / "broken.md").write_text("---\ntitle: [unclosed\n---\nText.\n")
    key = b64u_encode(own_sign_pk(root))
    post_id = item_id(item_id_key(root), "content/2026/garden.md")
    short = short_id_for(key, post_id)
    own = OwnPosts.of_site(root, short_id_for)
    found = own.find(short[:5])
    assert (found.title, found.ref, found.short_id, found.audience) == (
        "Garden update", f"o2m:{key}/{post_id}", short, ("friends",))
    assert found.thread_root == found.ref and found.body.strip() == "The tomatoes are in."
    assert own.by_ref(f"o2m:{key}/{post_id}") == found
    assert own.by_ref(f"o2m:{'A' * 43}/{post_id}") is None
    assert own.title_of(post_id) == "Garden update"
    assert own.find("zzzzzzzzzz") is None and own.title_of("A" * 22) is None
    broken_id = item_id(item_id_key(root), "content/2026/broken.md")
    broken = own.by_id(broken_id)
    assert broken.problem and broken.date is None
