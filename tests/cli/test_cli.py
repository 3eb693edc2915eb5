"""`o2m init`, `o2m demo` and the CLI's manners, through the real command."""

from __future__ import annotations

import tomllib
from pathlib import Path

from conftest import run_o2m
from support.terminal import dialogue


def test_init_at_a_terminal_asks_again_for_a_url_that_is_not_https(tmp_path):
    """A URL answered without https:// (or not a URL) is said to be one, with an example
    made of what was typed, and asked again; the site is made with the next answer."""
    status, seen = dialogue(tmp_path, ["init", "s"], [
        ("Site name", "Ada"), ("Public URL", "ada.example"),
        ("is not an https:// address; e.g. https://ada.example/", "http://ada.example"),
        ("Public URL", "https://ada.example/notes"), ("Your name", "Ada"),
        ("One line about the site", "")])
    assert status == 0, seen
    assert "--url" not in seen  # no flag was typed: none is named
    config = tomllib.loads((tmp_path / "s/o2m.toml").read_text())["site"]
    assert "https://ada.example/notes/" == config["url"]


def test_init_makes_a_site_that_builds(tmp_path):
    """init writes o2m.toml with the given name and URL (friends-only by default), a sample
    post, the theme, a .gitignore keeping build/, .o2m/ and keys/ out of git, and a private
    keys/ folder; the new site builds its one public post."""
    folder = tmp_path / "blog"
    result = run_o2m("init", str(folder), "--name", "Ada's notes", "--url",
                     "https://ada.example/", "--author", "Ada", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = tomllib.loads((folder / "o2m.toml").read_text())
    assert config["site"]["name"] == "Ada's notes"
    assert config["site"]["author"] == "Ada"
    assert config["site"]["url"] == "https://ada.example/"
    assert config["site"]["default_audience"] == "friends"  # private by default
    assert {"timezone", "author", "description"} <= config["site"].keys()
    assert list((folder / "content").rglob("*.md"))
    # the theme stays o2m's (a copy would override all of it, and no later fix of it
    # would reach the site): a README says how to override one file, and where o2m's are
    readme = (folder / "site_templates/README.md").read_text()
    assert ["README.md"] == [p.name for p in (folder / "site_templates").iterdir()]
    # the path of the o2m that ran (installed or not): its own theme's templates are there
    (theme,) = [line.strip() for line in readme.splitlines() if line.startswith("    ")]
    assert (Path(theme) / "post.html").is_file() and "post.html" in readme
    gitignore = (folder / ".gitignore").read_text()
    assert "/build/" in gitignore and "/.o2m/" in gitignore and "keys/" in gitignore
    assert (folder / "keys").stat().st_mode & 0o777 == 0o700
    built = run_o2m("build", cwd=folder)
    assert built.returncode == 0, built.stderr
    assert "built 1 post" in built.stdout  # the sample post is public
    assert (folder / "build/static/style.css").exists()  # the built-in theme's
    assert not (folder / "build/README.md").exists()


def test_init_without_a_terminal_needs_a_url_and_asks_nothing(tmp_path):
    """stdin is not a terminal: no prompt, no hang, and no silent example.org: without
    --url, one line and nothing made; with it, the name comes from the folder."""
    refused = run_o2m("init", "my-site", cwd=tmp_path, timeout=30)
    assert refused.returncode == 2  # a usage error
    assert "o2m: error: --url: needed without a terminal" in refused.stderr
    assert "hint:" in refused.stderr and len(refused.stderr.splitlines()) == 2
    assert list(tmp_path.iterdir()) == []
    result = run_o2m("init", "my-site", "--url", "https://me.example/", cwd=tmp_path,
                     timeout=30)
    assert result.returncode == 0, result.stderr
    config = (tmp_path / "my-site/o2m.toml").read_text()
    assert 'name = "My Site"' in config and "example.org" not in config


def test_init_asks_when_interactive(tmp_path):
    """On a real terminal (a pty), init asks for the name, the URL (no example.org
    offered), the author's own name and a line about the site; the footer then names
    the author, not the site twice."""
    status, seen = dialogue(tmp_path, ["init", "s"], [
        ("Site name", "Ada's notes"), ("Public URL", "https://i.example/"),
        ("Your name", "Ada"), ("One line about the site", "Walks and bread")])
    assert status == 0, seen
    assert "example.org" not in seen
    config = tomllib.loads((tmp_path / "s/o2m.toml").read_text())["site"]
    assert (config["name"], config["url"], config["author"], config["description"]) == (
        "Ada's notes", "https://i.example/", "Ada", "Walks and bread")
    assert run_o2m("build", cwd=tmp_path / "s").returncode == 0
    page = (tmp_path / "s/build/index.html").read_text()
    assert "Ada&#39;s notes by" in page and "notes by <a" in page
    assert '<meta name="description" content="Walks and bread">' in page


def test_init_refuses_to_overwrite(tmp_path):
    """init on an existing site is refused in one line, and its o2m.toml is unchanged."""
    assert run_o2m("init", "s", "--url", "https://s.example/", cwd=tmp_path).returncode == 0
    config = (tmp_path / "s/o2m.toml").read_bytes()
    again = run_o2m("init", "s", "--name", "Other", "--url", "https://s.example/", cwd=tmp_path)
    assert again.returncode == 1 and "already an o2m site" in again.stderr
    assert again.stderr.count("\n") <= 2 and "Traceback" not in again.stderr
    assert (tmp_path / "s/o2m.toml").read_bytes() == config


def test_init_refuses_a_folder_with_content(tmp_path):
    """init in a folder that already holds files is refused, and they are unchanged."""
    (tmp_path / "s/content").mkdir(parents=True)
    (tmp_path / "s/content/mine.md").write_text("my words")
    result = run_o2m("init", "s", "--url", "https://s.example/", cwd=tmp_path)
    assert result.returncode == 1 and "not empty" in result.stderr
    assert (tmp_path / "s/content/mine.md").read_text() == "my words"


def test_init_rejects_a_bad_url_before_writing(tmp_path):
    """A URL that is not https:// is refused before anything is written: a usage error."""
    result = run_o2m("init", "s", "--url", "ftp://nope", cwd=tmp_path)
    assert result.returncode == 2 and "https://" in result.stderr
    assert not (tmp_path / "s").exists()


def test_demo_runs_the_whole_loop_in_its_own_folder(tmp_path):
    """The README's first command: three sites built, served by real `o2m serve`
    processes, fetched by each other; finishes alone, touches nothing of the user's."""
    before = set(tmp_path.iterdir())
    result = run_o2m("demo", str(tmp_path / "demo"), cwd=tmp_path, timeout=180)
    assert result.returncode == 0, result.stderr
    assert set(tmp_path.iterdir()) - before == {tmp_path / "demo"}
    out = result.stdout
    assert out.count("(o2m serve, TLS, pinned)") == 3
    assert "refused" not in out and "Traceback" not in result.stderr
    # Ada reads Sam's friends-only post; Mum's family-only view of Ada is Mum's alone
    timeline = out[out.index("$ o2m -C ada timeline"):]
    for title in ("For Ada: sourdough tips", "Sunday lunch", "Plum jam", "A new workbench"):
        assert title in timeline
    # the conversation: Sam's reply, addressed to Ada alone, reaches Mum through Ada's
    # thread, with Mum's reaction; Ada was told of both
    talk = out[out.index("a conversation:"):]
    assert "sam replied to your post" in talk and "mum reacted 🎉 to your post" in talk
    assert "new in their threads" in talk
    # Ada sees the thread on her own post, by the id her notification names
    own = talk[talk.index("$ o2m -C ada show"):talk.index("$ o2m -C ada build")]
    assert "by you" in own and "reactions: 🎉 1 (mum)" in own and "1 reply:" in own
    shown = talk[talk.index("$ o2m -C mum show"):]
    assert "reactions: 🎉 1 (you)" in shown and "1 reply:" in shown
    assert any(line.strip() == "Count me in! I'll bring the sourdough."
               for line in shown.splitlines())
    build = tmp_path / "demo/ada/build"
    assert len(list(build.rglob("*.html"))) > 40
    assert list((build / "media").rglob("*.svg"))
    assert not any(p.name in ("sam", "mum") for p in build.rglob("*"))
    # every server stopped: nothing listens on the ports any more
    import re
    import socket
    for port in re.findall(r"https://127\.0\.0\.1:(\d+)/", out):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", int(port))) != 0
    # running it again replaces the previous demo
    assert run_o2m("demo", str(tmp_path / "demo"), cwd=tmp_path, timeout=180).returncode == 0


def test_demo_refuses_a_folder_that_is_not_a_demo(tmp_path):
    """`o2m demo` never overwrites a folder it did not make."""
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious/file.txt").write_text("keep me")
    result = run_o2m("demo", str(tmp_path / "precious"), cwd=tmp_path)
    assert result.returncode == 1 and "not an o2m demo" in result.stderr
    assert (tmp_path / "precious/file.txt").read_text() == "keep me"


def test_summary_line(site):
    """The build's summary line counts the posts and those that changed."""
    for i in range(3):
        site.post(f"2026/p{i}.md", title=f"P{i}", date=f"2026-01-0{i + 1}")
    out = site.o2m("build").output
    assert out.startswith("built 3 posts (3 changed) in ")
    assert site.o2m("build").output.startswith("built 3 posts (0 changed)")


def test_build_from_a_subfolder_finds_the_site(site):
    """o2m finds its site from a subfolder, as git does."""
    site.post("2026/a.md")
    result = run_o2m("build", cwd=site.root / "content")
    assert result.returncode == 0 and (site.root / "build/index.html").exists()


def test_version_and_help():
    """--version names o2m; --help lists the commands."""
    assert run_o2m("--version", cwd=".").stdout.startswith("o2m, version")
    help_text = run_o2m("--help", cwd=".").stdout
    assert all(cmd in help_text for cmd in ("init", "build", "demo"))


def test_a_one_off_build_collects_young_garbage_less_often(site):
    """`o2m build` (run_build) raises the collector's first threshold for the rest of
    its process: a one-post edit on 10,000 posts then runs no collection instead of
    61; the other two thresholds stay as they were."""
    import gc

    from o2m_pub.cli.site import ONE_OFF_GC_THRESHOLD, run_build
    site.post("2026/a.md", title="A")
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, before[1], before[2])
        run_build(site.root)
        assert (ONE_OFF_GC_THRESHOLD, before[1], before[2]) == gc.get_threshold()
        assert ONE_OFF_GC_THRESHOLD > 700
    finally:
        gc.set_threshold(*before)
