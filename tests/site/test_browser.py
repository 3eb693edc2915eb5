"""The public site in a real headless browser (Debian's chromium and chromium-driver,
driven by selenium), served by a real `o2m serve` with its page CSP: what the clients
review measured, checked with the same tools (computed styles, axe-core).

In CI (CI=true) a missing Chromium fails these tests; elsewhere they are skipped with
the packages to install (README, "Quick start").
"""

from __future__ import annotations

import pytest
from support.browser import need_browser, start_browser
from support.o2m_server import o2m_serve


WIDE_ROW = "| " + " | ".join(f"column {i}" for i in range(14)) + " |"

CONFIG = """\
[site]
name = "Browser site"
author = "Tess"
url = "https://test.example/"
timezone = "UTC"
default_audience = "public"
"""

CODE_AND_TABLE = f"""\
Walks by day:

| Day | Distance | Climb |
|:----|---------:|------:|
| Mon | 12 km | 300 m |
| Tue | 9 km | 1,250 m |

A wide one:

{WIDE_ROW}
{"|" + "---|" * 14}
{WIDE_ROW}

```python
def run(steps):
    for name, minutes in steps:
        print(name, minutes, "a line long enough to scroll sideways on any screen, surely it is")
```
"""

FOOTNOTES = """\
The ridge is old[^old] and the path is older[^path].

[^old]: Chalk, mostly.
[^path]: Bronze Age, they say.
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A site with a home page, a post with code and tables, a post with footnotes,
    built and served by `o2m serve` (self-signed, with its CSP)."""
    from conftest import run_o2m

    root = tmp_path_factory.mktemp("browser") / "site"
    (root / "content/2026").mkdir(parents=True)
    (root / "o2m.toml").write_text(CONFIG)
    for slug, title, body in (("walks", "Walks and code", CODE_AND_TABLE),
                              ("ridge", "The ridge", FOOTNOTES)):
        (root / f"content/2026/{slug}.md").write_text(
            f"---\ntitle: {title}\ndate: 2026-03-0{1 + (slug == 'ridge')}\n---\n{body}")
    built = run_o2m("build", cwd=root)
    assert built.returncode == 0, built.stderr
    with o2m_serve(root) as server:
        yield server.url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    need_browser()
    driver = start_browser(tmp_path_factory.mktemp("chromium"), "--window-size=1280,900",
                           "--ignore-certificate-errors")  # o2m serve's self-signed certificate
    yield driver
    driver.quit()


def _scheme(browser, scheme: str) -> None:
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {
        "features": [{"name": "prefers-color-scheme", "value": scheme}]})


def test_right_aligned_columns_render_right_aligned_under_the_csp(served, browser):
    """A `|---:|` column is right-aligned as the browser draws it, on a page served with
    o2m's CSP (newcomer review 19: align= lost to the theme's `text-align: left`)."""
    from selenium.webdriver.common.by import By

    _scheme(browser, "light")
    browser.get(served + "2026/walks/")
    cells = browser.find_elements(By.CSS_SELECTOR, "table")[0].find_elements(
        By.CSS_SELECTOR, "tr > *")
    aligns = [browser.execute_script("return getComputedStyle(arguments[0]).textAlign", c)
              for c in cells]
    assert aligns == ["left", "right", "right"] * 3, aligns


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("path", ["", "2026/walks/", "2026/ridge/"],
                         ids=["home", "code-and-tables", "footnotes"])
def test_axe_finds_no_violations(served, browser, path, scheme):
    """axe-core (the clients review's accessibility checker) finds nothing on the home
    page, a post with code and tables and a post with footnotes, in light and dark:
    scrollable regions take the focus, footnote back-links are not told apart by
    colour alone."""
    from selenium_axe_python import Axe

    _scheme(browser, scheme)
    browser.get(served + path)
    axe = Axe(browser)
    axe.inject()
    results = axe.run()
    found = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]])
             for v in results["violations"]]
    assert found == []
