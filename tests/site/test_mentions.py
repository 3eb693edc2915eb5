"""Webmention on the owner's side (PROTOCOL.md §1.6): which URL names a public post,
what is due to be sent (new, changed, unlinked, deleted, retried), the store's states,
and approved mentions on a post's page, rebuilt by the incremental build."""

from __future__ import annotations

import datetime as dt

import pytest

from o2m_pub.reader.webmention import MentionFacts
from o2m_pub.site.mention_plan import (
    DELETED,
    MAX_ATTEMPTS,
    Outgoing,
    PublicPost,
    SentRecord,
    after_delivery,
    outbound_links,
    plan_mentions,
    post_of,
    told_mark,
)
from o2m_pub.site.mentions import MentionError, MentionStore, UnknownMentionError, published_posts

SITE = "https://ada.example/"
NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)
PATHS = frozenset({"2026/trip/", "2026/notes/"})


# ---------------------------------------------------------------- the owner's URLs


@pytest.mark.parametrize("url, expected", [
    ("https://ada.example/2026/trip/", "2026/trip/"),
    ("https://ada.example/2026/trip", "2026/trip/"),
    ("https://ada.example/2026/trip/index.html", "2026/trip/"),
    ("https://ADA.example:443/2026/trip/#c1", "2026/trip/"),
    ("http://ada.example/2026/trip/", "2026/trip/"),
    ("https://ada.example/2026/secret/", None),  # not a public post
    ("https://ada.example/", None),
    ("https://ada.example/tags/", None),
    ("https://ada.example/2026/trip/?x=1", None),
    ("https://ada.example:8443/2026/trip/", None),
    ("https://evil.example/2026/trip/", None),
    ("ftp://ada.example/2026/trip/", None),
])
def test_a_target_names_a_public_post_of_this_site_or_nothing(url, expected):
    """The endpoint's target check: the site's own host and port, http or https, a
    public post's folder with or without its slash or index.html."""
    assert expected == post_of(url, SITE, PATHS)


def test_a_site_under_a_path_has_its_posts_under_it():
    """A site at https://host/blog/ owns /blog/2026/trip/, not /2026/trip/."""
    assert "2026/trip/" == post_of("https://h.example/blog/2026/trip/", "https://h.example/blog/",
                                   PATHS)
    assert None is post_of("https://h.example/2026/trip/", "https://h.example/blog/", PATHS)


# ---------------------------------------------------------------- what is due (pure)


def post(path: str = "2026/re/", digest: str = "d1",
         reply_to: str | None = "https://bob.example/p/", body: str = "") -> PublicPost:
    return PublicPost(path, digest, reply_to, lambda: body)


def record(target: str = "https://bob.example/p/", digest: str = "d1", outcome: str = "sent",
           attempts: int = 0, path: str = "2026/re/") -> SentRecord:
    return SentRecord(path, target, SITE + path, digest, outcome, attempts=attempts)


def plan(posts, records=(), told=None, with_links=False):  # noqa: ANN001, ANN201
    return plan_mentions(posts, {(r.post, r.target): r for r in records}, told or {}, SITE,
                         with_links=with_links)


def test_a_reply_is_due_once_per_version():
    """A new public reply is due to its reply_to; once sent for this version, nothing;
    a changed version is due again (Webmention §3.1.4: updates resend)."""
    due = plan([post()])
    assert [Outgoing("2026/re/", SITE + "2026/re/", "https://bob.example/p/", "d1", "new")] == due
    assert [] == plan([post()], [record()])
    assert ["changed"] == [o.why for o in plan([post(digest="d2")], [record()])]


def test_a_post_dealt_with_is_skipped_without_reading_its_body():
    """`told` holds the version whose mentions are settled: its body is not read."""
    def body() -> str:
        raise AssertionError("read")
    p = PublicPost("2026/re/", "d1", None, body)
    assert [] == plan([p], told={"2026/re/": told_mark("d1", True)}, with_links=True)


def test_a_target_the_new_version_dropped_gets_one_more_mention():
    """Webmention §3.1.4: the receiver of a link that was removed is told too, once."""
    due = plan([post(digest="d2", reply_to=None)], [record()])
    assert [("https://bob.example/p/", "unlinked")] == [(o.target, o.why) for o in due]
    assert [] == plan([post(digest="d2", reply_to=None)], [record(outcome="unlinked")])


