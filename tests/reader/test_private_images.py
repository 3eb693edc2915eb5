"""Images of a friends-only post, end to end: the author's real build names each file as
the post's Markdown refers to it (PROTOCOL.md §3.3), a friend's real fetch over TLS
stores and renders the post, and the friend's desk shows every image inside the text,
none left to the gallery below it.

Before, the build named a file by its path from the post's folder on the author's disk
(`../bread/starter.png` written in notes/ as `../bread/starter.png`, but
`../notes/back.png` as `back.png`), which the reader, knowing only the reference, could
not match: the desk showed `<img alt>` with no picture and the picture in the gallery."""

from __future__ import annotations

import re
from html import unescape

import pytest
from support.data import PNG
from support.desk import Client, make_app, text
from support.people import Person, server_context

from o2m_pub.friends.identity import load_identity
from o2m_pub.reader.store import ReaderStore
from o2m_pub.site.build import build_site

# How the post (content/2026/notes/today.md) writes each image -> the file, from
# content/2026/, and the attachment name a reader looks for.
IMAGES = [
    ("../bread/starter.png", "bread/starter.png", "../bread/starter.png"),  # another bundle
    ("beside.png", "notes/beside.png", "beside.png"),
    ("./dot.png", "notes/dot.png", "dot.png"),
    ("sub/deeper.png", "notes/sub/deeper.png", "sub/deeper.png"),
    ("../notes/back.png", "notes/back.png", "../notes/back.png"),  # out and back in
    ("../../2026/bread/rye.png", "bread/rye.png", "../../2026/bread/rye.png"),
    ("my%20photo.png", "notes/my photo.png", "my photo.png"),
    ("<with space.png>", "notes/with space.png", "with space.png"),
    ("caf%C3%A9.png", "notes/café.png", "café.png"),
    ("100%25.png", "notes/100%.png", "100%.png"),
    ("a%2520b.png", "notes/a%20b.png", "a%20b.png"),  # "%20" in the file's own name
    ("what%3F.png", "notes/what?.png", "what?.png"),
    ("%231.png", "notes/#1.png", "#1.png"),
    ("note%3A1.png", "notes/note:1.png", "note:1.png"),
    ("\U0001f469\u200d\U0001f373.png", "notes/\U0001f469\u200d\U0001f373.png",
     "\U0001f469\u200d\U0001f373.png"),  # an emoji joined by U+200D, shown as is
    ("dot.png?v=2", "notes/dot.png", "dot.png"),  # a query: the same file, the same name
    ("../notes/beside.png", "notes/beside.png", "../notes/beside.png"),  # one file, 2 ways
]


@pytest.fixture
def pair(tmp_path, ca):
    """Ada and Bob, friends both ways, each served by a TLS server on 127.0.0.1."""
    authority, bundle = ca
    context = server_context(authority)
    ada, bob = Person(tmp_path, "ada", context), Person(tmp_path, "bob", context)
    ada.befriend(bob)
    bob.befriend(ada)
    yield ada, bob, bundle
    for p in (ada, bob):
        p.server.stop()


def _write_post(ada: Person, body: str) -> None:
    folder = ada.root / "content/2026"
    for _, path, _ in IMAGES:
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(PNG)
    (folder / "notes/today.md").write_text(
        "---\ntitle: Today\ndate: 2026-11-20\naudience: friends\n---\n" + body + "\n",
        encoding="utf-8")


def _build(ada: Person) -> list[str]:
    report = build_site(ada.root, unlock=lambda: load_identity(ada.root, b"test passphrase"))
    assert report.problems == []
    return report.warnings


def _images(html: str) -> list[dict[str, str]]:
    return [{k: unescape(v) for k, v in re.findall(r'(\w+)="([^"]*)"', tag)}
            for tag in re.findall(r"<img\b[^>]*>", html)]


