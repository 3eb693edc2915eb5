"""Reading friends' posts in the desk in a real headless browser, against a store filled
by a real `o2m fetch`: what the old web reader's browser tests protected (it is retired:
`o2m reader` is the desk).

Ada builds a site with private posts for Bob (one with an attached PNG, one hostile),
served over TLS on 127.0.0.1; Bob fetches it; Bob's desk (`o2m desk --port 0`) runs as
his own subprocess. A second local HTTP server plays a tracker and a hostile web site:
it counts every request (THREATS.md 34) and serves cross-site forms and lures (CSRF,
THREATS.md 53). One browser for the module, signed in to Bob's desk.
"""

from __future__ import annotations

import http.client
import http.server
import re
import threading
import time
from pathlib import Path

import pytest
from support.browser import click_to_navigate, need_browser, start_browser
from support.data import PNG
from support.desk import PASS, start_desk, stop
from support.people import Person, server_context

from o2m_pub.desk.web import CONTENT_SECURITY_POLICY
from o2m_pub.reader.model import FriendUpdate, PostRow
from o2m_pub.reader.store import ReaderStore

NAME_PAYLOAD = "</title><script>window.__pwned = 36</script>"


class Tracker:
    """A plain HTTP server on 127.0.0.1 that records every request: a remote image host
    (nothing may reach it while a post renders) and a hostile site with forms."""

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
        """Requests for anything but its pages (and the favicon a browser asks for)."""
        return [p for p in self.requests if p not in self.pages and p != "/favicon.ico"]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def world(tmp_path_factory, ca):
    """Ada's posts fetched into Bob's store; a tracker; Bob's desk running."""
    authority, bundle = ca
    base = tmp_path_factory.mktemp("desk-reading")
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
    proc, url = start_desk(bob.root, env={"O2M_CA_BUNDLE": bundle})
    yield {"url": url, "root": bob.root, "tracker": tracker}
    assert stop(proc) == 0
    tracker.stop()
    ada.server.stop()
    bob.server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory, world):
    """One browser, signed in to Bob's desk."""
    from selenium.webdriver.common.by import By

    need_browser()
    driver = start_browser(tmp_path_factory.mktemp("chromium"))
    driver.get(world["url"])
    driver.find_element(By.ID, "passphrase").send_keys(PASS)
    click_to_navigate(driver, driver.find_element(By.ID, "sign-in"))
    yield driver
    driver.quit()


def stored(root: Path):
    with ReaderStore.open(root) as store:
        return store.timeline(limit=100)


def short_id(root: Path, title: str) -> str:
    return next(p.short_id for p in stored(root) if p.title == title)


def is_read(root: Path, short: str) -> bool:
    return next(p for p in stored(root) if p.short_id == short).read


def get(url: str, path: str, host: str | None = None):  # noqa: ANN201 - (status, headers, body)
    netloc = url.split("/")[2]
    conn = http.client.HTTPConnection(netloc, timeout=10)
    conn.request("GET", path, headers={"Host": host or netloc})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, response.headers, body