def test_a_deleted_post_gets_a_final_mention_to_each_target_that_got_one():
    """Webmention §3.1.5: the post's page is gone, every receiver that was told is told
    again (it reads the 404 and takes the mention down); no-endpoint targets are not."""
    records = [record(), record("https://carol.example/x", outcome="no endpoint")]
    due = plan([], records)
    assert [Outgoing("2026/re/", SITE + "2026/re/", "https://bob.example/p/", DELETED,
                     "deleted")] == due
    done = after_delivery(due[0], "sent", "HTTP 202", "e", records[0], "t")
    assert (DELETED, "deleted") == (done.digest, done.outcome)
    assert [] == plan([], [done])
    assert ["new"] == [o.why for o in plan([post()], [done])]  # the post comes back


def test_a_failed_mention_is_retried_and_given_up_after_five_tries():
    """Unreachable or 5xx: due again ("retry") until MAX_ATTEMPTS failures in a row."""
    item = plan([post()])[0]
    previous = None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        previous = after_delivery(item, "failed", "HTTP 503", "", previous, "t")
        assert attempt == previous.attempts
        if attempt < MAX_ATTEMPTS:
            assert ["retry"] == [o.why for o in plan([post()], [previous], told={})]
    assert "gave up" == previous.outcome
    assert [] == plan([post()], [previous])


def test_only_reply_to_by_default_and_every_outbound_link_when_asked():
    """`webmention_links = false`: only reply_to; true: every link leaving the site
    too, each once, never the site's own pages."""
    body = ('<p><a href="https://carol.example/a">c</a> <a href="/2026/trip/">own</a> '
            '<a href="https://ada.example/x">own</a> <a href="mailto:x@y">m</a> '
            '<a href="https://carol.example/a#frag">again</a></p>')
    p = post(body=body)
    assert ["https://bob.example/p/"] == [o.target for o in plan([p])]
    assert ["https://bob.example/p/", "https://carol.example/a"] == [
        o.target for o in plan([p], with_links=True)]
    assert ["https://carol.example/a"] == outbound_links(body, SITE)


# ---------------------------------------------------------------- the store


def test_a_mention_is_verified_then_approved_and_a_resend_that_no_longer_links_removes_it(tmp_path):
    """The states: verifying -> pending -> approved; a re-send (same source and post)
    is the same mention and stays approved while it verifies; "no link" on a re-send
    refuses it, approved or not (it leaves the page)."""
    with MentionStore(tmp_path) as store:
        first = store.receive("https://bob.example/re", SITE + "2026/trip/", "2026/trip/", NOW)
        assert "verifying" == store.get(first).status
        store.verified(first, "verified", facts=MentionFacts("reply", "Bob"), now=NOW)
        assert ("pending", "reply", "Bob") == (lambda m: (m.status, m.kind, m.author_name))(
            store.get(first))
        store.set_status(first, "approved")
        again = store.receive("https://bob.example/re", SITE + "2026/trip", "2026/trip/", NOW)
        assert first == again
        store.verified(again, "verified", facts=MentionFacts("reply", "Bob B."), now=NOW)
        assert ("approved", "Bob B.") == (store.get(first).status, store.get(first).author_name)
        assert ["Bob B."] == [v.name for v in store.approved_views()["2026/trip/"]]
        store.verified(again, "no link", reason="no link", now=NOW)
        assert ("refused", "no link") == (store.get(first).status, store.get(first).reason)
        assert {} == store.approved_views()


def test_a_rejected_mention_stays_rejected_and_a_refused_one_cannot_be_approved(tmp_path):
    """The owner's "no" outlives a re-send; a mention that never verified is not
    approvable; an unknown id says so."""
    with MentionStore(tmp_path) as store:
        m = store.receive("https://m.example/spam", SITE + "2026/trip/", "2026/trip/", NOW)
        store.verified(m, "verified", facts=MentionFacts(), now=NOW)
        store.set_status(m, "rejected")
        store.receive("https://m.example/spam", SITE + "2026/trip/", "2026/trip/", NOW)
        store.verified(m, "verified", facts=MentionFacts(), now=NOW)
        assert "rejected" == store.get(m).status
        bad = store.receive("https://m.example/nolink", SITE + "2026/trip/", "2026/trip/", NOW)
        store.verified(bad, "no link", reason="no link", now=NOW)
        with pytest.raises(MentionError):
            store.set_status(bad, "approved")
        with pytest.raises(UnknownMentionError):
            store.get(999)