def test_every_relative_image_of_a_friends_only_post_shows_in_its_text(pair):
    """Whatever way the Markdown writes an image of content/ (same folder, `./`, a
    subfolder, another bundle by `../`, out of its folder and back, percent-encoded, with
    spaces, `%`, `?`, `#`, `:` or a joiner in the file's name, a query), the friend's
    stored rendering and desk page show it in the text, and no image is left to the
    gallery. A file written two ways goes once, under both names."""
    ada, bob, bundle = pair
    body = "\n\n".join(f"![i{n}]({ref})" for n, (ref, _, _) in enumerate(IMAGES))
    _write_post(ada, body)
    assert _build(ada) == []
    assert bob.fetch(bundle, "ada")["ada"].new == 1
    with ReaderStore.open(bob.root) as store:
        (post,) = store.timeline(limit=10)
        names = [a["name"] for a in post.attachments]
        assert sorted({name for _, _, name in IMAGES}) == sorted(names)
        assert len({a["hash"] for a in post.attachments}) == len({p for _, p, _ in IMAGES})
        shown = _images(post.rendered)
        assert [f"i{n}" for n in range(len(IMAGES))] == [i["alt"] for i in shown]
        for image, (_, _, name) in zip(shown, IMAGES):
            assert f"/file/{post.short_id}/{names.index(name)}" == image.get("src"), image
        assert sorted(set(names)) == sorted(post.rendered_images)
        short_id = post.short_id
    page = _desk_page(bob, short_id)
    assert 'class="gallery"' not in page
    body_images = _images(page.split('id="body">', 1)[1].split("</article>")[0])
    assert len(IMAGES) == len(body_images)
    assert all(i.get("src", "").startswith("/file/") for i in body_images), body_images


def _desk_page(person, short_id: str) -> str:  # noqa: ANN001 - a Person
    """The text of the post's page on the person's desk, signed in."""
    app = make_app(person.root)
    try:
        client = Client(app)
        client.sign_in()
        return text(client.get(f"/post/{short_id}"))
    finally:
        app.reader.close()
        app.desk.close()


def test_a_missing_image_of_a_friends_only_post_warns_and_the_rest_still_show(pair):
    """The build says which file is missing, in the public warning's words, and the
    friend still gets the post with the images that are there."""
    ada, bob, bundle = pair
    _write_post(ada, "![here](../bread/starter.png)\n\n![gone](../bread/gone.png)")
    assert _build(ada) == ["content/2026/notes/today.md: links to content/2026/bread/gone.png,"
                           " which does not exist"]
    bob.fetch(bundle, "ada")
    with ReaderStore.open(bob.root) as store:
        (post,) = store.timeline(limit=10)
        assert [a["name"] for a in post.attachments] == ["../bread/starter.png"]
        here, gone = _images(post.rendered)
        assert here["src"] == f"/file/{post.short_id}/0" and "src" not in gone


def test_a_picture_shown_and_linked_by_another_name_is_shown_once(pair):
    """`![pic](beside.png)` and `[full size](../notes/beside.png)`: one file under two
    names; the link goes to the friend's copy, and the picture, shown in the text, is not
    shown again in the gallery."""
    ada, bob, bundle = pair
    _write_post(ada, "![pic](beside.png) [full size](../notes/beside.png)")
    assert _build(ada) == []
    bob.fetch(bundle, "ada")
    with ReaderStore.open(bob.root) as store:
        (post,) = store.timeline(limit=10)
        assert ["beside.png", "../notes/beside.png"] == [a["name"] for a in post.attachments]
        assert f'href="/file/{post.short_id}/1"' in post.rendered
        short_id = post.short_id
    page = _desk_page(bob, short_id)
    assert 'class="gallery"' not in page
    assert 1 == len(_images(page.split('id="body">', 1)[1].split("</article>")[0]))


def test_a_file_under_two_names_is_downloaded_once_and_counted_once(pair, monkeypatch):
    """One object listed under two names (§3.3): the friend's fetch downloads and saves
    it once, and charges its size once against their quota for the author."""
    from o2m_pub.reader.attachments import AttachmentCache
    from o2m_pub.reader.post_rows import attachments_size
    ada, bob, bundle = pair
    _write_post(ada, "![pic](beside.png)\n\n![again](../notes/beside.png)")
    assert _build(ada) == []
    saved: list[str] = []
    real_save = AttachmentCache.save
    monkeypatch.setattr(AttachmentCache, "save",
                        lambda self, digest, data: (saved.append(digest),
                                                    real_save(self, digest, data))[1])
    assert bob.fetch(bundle, "ada")["ada"].ok
    with ReaderStore.open(bob.root) as store:
        (post,) = store.timeline(limit=10)
        assert 2 == len(post.attachments) == 2 * len(set(saved)) == 2 * len(saved)
        assert attachments_size(post.attachments) == post.attachments[0]["size"]