def wait_for(predicate, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + 30
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_post_page_shows_its_attached_image(world, browser):
    """The PNG Ada attached comes decrypted from Bob's store and decodes, in the body
    where her Markdown put it; the desk serves it as an image, nosniff."""
    from selenium.webdriver.common.by import By

    browser.get(world["url"] + "post/" + short_id(world["root"], "Ridge walk"))
    img = browser.find_element(By.CSS_SELECTOR, "#body img")
    assert img.get_attribute("alt") == "the ridge"
    wait_for(lambda: browser.execute_script("return arguments[0].complete", img), "image")
    assert browser.execute_script("return arguments[0].naturalWidth", img) == 1
    assert browser.execute_script(  # the desk's own URL, with its session cookie
        "return fetch(arguments[0]).then(r => r.headers.get('content-type') + ' ' + "
        "r.headers.get('x-content-type-options'))", img.get_attribute("src")) \
        == "image/png nosniff"


def test_threat_33_a_friends_script_never_runs(world, browser):
    """The hostile post's <script>, onerror, javascript: link and mXSS payloads do not
    run; its title is shown as text; the CSP header is on every response, signed in
    or not, a page, a file or an error."""
    from selenium.webdriver.common.by import By

    browser.get(world["url"] + "post/" + short_id(world["root"], NAME_PAYLOAD))
    assert browser.execute_script("return window.__pwned === undefined")
    assert browser.title == f"{NAME_PAYLOAD} · o2m desk"
    assert browser.find_element(By.ID, "heading").text == NAME_PAYLOAD
    body = browser.find_element(By.ID, "body")
    assert body.find_elements(By.CSS_SELECTOR, "script, svg, math, style, video, link") == []
    assert all(not a.get_attribute("href") or a.get_attribute("href").startswith("http")
               for a in body.find_elements(By.TAG_NAME, "a"))
    for link in body.find_elements(By.CSS_SELECTOR, "a:not([href])"):
        link.click()
    assert browser.execute_script("return window.__pwned === undefined")
    for path in ("/", "/signin", "/friends", "/nothing", "/static/desk.css"):
        assert get(world["url"], path)[1]["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def test_threat_34_a_remote_image_causes_no_request(world, browser):
    """Showing the post and the timeline requests nothing from the tracker; its remote
    image is a link, and only clicking it loads the image."""
    from selenium.webdriver.common.by import By

    tracker = world["tracker"]
    browser.get(world["url"] + "post/" + short_id(world["root"], NAME_PAYLOAD))
    browser.get(world["url"])  # and the timeline, which shows its excerpt
    assert tracker.images() == []
    browser.get(world["url"] + "post/" + short_id(world["root"], NAME_PAYLOAD))
    link = browser.find_element(By.CSS_SELECTOR, "a.o2m-remote-image")
    assert link.text == "[image: tracker (127.0.0.1)]"
    link.click()
    wait_for(tracker.images, "the click loads the image")
    assert tracker.images() == ["/md.png"]
    tracker.requests.clear()
    browser.switch_to.window(browser.window_handles[0])


def test_threat_36_and_39_a_hostile_friend_name_is_text_and_neutralised(world, browser):
    """A friend's name holding markup shows as that text in the page and in the title of
    their filtered timeline, and a right-to-left override in it is shown as U+FFFD."""
    from selenium.webdriver.common.by import By

    browser.get(world["url"] + "post/" + short_id(world["root"], "Named \u202eevil"))
    assert browser.execute_script("return window.__pwned === undefined")
    assert browser.find_element(By.ID, "heading").text == "Named \ufffdevil"
    assert browser.find_element(By.CSS_SELECTOR, ".byline .who").text == \
        NAME_PAYLOAD + "\ufffdevil"
    browser.get(world["url"])
    who = next(a for a in browser.find_elements(By.CSS_SELECTOR, ".entry .who")
               if a.text.endswith("evil"))
    click_to_navigate(browser, who)  # the friend's posts: the name in <title> and heading
    assert browser.title == f"{NAME_PAYLOAD}\ufffdevil · o2m desk"
    assert browser.find_element(By.ID, "heading").text == NAME_PAYLOAD + "\ufffdevil"
    assert browser.execute_script("return window.__pwned === undefined")


def test_a_cross_site_form_cannot_mark_all_read(world, browser):
    """CSRF: a page of another origin posting the desk's mark-all-read form, even with
    the right token, changes nothing (its SameSite=Strict cookie is not sent, and the
    Origin is not the desk's)."""
    from selenium.webdriver.common.by import By

    tracker = world["tracker"]
    with ReaderStore.open(world["root"]) as store:  # something to mark, whatever ran before
        store.mark_read([p.short_id for p in store.timeline()], read=False)
    browser.get(world["url"])
    token = browser.find_element(By.CSS_SELECTOR, "form.mark-all input[name=csrf]") \
        .get_attribute("value")
    unread = [p.short_id for p in stored(world["root"]) if not p.read]
    for name, value in (("/attack-token.html", token), ("/attack-guess.html", "guess")):
        tracker.pages[name] = (
            f'<form id="f" method="post" action="{world["url"]}read-all">'
            f'<input name="csrf" value="{value}"><input name="back" value="/"></form>'
            '<script>document.getElementById("f").submit()</script>').encode()
        browser.get(tracker.url + name.lstrip("/"))
        wait_for(lambda: browser.current_url.startswith(world["url"]), "the form is sent")
        assert "Mark all read" not in browser.page_source
    assert [p.short_id for p in stored(world["root"]) if not p.read] == unread
    assert unread


def test_threat_53_another_sites_image_or_link_marks_nothing_read(world, browser):
    """THREATS 53 in a real browser: a page of another site that loads a post of the
    desk as an image, and then sends the browser to it (a meta refresh),
    marks nothing: the page shows (127.0.0.1 on another port is the same
    site, so its SameSite cookie goes along), but the desk tells its script not to
    mark it (its Sec-Fetch-Site is not same-origin); opening the post from the desk's
    own timeline marks it read."""
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
    wait_for(lambda: browser.find_elements(By.ID, "heading"), "a page of the desk")
    assert browser.find_element(By.ID, "heading").text == "Bread"  # shown (same site) ...
    article = browser.find_element(By.ID, "post")
    assert article.get_attribute("data-unread") == "1"
    assert article.get_attribute("data-mark-read") is None  # ... its script marks nothing
    assert not is_read(world["root"], bread)
    browser.get(world["url"])
    click_to_navigate(browser, browser.find_element(By.CSS_SELECTOR,
                                                    f'li[data-id="{bread}"] a.headline'))
    assert browser.find_element(By.ID, "heading").text == "Bread"
    wait_for(lambda: is_read(world["root"], bread), "the desk's own page marks it read")


def test_mark_all_read_from_the_page(world, browser):
    """The form on the timeline marks every post read (token and Origin are ours)."""
    from selenium.webdriver.common.by import By

    with ReaderStore.open(world["root"]) as store:
        store.mark_read([p.short_id for p in store.timeline()], read=False)
    browser.get(world["url"])
    click_to_navigate(browser, browser.find_element(By.ID, "mark-all-read"))
    assert browser.find_element(By.ID, "heading").text == "Home"
    with ReaderStore.open(world["root"]) as store:
        assert store.unread_count() == 0


def test_the_desk_answers_only_at_its_own_address(world):
    """DNS rebinding: a request naming another host is refused (with the same security
    headers), so a web page cannot read the desk through a name that resolves to
    127.0.0.1; localhost on the desk's port is the desk."""
    status, headers, _ = get(world["url"], "/", host="evil.example:80")
    assert status == 421 and headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    port = re.search(r":(\d+)/", world["url"]).group(1)
    assert get(world["url"], "/signin", host=f"localhost:{port}")[0] == 200
