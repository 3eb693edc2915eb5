"""The desk in a real headless browser (Debian's chromium and chromium-driver, selenium),
as a person uses it: sign in, write a post with a photo, see it on the public site and
in a friend's timeline (Bob's desk, after a real fetch of Ada's site over TLS), add a
friend by pasting a card, search, sign out. Every main page is saved as a screenshot on
a desktop and a 390 px phone, light and dark (tests/output/desk/, or $O2M_TEST_OUTPUT;
with O2M_UPDATE_SCREENSHOTS=1 also docs/screenshots/), and checked by axe-core.

One browser and two desks (`o2m desk --port 0`, Ada's and Bob's, as their own
processes) for the module; the tests run in order, each from where the last left off.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from support.browser import (
    DESKTOP,
    OUTPUT,
    PHONE,
    axe_violations,
    click_to_navigate,
    describe,
    go,
    need_browser,
    screenshot,
    start_browser,
    view,
)
from support.desk import PASS, start_desk, stop
from support.people import Person, o2m, server_context

from o2m_pub.protocol.cards import card_to_text
from o2m_pub.protocol.keyfile import fingerprint

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="module")
def world(tmp_path_factory, ca):
    """Ada and Bob, friends both ways, each with a site on TLS and a desk running."""
    authority, bundle = ca
    base = tmp_path_factory.mktemp("desk-browser")
    context = server_context(authority)
    ada, bob, carol = (Person(base, n, context) for n in ("ada", "bob", "carol"))
    ada.befriend(bob)
    bob.befriend(ada)
    ada.post("hello", "Hello Bob", "friends", body="The first post, for *friends*.",
             date="2026-11-20")
    ada.post("walk", "A walk on the ridge", "public", body="Wind, sun and a flask of tea.",
             date="2026-11-21")
    bob.post("bread", "Bread", "friends", body="Sourdough, day three.", date="2026-11-22")
    (base / "ada.png").write_bytes(_portrait())
    o2m("-C", str(ada.root), "card", "--renew", "--avatar", str(base / "ada.png"), "--bio",
        "Walks, bread and the odd script.")
    ada.build()
    bob.build()
    bob.fetch(bundle)
    ada.fetch(bundle)
    ada_desk, ada_url = start_desk(ada.root, env={"O2M_CA_BUNDLE": bundle})
    bob_desk, bob_url = start_desk(bob.root, env={"O2M_CA_BUNDLE": bundle})
    bob_url = bob_url.replace("127.0.0.1", "localhost")  # its own cookie jar in the browser
    photo = base / "blanket.jpg"
    photo.write_bytes(_jpeg_with_gps())
    yield {"ada": ada, "bob": bob, "carol": carol, "bundle": bundle, "ada_url": ada_url,
           "bob_url": bob_url, "photo": photo}
    assert stop(ada_desk) == 0
    assert stop(bob_desk) == 0
    for person in (ada, bob, carol):
        person.server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    need_browser()
    driver = start_browser(tmp_path_factory.mktemp("chromium"))
    view(driver, DESKTOP, dark=False)
    yield driver
    driver.quit()


def _portrait() -> bytes:
    """A card's picture: a face of circles on a coloured square, as a PNG."""
    from PIL import Image, ImageDraw
    image = Image.new("RGB", (128, 128), (64, 112, 160))
    draw = ImageDraw.Draw(image)
    draw.ellipse((24, 16, 104, 96), fill=(240, 200, 170))
    draw.ellipse((44, 44, 54, 54), fill=(40, 40, 40))
    draw.ellipse((74, 44, 84, 54), fill=(40, 40, 40))
    draw.pieslice((16, 88, 112, 168), 180, 360, fill=(200, 80, 60))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _jpeg_with_gps() -> bytes:
    from PIL import Image
    image = Image.new("RGB", (640, 480), (180, 40, 40))
    for x in range(0, 640, 40):
        image.paste((240, 230, 210), (x, 0, x + 20, 480))
    exif = Image.Exif()
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 0.0)})
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def heading(browser) -> str:  # noqa: ANN001
    from selenium.webdriver.common.by import By
    return browser.find_element(By.TAG_NAME, "h1").text


def sign_in(browser, url: str) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By
    go(browser, url)
    assert heading(browser) == "Sign in to your desk"
    browser.find_element(By.ID, "passphrase").send_keys(PASS)
    click_to_navigate(browser, browser.find_element(By.ID, "sign-in"))


def signed_in(browser, url: str) -> None:  # noqa: ANN001
    """At the desk's `url`, signed in: this test then runs alone too (`-k`), not only
    after the story's sign-in."""
    go(browser, url)
    if heading(browser) == "Sign in to your desk":
        sign_in(browser, url)


