"""`o2m reader` in a real headless browser (Debian's chromium and chromium-driver, driven
by selenium), against a store filled by a real `o2m fetch`.

Ada builds a site with private posts for Bob (one with an attached PNG, one hostile),
served over TLS on 127.0.0.1; Bob fetches it; `o2m reader --port 0` runs as Bob's own
subprocess and prints its URL. A second local HTTP server plays a tracker and a hostile
web site: it counts every request (THREATS.md 34) and serves a cross-site form (CSRF).
One browser for the module. In CI (CI=true) a missing Chromium fails the tests;
elsewhere they are skipped with the packages to install.
"""

from __future__ import annotations

import datetime as dt
import http.client
import http.server
import os
import re
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from support.data import BOB_PK, PNG
from support.people import PASS, Person, server_context  # noqa: F401
from support.reader_process import start_reader, stop_reader

from o2m_pub.reader.model import FriendUpdate, PostRow, short_id_for
from o2m_pub.reader.store import ReaderStore
from o2m_pub.reader.web import CONTENT_SECURITY_POLICY, ReaderApp

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
NAME_PAYLOAD = "</title><script>window.__pwned = 36</script>"


def _need_browser() -> None:
    """Fail in CI, skip elsewhere, when the browser cannot run."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium Python package")
    if missing:
        message = (f"{', '.join(missing)} not found: install the Debian packages chromium "
                   "and chromium-driver (and pip install selenium) to run the reader's "
                   "browser tests")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


class Tracker:
    """A plain HTTP server on 127.0.0.1 that records every request: a remote image host
    (nothing may reach it while a post renders) and a hostile site with a CSRF form."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.pages: dict[str, bytes] = {}
        tracker = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's API
                tracker.requests.append(self.path)
                body = tracker.pages.get(self.path, PNG)
                self.send_response(200)
                self.send_header("Content-Type", "text/html" if self.path in tracker.pages
                                 else "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def images(self) -> list[str]:
        """Requests for anything but its pages (and the favicon a browser asks for when
        it shows one of them)."""
        return [p for p in self.requests if p not in self.pages and p != "/favicon.ico"]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def world(tmp_path_factory, ca):  # noqa: F811 - the fixture imported above
    """Ada's posts fetched into Bob's store; a tracker; Bob's reader running."""
    authority, bundle = ca
    base = tmp_path_factory.mktemp("reader")
    tracker = Tracker()
    context = server_context(authority)
    ada, bob = Person(base, "ada", context), Person(base, "bob", context)
    ada.befriend(bob)
    bob.befriend(ada)
    (ada.root / "content/2026").mkdir(parents=True, exist_ok=True)
    (ada.root / "content/2026/ridge.png").write_bytes(PNG)
    ada.post("ridge", "Ridge walk", "bob", body="We left at *dawn*.\n\n![the ridge](ridge.png)",
             date="2026-11-20")
    ada.post("bread", "Bread", "friends", body="About bread.", date="2026-11-21")
    ada.post("hostile", NAME_PAYLOAD, "friends", date="2026-11-22", body=(
        "Hi <script>window.__pwned = 1; document.title = 'pwned'</script>"
        '<img src="x" onerror="window.__pwned = 2"> [js](javascript:window.__pwned=3)\n\n'
        f"![tracker]({tracker.url}md.png)\n\n"
        f'<img src="{tracker.url}raw.png"> <img src="x" srcset="{tracker.url}srcset.png 2x">\n'
        f'<p style="background-image:url({tracker.url}style.png)">styled</p>\n'
        f'<video poster="{tracker.url}poster.png"></video>'
        f'<link rel="stylesheet" href="{tracker.url}style.css">\n\n'
        "<svg><p><style><img src=x onerror=window.__pwned=4></style></p></svg>\n\n"
        "<math><mtext><table><mglyph><style><img src=x onerror=window.__pwned=5>"))
    ada.build()
    got = bob.fetch(bundle)
    assert got["ada"].new == 3, got
    with ReaderStore.open(bob.root) as store:  # a name `o2m friend add` would refuse
        store.apply_update(FriendUpdate(NAME_PAYLOAD + "\u202eevil", "x" * 43, upserts=[
            PostRow(id="m1", audience="private", date="2026-11-19T10:00:00Z",
                    title="Named \u202eevil", markdown="From a hostile name.")]))
    proc, url = start_reader(bob.root)
    yield {"url": url, "root": bob.root, "tracker": tracker}
    assert stop_reader(proc) == 0
    tracker.stop()
    ada.server.stop()
    bob.server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def stored(root: Path):
    with ReaderStore.open(root) as store:
        return store.timeline(limit=100)


def short_id(root: Path, title: str) -> str:
    return next(p.short_id for p in stored(root) if p.title == title)


def entries(browser) -> list[tuple[str, bool]]:
    from selenium.webdriver.common.by import By
    return [(li.get_attribute("data-id"), "unread" in li.get_attribute("class").split())
            for li in browser.find_elements(By.CSS_SELECTOR, "li.entry")]


def get(url: str, path: str, host: str | None = None):  # noqa: ANN201 - (status, headers, body)
    netloc = url.split("/")[2]
    conn = http.client.HTTPConnection(netloc, timeout=10)
    conn.request("GET", path, headers={"Host": host or netloc})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, response.headers, body


def test_the_timeline_shows_exactly_the_stored_posts(world, browser):
    """Every stored post once, newest first, each marked unread, by its short id."""
    browser.get(world["url"])
    assert entries(browser) == [(p.short_id, True) for p in stored(world["root"])]
    assert len(entries(browser)) == 4


def test_a_post_page_shows_its_attached_image(world, browser):
    """The PNG Ada attached comes decrypted from Bob's store cache and decodes."""
    from selenium.webdriver.common.by import By

    browser.get(world["url"] + "post/" + short_id(world["root"], "Ridge walk"))
    img = browser.find_element(By.CSS_SELECTOR, "#body img")
    assert img.get_attribute("alt") == "the ridge"
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth",
                                  img) == 1
    status, headers, body = get(world["url"], urlpath(img.get_attribute("src")))
    assert (status, headers["Content-Type"], body) == (200, "image/png", PNG)
    assert headers["X-Content-Type-Options"] == "nosniff"


