"""`o2m serve --watch` answers conditional requests for its live pages as for any other
(newcomer review, friction 20's last point): a page with the live-reload script has its
own ETag, and sending it back gets a 304, not the whole page again."""

from __future__ import annotations

import requests
from conftest import run_o2m
from support.o2m_server import o2m_serve


def test_a_live_page_answers_if_none_match_with_304(tmp_path):
    root = tmp_path / "site"
    assert run_o2m("init", str(root), "--name", "Live", "--url", "https://live.example/",
                   cwd=tmp_path).returncode == 0
    assert run_o2m("build", cwd=root).returncode == 0
    with o2m_serve(root, "--watch") as server:
        page = requests.get(server.url, verify=server.verify, timeout=10)
        assert page.status_code == 200 and "/_o2m/live.js" in page.text
        etag = page.headers["ETag"]
        assert etag.endswith('-live"')  # not the file's own tag: the bytes differ
        again = requests.get(server.url, verify=server.verify, timeout=10,
                             headers={"If-None-Match": etag})
        assert (again.status_code, again.content) == (304, b"")
        css = requests.get(server.url + "static/style.css", verify=server.verify, timeout=10)
        assert requests.get(server.url + "static/style.css", verify=server.verify, timeout=10,
                            headers={"If-None-Match": css.headers["ETag"]}).status_code == 304
        assert server.stop() == 0