def test_sign_in_with_the_passphrase(world, browser):
    """A wrong passphrase is said so; the right one opens the timeline, where Bob's post
    shows with his name."""
    from selenium.webdriver.common.by import By
    go(browser, world["ada_url"])
    browser.find_element(By.ID, "passphrase").send_keys("not it")
    click_to_navigate(browser, browser.find_element(By.ID, "sign-in"))
    assert browser.find_element(By.ID, "signin-message").text == "That is not your passphrase."
    sign_in(browser, world["ada_url"])
    assert heading(browser) == "Home"
    assert "Bread" in browser.find_element(By.ID, "timeline").text
    assert "Bob" in browser.find_element(By.CSS_SELECTOR, ".entry .who").text


def test_write_a_post_with_a_photo_seen_on_the_public_site_and_by_a_friend(world, browser):
    """Ada writes a public post with a photo in her desk; her build publishes it (the
    photo without its GPS position); Bob fetches her site and sees it, photo and all,
    in his own desk's timeline (the photo from Ada's own host, by Bob's desk)."""
    from selenium.webdriver.common.by import By
    go(browser, world["ada_url"] + "write")
    browser.find_element(By.ID, "title").send_keys("Our picnic")
    browser.find_element(By.ID, "body").send_keys("Sun, a blanket and **tea**.")
    browser.find_element(By.ID, "tags").send_keys("outdoors")
    browser.find_element(By.ID, "aud-public").click()
    browser.find_element(By.ID, "photo").send_keys(str(world["photo"]))
    browser.find_element(By.ID, "alt").send_keys("A red blanket on the grass")
    click_to_navigate(browser, browser.find_element(By.ID, "publish"))
    assert heading(browser) == "Edit post"
    assert "Saved" in browser.find_element(By.CSS_SELECTOR, ".notice").text
    ada, bob = world["ada"], world["bob"]
    ada.build()
    page = next((ada.root / "build").glob("2026/our-picnic/index.html")).read_text()
    assert "A red blanket on the grass" in page and "<strong>tea</strong>" in page
    photo = next((ada.root / "build").rglob("photo-1.jpg")).read_bytes()
    assert b"Exif" not in photo
    got = bob.fetch(world["bundle"])
    assert got["ada"].status == "new", got
    sign_in(browser, world["bob_url"])
    entry = browser.find_element(By.CSS_SELECTOR, "#timeline .entry")
    assert "Our picnic" in entry.text and "Ada" in entry.text
    img = entry.find_element(By.CSS_SELECTOR, ".photos img")
    assert img.get_attribute("alt") == "A red blanket on the grass"
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(browser, 30).until(lambda b: b.execute_script(
        "return arguments[0].complete", img))  # fetched by Bob's desk from Ada's host
    assert browser.execute_script("return arguments[0].naturalWidth", img) == 640


def test_add_a_friend_by_pasting_their_card(world, browser):
    """Ada pastes Carol's card: the desk shows Carol's fingerprint to compare; with the
    box ticked she is added under the suggested name."""
    from selenium.webdriver.common.by import By
    carol = world["carol"].card
    go(browser, world["ada_url"] + "friends/add")
    browser.find_element(By.ID, "card").send_keys(card_to_text(carol))
    click_to_navigate(browser, browser.find_element(By.ID, "read-card"))
    assert browser.find_element(By.ID, "fingerprint").text == fingerprint(carol.sign_pk,
                                                                           carol.box_pk)
    assert browser.find_element(By.ID, "name").get_attribute("value") == "carol"
    browser.find_element(By.ID, "compared").click()
    click_to_navigate(browser, browser.find_element(By.ID, "add"))
    assert heading(browser) == "Carol"
    assert "Friend added" in browser.find_element(By.CSS_SELECTOR, ".notice").text


def test_search_everything_fetched(world, browser):
    """Bob searches his desk for a word of Ada's post."""
    from selenium.webdriver.common.by import By
    go(browser, world["bob_url"] + "search")
    box = browser.find_element(By.ID, "q")
    box.send_keys("blanket")
    click_to_navigate(browser, browser.find_element(By.CSS_SELECTOR, ".filters button"))
    titles = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#timeline .headline")]
    assert titles == ["Our picnic"]


def test_add_a_passkey_and_sign_in_with_it(world, browser):
    """Bob adds a passkey (his passphrase, then the device's dialog: Chromium's virtual
    authenticator, a platform one that verifies its user), signs out, and signs in
    again with the passkey alone."""
    from selenium.webdriver.common.by import By
    browser.execute_cdp_cmd("WebAuthn.enable", {})
    authenticator = browser.execute_cdp_cmd("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True,
        "automaticPresenceSimulation": True}})["authenticatorId"]
    try:
        go(browser, world["bob_url"] + "passkeys")
        browser.find_element(By.ID, "passkey-name").send_keys("This laptop")
        browser.find_element(By.ID, "passkey-passphrase").send_keys(PASS)
        click_to_navigate(browser, browser.find_element(By.ID, "begin-passkey"))
        click_to_navigate(browser, browser.find_element(By.ID, "create-passkey"))
        assert "Passkey added" in browser.find_element(By.CSS_SELECTOR, ".notice").text
        assert "This laptop" in browser.find_element(By.ID, "passkeys").text
        click_to_navigate(browser, browser.find_element(By.ID, "sign-out"))
        assert heading(browser) == "Sign in to your desk"
        click_to_navigate(browser, browser.find_element(By.ID, "sign-in-passkey"))
        assert heading(browser) == "Home"
    finally:
        browser.execute_cdp_cmd("WebAuthn.removeVirtualAuthenticator",
                                {"authenticatorId": authenticator})


