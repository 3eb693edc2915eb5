"""THREATS.md 54 for the photos of public posts: the desk shows a friend's public-post
photo inline only when the post's signed feed item lists it (`_o2m.media`, PROTOCOL.md
§1.4), and only with the listed bytes. Against a real HTTPS host on 127.0.0.1 (a test
CA), the real desk app, a real reader store and the real cache folder."""

from __future__ import annotations

import datetime as dt
import hashlib
import http.server
import ssl
import threading

import nacl.public
import nacl.signing
import pytest
import trustme
from support.desk import text
from support.desk_world import NOW, PNG, store_posts

from o2m_pub.desk.images import CACHE_DIR
from o2m_pub.friends.friend_store import FriendStore
from o2m_pub.protocol.cards import make_card
from o2m_pub.protocol.public_media import ListedFile
from o2m_pub.reader.model import PostRow
from o2m_pub.reader.store import ReaderStore

OTHER_PNG = PNG[:-5] + b"\x00" * 5  # the same size, other bytes: a swapped photo
REASON = "is not the photo their signed feed lists for this post"
SHORT = "(not shown: it is not the photo they published)"


class _Handler(http.server.BaseHTTPRequestHandler):
    """Dora's host: `files` by path; a path in `endless` is sent as its bytes and then
    `endless` more, with no Content-Length (the end is the connection's), and what got
    out before the reader hung up is counted."""

    files: dict[str, bytes]
    endless: dict[str, int]
    asked: list[str]
    sent: dict[str, int]
    done: threading.Event

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.asked.append(self.path)
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        extra = self.endless.get(self.path)
        if extra is None:
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        sent = 0
        try:
            self.wfile.write(data)
            sent = len(data)
            chunk = b"\0" * 65536
            while sent < len(data) + extra:
                self.wfile.write(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the reader hung up
        finally:
            self.sent[self.path] = sent
            self.done.set()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def host(tmp_path):
    """A real HTTPS server on 127.0.0.1 with a certificate of a test CA: (its base URL,
    the handler's class, whose `files`, `endless`, `asked` and `sent` the tests use,
    and the CA bundle)."""
    ca = trustme.CA()
    handler = type("DoraHandler", (_Handler,), {"files": {}, "endless": {}, "asked": [],
                                                 "sent": {}, "done": threading.Event()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    try:
        yield f"https://localhost:{server.server_address[1]}/", handler, str(bundle)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def dora(world, client, host):
    """Ada's friend Dora, whose site is `host`; the desk trusts its CA."""
    url, handler, bundle = host
    card = make_card(nacl.signing.SigningKey(b"\7" * 32), name="Dora", url=url,
                     box_pk=bytes(nacl.public.PrivateKey(b"\x08" * 32).public_key),
                     tls_pin=None, created=NOW - dt.timedelta(days=1))
    FriendStore(world["root"]).add("dora", card, now=NOW)
    client.app.images.ca_bundle = bundle
    return url, handler, card


def publish(dora, name: str, data: bytes) -> ListedFile:  # noqa: ANN001
    """A photo on Dora's site, at a content-addressed path as o2m publishes it, and its
    entry as her signed feed lists it."""
    url, handler, _ = dora
    digest = hashlib.sha256(data).hexdigest()
    path = f"/media/{digest[:16]}/{name}"
    handler.files[path] = data
    return ListedFile(url + path[1:], digest, len(data))


def post(world, dora, html: str, media: tuple[ListedFile, ...],  # noqa: ANN001
         post_id: str = "d1") -> str:
    """Dora's public post with this HTML and list, stored and rendered as the fetch
    does; its short id."""
    url, _, card = dora
    store_posts(world["root"], "dora", card, [
        PostRow(id=post_id, audience="public", date="2026-11-23T10:00:00Z", title="Pears",
                html=html, url=url + "2026/pears/", media=media)])
    with ReaderStore.open(world["root"]) as store:
        return next(p.short_id for p in store.timeline() if p.id == post_id)


def img(listed: ListedFile, alt: str = "pears") -> str:
    return f'<img src="{listed.url}" alt="{alt}">'


def cached_files(world) -> dict[str, bytes]:  # noqa: ANN001
    folder = world["root"] / ".o2m" / CACHE_DIR
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.is_dir() else {}


def test_threat_54_the_listed_photo_is_shown_inline_and_kept(world, client, dora):
    """The photo the post's item lists, with those bytes: inline on the post page and the
    timeline, served by the desk (never by Dora's host to the browser), and kept: asked
    again after her host lost it, the desk still has it."""
    photo = publish(dora, "pears.png", PNG)
    short = post(world, dora, f"<p>{img(photo)}</p>", (photo,))
    page = text(client.get(f"/post/{short}"))
    assert f'<img src="/img/{short}/0" alt="pears">' in page and photo.url not in page
    assert f'src="/img/{short}/0"' in text(client.get("/?friend=dora"))
    got = client.get(f"/img/{short}/0")
    assert (200, PNG, "image/png") == (got.status, got.body, got.content_type)
    assert [PNG] == list(cached_files(world).values())
    dora[1].files.clear()
    assert PNG == client.get(f"/img/{short}/0").body
    assert [f"/media/{photo.sha256[:16]}/pears.png"] == dora[1].asked


@pytest.mark.parametrize("swapped", [OTHER_PNG, PNG + b"more", PNG[:-1]],
                         ids=["same size", "longer", "shorter"])
def test_threat_54_a_photo_the_host_swapped_is_not_shown_nor_kept(world, client, dora,
                                                                  swapped):
    """Dora's host serves other bytes at the listed URL (a valid picture, of the same
    size or not): the desk answers with the reason, in plain words, keeps nothing, and
    from then on the post page shows the photo as a link, the reason beside it and in
    its title; the timeline shows no broken photo."""
    photo = publish(dora, "pears.png", PNG)
    dora[1].files[photo.url[len(dora[0]) - 1:]] = swapped
    short = post(world, dora, f"<p>{img(photo)}</p>", (photo,))
    got = client.get(f"/img/{short}/0")
    assert 404 == got.status and REASON in text(got)
    assert {} == cached_files(world)
    page = text(client.get(f"/post/{short}"))
    assert f'src="/img/{short}/0"' not in page
    assert f'href="{photo.url}"' in page and SHORT in page
    link = page[page.index(f'href="{photo.url}"'):]
    assert REASON in link[:link.index(">")]  # the link's title says why
    assert f"/img/{short}/" not in text(client.get("/?friend=dora"))
    assert 1 == len(dora[1].asked)  # refused once, not asked for again


def test_threat_54_a_photo_the_feed_does_not_list_stays_a_link(world, client, dora):
    """Two photos on Dora's site, the item lists one: the other stays a link, as any
    remote image (THREATS.md 34); the desk never asks her host for it, and /img/ID/N
    names listed photos only. A post with no list (a writer without `_o2m.media`, o2m
    1.0) has all its photos as links."""
    listed = publish(dora, "pears.png", PNG)
    unlisted = publish(dora, "figs.png", OTHER_PNG)
    short = post(world, dora, f"<p>{img(unlisted, 'figs')} {img(listed)}</p>", (listed,))
    page = text(client.get(f"/post/{short}"))
    assert f'href="{unlisted.url}"' in page and f'<img src="/img/{short}/0" alt="pears">' in page
    assert f'src="/img/{short}/1"' not in page
    assert 404 == client.get(f"/img/{short}/1").status
    assert 200 == client.get(f"/img/{short}/0").status
    assert [listed.url[len(dora[0]) - 1:]] == dora[1].asked
    bare = post(world, dora, f"<p>{img(listed)}</p>", (), post_id="d2")
    page = text(client.get(f"/post/{bare}"))
    assert f'href="{listed.url}"' in page and f"/img/{bare}/" not in page
    assert 404 == client.get(f"/img/{bare}/0").status


def test_threat_54_a_response_past_the_listed_size_is_cut_there(world, client, dora):
    """Dora's host sends the listed photo and then 64 MiB more, with no length: the desk
    reads one byte past the listed size and hangs up (the host got out far less than
    it meant to), refuses the photo as not the one listed, and keeps nothing of it."""
    photo = publish(dora, "pears.png", PNG)
    path = photo.url[len(dora[0]) - 1:]
    dora[1].endless[path] = 64 << 20
    short = post(world, dora, f"<p>{img(photo)}</p>", (photo,))
    got = client.get(f"/img/{short}/0")
    assert 404 == got.status and REASON in text(got)
    assert dora[1].done.wait(60)  # (a guard against a hang: the host's write broke)
    assert dora[1].sent[path] < 32 << 20
    assert {} == cached_files(world)
    assert SHORT in text(client.get(f"/post/{short}"))


def test_threat_54_a_kept_photo_is_tied_to_its_hash(world, client, dora):
    """The cache is keyed by URL and listed hash: Dora edits her post to list another
    photo under the same URL (another writer may reuse URLs), and the desk fetches the
    new one instead of showing the one it kept; the one it kept is no answer to a list
    it does not match."""
    first = publish(dora, "pears.png", PNG)
    short = post(world, dora, f"<p>{img(first)}</p>", (first,))
    assert PNG == client.get(f"/img/{short}/0").body
    path = first.url[len(dora[0]) - 1:]
    dora[1].files[path] = OTHER_PNG
    edited = ListedFile(first.url, hashlib.sha256(OTHER_PNG).hexdigest(), len(OTHER_PNG))
    assert short == post(world, dora, f"<p>{img(edited)} again</p>", (edited,))
    assert OTHER_PNG == client.get(f"/img/{short}/0").body
    assert [path, path] == dora[1].asked
    assert sorted([PNG, OTHER_PNG]) == sorted(cached_files(world).values())


def test_a_photo_listed_as_too_big_is_a_link_and_never_fetched(world, client, dora):
    """A list entry over the 10 MiB the desk shows inline: a link with the reason, and
    nothing downloaded."""
    photo = publish(dora, "huge.png", PNG)
    big = photo._replace(size=10 * 1024 * 1024 + 1)
    short = post(world, dora, f"<p>{img(big)}</p>", (big,))
    page = text(client.get(f"/post/{short}"))
    assert "(not shown: too big)" in page and f'src="/img/{short}/0"' not in page
    assert 404 == client.get(f"/img/{short}/0").status
    assert [] == dora[1].asked