def test_a_slow_source_on_a_resend_does_not_take_an_approved_mention_down(tmp_path):
    """A refusal that may pass (a timeout) on a known mention notes the reason and
    keeps it; on a new one it refuses it."""
    with MentionStore(tmp_path) as store:
        m = store.receive("https://b.example/r", SITE + "2026/trip/", "2026/trip/", NOW)
        store.verified(m, "refused", reason="timeout", now=NOW)
        assert "refused" == store.get(m).status
        store.verified(m, "verified", facts=MentionFacts(), now=NOW)
        store.set_status(m, "approved")
        store.verified(m, "refused", reason="timeout", now=NOW)
        assert ("approved", "timeout") == (store.get(m).status, store.get(m).reason)


# ---------------------------------------------------------------- on the post's page


def _approve(root, source: str, post: str, name: str, kind: str = "reply") -> int:  # noqa: ANN001
    with MentionStore(root) as store:
        m = store.receive(source, SITE + post, post, NOW)
        facts = MentionFacts(kind, name, published="2026-11-30T08:00:00Z")
        store.verified(m, "verified", facts=facts, now=NOW)
        store.set_status(m, "approved")
        return m


def test_an_approved_mention_shows_on_its_post_page_as_a_name_and_a_link(site):
    """After approval, the next build puts the mention on the post's page: the
    author's name linking to their page, the kind and the date; nothing of their
    content, no image, no script. Only that post's page is rewritten."""
    site.post("2026/trip.md", title="Trip", date="2026-11-01")
    site.post("2026/other.md", title="Other", date="2026-11-02")
    site.o2m("build")
    assert '<link rel="webmention" href="https://test.example/.well-known/webmention">' in \
        site.read("index.html")
    before = site.stamps()
    _approve(site.root, "https://bob.example/re/", "2026/trip/", "Bob <b>B</b>")
    site.o2m("build")
    page = site.read("2026/trip/index.html")
    section = page[page.index('<section class="mentions"'):page.index("</section>")]
    assert ('<a class="u-url" href="https://bob.example/re/" rel="nofollow ugc">'
            '<span class="p-author">Bob &lt;b&gt;B&lt;/b&gt;</span></a> replied') in section
    assert '<time class="dt-published" datetime="2026-11-30T08:00:00+00:00">' in section
    assert "<img" not in section and "<script" not in section
    after = site.stamps()
    assert ["2026/trip/index.html"] == sorted(p for p in after if after[p] != before.get(p))


def test_deleting_a_mention_takes_it_off_the_page_at_the_next_build(site):
    """`o2m mention delete` (and any refusal) changes the post's digest: rebuilt."""
    site.post("2026/trip.md", title="Trip", date="2026-11-01")
    site.o2m("build")
    m = _approve(site.root, "https://bob.example/re/", "2026/trip/", "Bob")
    site.o2m("build")
    assert "Bob</span></a> replied" in site.read("2026/trip/index.html")
    site.o2m("mention", "delete", str(m))
    site.o2m("build")
    assert 'class="mentions"' not in site.read("2026/trip/index.html")


def test_without_webmention_no_page_names_an_endpoint_or_shows_mentions(site):
    """`[site] webmention = false`: no <link rel=webmention>, approved ones not shown;
    an external endpoint is named instead of o2m serve's when set."""
    site.post("2026/trip.md", title="Trip", date="2026-11-01")
    _approve(site.root, "https://bob.example/re/", "2026/trip/", "Bob")
    config = (site.root / "o2m.toml").read_text()
    (site.root / "o2m.toml").write_text(config.replace(
        'posts_per_page = 3', 'posts_per_page = 3\nwebmention = false'))
    site.o2m("build")
    page = site.read("2026/trip/index.html")
    assert 'rel="webmention"' not in page and "Bob" not in page
    (site.root / "o2m.toml").write_text(config.replace(
        'posts_per_page = 3',
        'posts_per_page = 3\nwebmention_endpoint = "https://webmention.io/ada/webmention"'))
    site.o2m("build")
    assert '<link rel="webmention" href="https://webmention.io/ada/webmention">' in \
        site.read("2026/trip/index.html")


def test_the_sender_sees_only_published_public_posts(site):
    """Drafts and friends-only posts are never mentioned anywhere."""
    site.post("2026/pub.md", title="Pub", date="2026-11-01", reply_to="https://bob.example/a/")
    site.post("2026/draft.md", title="Draft", date="2026-11-02", draft="true",
              reply_to="https://bob.example/b/")
    site.post("2026/friends.md", title="F", date="2026-11-03", audience="friends",
              reply_to="https://bob.example/c/")
    site.o2m("build")
    assert [("2026/pub/", "https://bob.example/a/")] == [
        (p.path, p.reply_to) for p in published_posts(site.root)]