def test_make_an_invitation_with_its_qr_code(world, browser):
    """Bob makes an invitation for "dora" in his desk: its text, its QR code (drawn in
    the page, fitting a phone's screen) and its expiry show, axe-core finds nothing, and
    it is listed as open with a button to revoke it."""
    from selenium.webdriver.common.by import By
    go(browser, world["bob_url"] + "invitations")
    browser.find_element(By.ID, "invite-name").send_keys("dora")
    click_to_navigate(browser, browser.find_element(By.ID, "make-invitation"))
    assert browser.find_element(By.ID, "invitation-text").get_attribute("value") \
        .startswith("o2m1i:")
    assert "until" in browser.find_element(By.ID, "invitation-expiry").text
    problems = []
    for size, size_name in ((DESKTOP, "desktop"), (PHONE, "phone")):
        view(browser, size, dark=False)
        qr = browser.find_element(By.CSS_SELECTOR, "#new-invitation svg")
        assert qr.size["width"] > 100 and qr.rect["x"] + qr.size["width"] <= size[0]
        screenshot(browser, OUTPUT / "desk" / f"invitation-new-{size_name}-light.png")
        problems += describe(axe_violations(browser))
    view(browser, DESKTOP, dark=False)
    assert problems == []
    row = browser.find_element(By.CSS_SELECTOR, "#invitations li")
    assert row.get_attribute("data-status") == "pending" and "dora" in row.text


PAGES = [("signin", None), ("home", ""), ("post", "post"), ("write", "write"),
         ("posts", "posts"), ("friends", "friends"), ("friend", "friends/ada"),
         ("add-friend", "friends/add"), ("invitations", "invitations"), ("card", "card"),
         ("search", "search?q=tea"), ("notifications", "notifications"),
         ("profile", "profile"), ("passkeys", "passkeys")]


def test_every_main_page_on_desktop_and_phone_in_light_and_dark(world, browser):
    """Each main page of Bob's desk at 1280 px and 390 px, light and dark: a screenshot
    saved for a person to look at, no axe-core violation, and nothing wider than the
    phone's screen."""
    from selenium.webdriver.common.by import By
    base = world["bob_url"]
    signed_in(browser, base)
    post = browser.find_element(By.CSS_SELECTOR, "#timeline .headline").get_attribute("href")
    out = OUTPUT / "desk"
    problems: list[str] = []
    for size, size_name in ((DESKTOP, "desktop"), (PHONE, "phone")):
        for dark in (False, True):
            view(browser, size, dark)
            for name, path in PAGES:
                if path is None:
                    continue
                go(browser, post if path == "post" else base + path)
                shot = out / f"{name}-{size_name}-{'dark' if dark else 'light'}.png"
                screenshot(browser, shot)
                problems += [f"{shot.name}: {v}" for v in describe(axe_violations(browser))]
                if size is PHONE:
                    width = browser.execute_script(
                        "return document.documentElement.scrollWidth")
                    if width > PHONE[0]:
                        problems.append(f"{shot.name}: {width} px wide")
    view(browser, DESKTOP, dark=False)
    assert problems == []


def test_sign_out(world, browser):
    """Signing out ends the session: the timeline asks to sign in again. The sign-in
    page itself passes axe-core, and its screenshots are taken here."""
    from selenium.webdriver.common.by import By
    go(browser, world["bob_url"])
    click_to_navigate(browser, browser.find_element(By.ID, "sign-out"))
    assert heading(browser) == "Sign in to your desk"
    go(browser, world["bob_url"] + "friends")
    assert heading(browser) == "Sign in to your desk"
    problems = []
    for size, size_name in ((DESKTOP, "desktop"), (PHONE, "phone")):
        for dark in (False, True):
            view(browser, size, dark)
            browser.refresh()
            screenshot(browser, OUTPUT / "desk" / f"signin-{size_name}-"
                                                  f"{'dark' if dark else 'light'}.png")
            problems += describe(axe_violations(browser))
    view(browser, DESKTOP, dark=False)
    assert problems == []
    if os.environ.get("O2M_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        for shot in sorted((OUTPUT / "desk").glob("*.png")):
            shutil.copyfile(shot, DOCS / f"desk-{shot.name}")