def urlpath(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def test_threat_33_a_friends_script_never_runs(world, browser):
    """The hostile post's <script>, onerror, javascript: link and mXSS payloads do not
    run; its title is shown as text; the CSP header is on every response."""
    from selenium.webdriver.common.by import By

    browser.get(world["url"] + "post/" + short_id(world["root"], NAME_PAYLOAD))
    assert browser.execute_script("return window.__pwned === undefined")
    assert browser.title == f"{NAME_PAYLOAD} · o2m reader"
    assert browser.find_element(By.ID, "heading").text == NAME_PAYLOAD
    body = browser.find_element(By.ID, "body")
    assert body.find_elements(By.CSS_SELECTOR, "script, svg, math, style, video, link") == []
    assert all(not a.get_attribute("href") or a.get_attribute("href").startswith("http")
               for a in body.find_elements(By.TAG_NAME, "a"))
    for link in body.find_elements(By.CSS_SELECTOR, "a:not([href])"):
        link.click()
    assert browser.execute_script("return window.__pwned === undefined")
    for path in ("/", "/friend/ada", "/notifications", "/nothing", "/static/reader.css"):
        assert get(world["url"], path)[1]["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def click_to_navigate(browser, element) -> None:
    """Click a link or button that loads a page, and wait until the new page is there
    (the old page's elements go stale), so no assertion reads the page being left."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old = browser.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(browser, 30).until(expected_conditions.staleness_of(old))


def test_threat_34_a_remote_image_causes_no_request(world, browser):
    """Rendering the post requests nothing from the tracker; its remote image is a link,
    and only clicking it loads the image."""
    from selenium.webdriver.common.by import By

    tracker = world["tracker"]
    browser.get(world["url"] + "post/" + short_id(world["root"], NAME_PAYLOAD))
    browser.get(world["url"])  # and the timeline, which shows its excerpt
    assert tracker.images() == []
    browser.get(world["url"] + "post/" + short_id(world["root"], NAME_PAYLOAD))
    link = browser.find_element(By.CSS_SELECTOR, "a.o2m-remote-image")
    assert link.text == "[image: tracker (127.0.0.1)]"
    link.click()
    deadline = time.monotonic() + 30
    while not tracker.images() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tracker.images() == ["/md.png"]
    tracker.requests.clear()


def test_threat_36_and_39_a_hostile_friend_name_is_text_and_neutralised(world, browser):
    """A friend's name holding markup shows as that text in the page and its title, and
    a right-to-left override in it is shown as U+FFFD, not obeyed."""
    from selenium.webdriver.common.by import By

    browser.get(world["url"] + "post/" + short_id(world["root"], "Named \u202eevil"))
    assert browser.execute_script("return window.__pwned === undefined")
    assert browser.find_element(By.ID, "heading").text == "Named \ufffdevil"
    friend = browser.find_element(By.CSS_SELECTOR, ".meta .friend")
    assert friend.text == NAME_PAYLOAD + "\ufffdevil"
    click_to_navigate(browser, friend)  # the friend's page: the name in <title> and heading
    assert browser.title == f"{NAME_PAYLOAD}\ufffdevil · o2m reader"
    assert browser.execute_script("return window.__pwned === undefined")


def test_opening_a_post_marks_it_read(world, browser):
    """Clicking a post in the timeline opens it; back on the timeline it is read, in the
    page and in the store."""
    from selenium.webdriver.common.by import By

    bread = short_id(world["root"], "Bread")
    browser.get(world["url"])
    assert (bread, True) in entries(browser)
    click_to_navigate(browser, browser.find_element(By.CSS_SELECTOR,
                                                    f'li[data-id="{bread}"] a.headline'))
    assert browser.find_element(By.ID, "heading").text == "Bread"
    browser.get(world["url"])
    assert (bread, False) in entries(browser)
    assert next(p for p in stored(world["root"]) if p.short_id == bread).read


def test_a_cross_site_form_cannot_mark_all_read(world, browser):
    """CSRF: a page of another origin posting the form, even with the right token, is
    refused (403), and nothing changes."""
    tracker = world["tracker"]
    with ReaderStore.open(world["root"]) as store:  # something to mark, whatever ran before
        store.mark_read([p.short_id for p in store.timeline()], read=False)
    _, _, page = get(world["url"], "/")
    token = re.search(rb'name="token" value="([^"]+)"', page).group(1).decode()
    unread = [p.short_id for p in stored(world["root"]) if not p.read]
    for name, value in (("/attack-token.html", token), ("/attack-guess.html", "guess")):
        tracker.pages[name] = (
            f'<form id="f" method="post" action="{world["url"]}mark-all-read">'
            f'<input name="token" value="{value}"></form>'
            '<script>document.getElementById("f").submit()</script>').encode()
        browser.get(tracker.url + name.lstrip("/"))
        assert browser.title.startswith("403 ")
    assert [p.short_id for p in stored(world["root"]) if not p.read] == unread
    assert unread


def test_threat_53_another_sites_image_or_link_marks_nothing_read(world, browser):
    """THREATS 53 in a real browser: a page of another site that loads a post of the
    reader as an image, and then sends the browser to it (a meta refresh), shows it but
    leaves it unread; the reader's own link then marks it read."""
    from selenium.webdriver.common.by import By

    tracker = world["tracker"]
    bread = short_id(world["root"], "Bread")
    with ReaderStore.open(world["root"]) as store:
        store.mark_read([bread], read=False)
    post_url = f"{world['url']}post/{bread}"
    tracker.pages["/lure.html"] = f'<img src="{post_url}"><p>a page</p>'.encode()
    browser.get(tracker.url + "lure.html")
    tracker.pages["/go.html"] = (f'<meta http-equiv="refresh" content="0; url={post_url}">'
                                 ).encode()
    browser.get(tracker.url + "go.html")
    deadline = time.monotonic() + 30
    while not browser.find_elements(By.ID, "heading") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert browser.find_element(By.ID, "heading").text == "Bread"  # shown ...
    assert not next(p for p in stored(world["root"]) if p.short_id == bread).read  # ... unread
    browser.get(world["url"])
    click_to_navigate(browser, browser.find_element(By.CSS_SELECTOR,
                                                    f'li[data-id="{bread}"] a.headline'))
    assert next(p for p in stored(world["root"]) if p.short_id == bread).read


def test_the_reader_answers_only_at_its_own_address(world):
    """DNS rebinding: a request naming another host is refused, so a web page cannot
    read the reader through a name that resolves to 127.0.0.1."""
    status, headers, _ = get(world["url"], "/", host="evil.example:80")
    assert status == 421 and headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert get(world["url"], "/", host="localhost:" + world["url"].split(":")[2].strip("/"))[0] \
        == 200


def test_other_attachments_are_downloads_and_missing_posts_404(world):
    """Nothing but a raster image is shown inline; unknown posts and files are 404."""
    assert get(world["url"], "/post/nosuchpost")[0] == 404
    assert get(world["url"], "/file/" + short_id(world["root"], "Ridge walk") + "/7")[0] == 404
    assert get(world["url"], "/?before=junk")[0] == 400


def test_mark_all_read_from_the_page(world, browser):
    """The form on the timeline marks every post read (token and Origin are ours)."""
    from selenium.webdriver.common.by import By

    browser.get(world["url"])
    click_to_navigate(browser, browser.find_element(By.ID, "mark-all-read"))
    assert browser.find_element(By.ID, "heading").text == "Timeline"
    assert entries(browser) and not any(unread for _, unread in entries(browser))
    with ReaderStore.open(world["root"]) as store:
        assert store.unread_count() == 0


def test_sigterm_stops_the_reader_with_status_0(world):
    """Ctrl-C or SIGTERM: the reader stops cleanly, exit status 0, one line printed."""
    proc, url = start_reader(world["root"])
    assert get(url, "/")[0] == 200
    assert stop_reader(proc) == 0
    assert proc.stdout.read() == "" and proc.stderr.read() == ""


# ---------------------------------------------------------------- the app alone (no browser)


def _two_ids_sharing_a_prefix() -> tuple[str, str]:
    """Two post ids of one friend whose short ids start with the same 4 characters."""
    seen: dict[str, str] = {}
    for i in range(100_000):
        prefix = short_id_for(BOB_PK, f"p{i}")[:4]
        if prefix in seen:
            return seen[prefix], f"p{i}"
        seen[prefix] = f"p{i}"
    raise AssertionError("no shared prefix")  # pragma: no cover - a birthday: ~1,300 ids


NAVIGATION = {"sec-fetch-site": "same-origin", "sec-fetch-mode": "navigate",
              "sec-fetch-dest": "document", "sec-fetch-user": "?1"}


@pytest.mark.parametrize("headers", [
    {"sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors", "sec-fetch-dest": "image"},
    {"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate", "sec-fetch-dest": "document"},
    {"sec-fetch-site": "same-site", "sec-fetch-mode": "navigate", "sec-fetch-dest": "document"},
    {**NAVIGATION, "sec-fetch-dest": "iframe"},
    {**NAVIGATION, "sec-purpose": "prefetch"},
    {},  # a client that does not say where the request comes from (curl)
], ids=["cross-site image", "cross-site link", "same-site link", "frame", "prefetch",
        "no Sec-Fetch"])
def test_threat_53_a_cross_site_get_changes_nothing(site, headers):
    """THREATS 53 (security review finding 6): a GET of /post/ID or /notifications that
    is not the person's own navigation in the reader (an image, link, frame or prefetch
    of another site; or a client that does not say) shows the page and changes
    nothing: the post stays unread, the notification unseen. The reader's own link, or
    an address typed in (Sec-Fetch-Site: none), marks them."""
    with ReaderStore.open(site.root) as store:
        store.apply_update(FriendUpdate("bob", BOB_PK, upserts=[
            PostRow(id="p1", audience="private", date="2026-11-01T00:00:00Z", title="One",
                    markdown="text")], notifications=[("reply", "a reply")]))
        app = ReaderApp(store, dt.timezone.utc)
        app.bound_to("127.0.0.1", 8080)
        short = short_id_for(BOB_PK, "p1")

        def get_page(path: str, extra: dict[str, str]) -> int:
            return app.handle("GET", path, {}, {}, {"host": "127.0.0.1:8080", **extra}).status

        assert get_page(f"/post/{short}", headers) == 200
        assert get_page("/notifications", headers) == 200
        assert store.unread_count() == 1
        assert [n.seen for n in store.notifications()] == [False]
        assert app.handle("HEAD", f"/post/{short}", {}, {},
                          {"host": "127.0.0.1:8080", **NAVIGATION}).status == 200
        assert store.unread_count() == 1
        assert get_page(f"/post/{short}", NAVIGATION) == 200
        assert store.unread_count() == 0
        assert get_page("/notifications", {**NAVIGATION, "sec-fetch-site": "none"}) == 200
        assert [n.seen for n in store.notifications()] == [True]


def test_an_ambiguous_id_or_a_busy_store_is_a_clear_page_not_a_500(site):
    """A typed /post/PREFIX matching several posts is a 404 page; opening a post while
    another o2m process writes the store is a 503 page saying so (nothing marked)."""
    first, second = _two_ids_sharing_a_prefix()
    with ReaderStore.open(site.root) as store:
        store.apply_update(FriendUpdate("bob", BOB_PK, upserts=[
            PostRow(id=pid, audience="private", date="2026-11-01T00:00:00Z", title=pid,
                    markdown="text") for pid in (first, second)]))
        app = ReaderApp(store, dt.timezone.utc)
        app.bound_to("127.0.0.1", 8080)

        def get_page(path: str):  # noqa: ANN202 - reader_web.Response
            # the person's own navigation: only that marks a post read (THREATS 53)
            return app.handle("GET", path, {}, {}, {"host": "127.0.0.1:8080", **NAVIGATION})

        full = short_id_for(BOB_PK, first)
        for path in (f"/post/{full[:4]}", f"/file/{full[:4]}/0"):
            response = get_page(path)
            assert response.status == 404 and b"No such" in response.body
        store.db.execute("PRAGMA busy_timeout=0")  # the writer below holds on: fail now
        writer = sqlite3.connect(site.root / ".o2m" / "reader.db", isolation_level=None)
        try:
            writer.execute("BEGIN IMMEDIATE")
            response = get_page(f"/post/{full}")
            assert response.status == 503 and b"busy" in response.body
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        assert store.unread_count() == 2
        assert get_page(f"/post/{full}").status == 200 and store.unread_count() == 1
