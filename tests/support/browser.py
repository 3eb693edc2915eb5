"""A real headless browser for tests (Debian's chromium and chromium-driver, selenium):
start it, size it like a desktop or a 390 px phone, switch light and dark, take
screenshots, run axe-core (the copy the axe-selenium-python wheel bundles), and go to
a page or click to the next one, waiting until it is loaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DESKTOP = (1280, 900, False)
PHONE = (390, 844, True)
OUTPUT = Path(os.environ.get("O2M_TEST_OUTPUT", Path(__file__).resolve().parents[1] / "output"))


def need_browser() -> None:
    """Fail in CI, skip elsewhere, when the browser cannot run."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    for module, package in (("selenium", "selenium"), ("axe_selenium_python",
                                                       "axe-selenium-python")):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"the {package} Python package")
    if missing:
        message = (f"{', '.join(missing)} not found: install the Debian packages chromium "
                   "and chromium-driver (and pip install '.[test]') to run the browser tests")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def start_browser(profile: Path, *extra: str):  # noqa: ANN201 - a selenium WebDriver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--hide-scrollbars",
                f"--user-data-dir={profile}", *extra):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


def view(driver, size: tuple[int, int, bool], dark: bool) -> None:  # noqa: ANN001
    """Lay the page out at `size` (width, height, a phone?) in light or dark."""
    width, height, mobile = size
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
        "features": [{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]})


def screenshot(driver, path: Path) -> None:  # noqa: ANN001
    """The whole page (beyond the viewport) as a PNG."""
    import base64
    path.parent.mkdir(parents=True, exist_ok=True)
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True})
    path.write_bytes(base64.b64decode(shot["data"]))


def axe_violations(driver) -> list[dict]:  # noqa: ANN001
    """axe-core's violations on the current page (rules of WCAG 2.x A and AA and best
    practices, as axe runs by default)."""
    from axe_selenium_python import Axe
    axe = Axe(driver)
    axe.inject()
    return axe.run()["violations"]


def describe(violations: list[dict]) -> list[str]:
    return [f"{v['id']} ({v['impact']}): {v['help']} at "
            f"{[n['target'] for n in v['nodes']][:3]}" for v in violations]


def go(browser, url: str) -> None:  # noqa: ANN001
    """Open `url` and wait until its page (after any redirect) is loaded, so nothing
    found on it next belongs to a page being left (a loaded machine is slow to swap)."""
    from selenium.webdriver.support.ui import WebDriverWait
    browser.get(url)
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script("return document.readyState") == "complete")


def click_to_navigate(browser, element) -> None:  # noqa: ANN001
    """Click, and wait until the next page is there and loaded: the old one's elements
    go stale, then the new document is complete (an element found while it is still
    being parsed can be gone when it is read: "Node ... does not belong to the
    document", seen once on a loaded machine)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old = browser.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(browser, 30).until(expected_conditions.staleness_of(old))
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script("return document.readyState") == "complete")
