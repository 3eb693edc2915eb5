"""A new site as the tests start from: `o2m init` run for real (keys under the tests'
passphrase and fast KDF, from conftest), its starter posts removed, so a test's posts
are the only ones, and friends added with `o2m friend add` as a user adds them."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from o2m_pub.cli import main
from o2m_pub.protocol.cards import card_to_text
from support.friend import Friend


def new_site(base: Path, name: str = "ada", url: str | None = None, *init_args: str) -> Path:
    """`base/name`, made by `o2m init --name Name --url URL` (https://NAME.example/ by
    default) with any further `init_args`, and no post in content/."""
    root = base / name
    result = CliRunner().invoke(main, ["init", str(root), "--name", name.title(), "--url",
                                       url or f"https://{name}.example/", *init_args],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for p in (root / "content").rglob("*.md"):
        p.unlink()
    return root


def add_friends(root: Path, friends: dict[str, Friend]) -> None:
    """`o2m friend add NAME CARD --yes` for each."""
    for name, friend in friends.items():
        result = CliRunner().invoke(main, ["-C", str(root), "friend", "add", name,
                                           card_to_text(friend.card), "--yes"],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
