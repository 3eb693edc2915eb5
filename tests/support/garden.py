"""A conversation as the people in it see it (PROTOCOL.md §4): Ada posts "Garden update"
and a note to her friends; Bob, her friend, replies to the post and reacts to it; Ada's
fetch brings both. Real sites made by `o2m init`, served over TLS on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner
from support.people import Person, server_context

from o2m_pub.cli import main

NOTE_TEXT = "A quick note: the kettle is broken again."


def cli(root: Path, *args: str, input: str | None = None) -> str:
    """`o2m -C ROOT ARGS...`, which must succeed; its output."""
    result = CliRunner().invoke(main, ["-C", str(root), *args], input=input,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def cli_fails(root: Path, *args: str, input: str | None = None) -> str:
    """`o2m -C ROOT ARGS...`, which must fail; its output."""
    result = CliRunner().invoke(main, ["-C", str(root), *args], input=input)
    assert result.exit_code != 0, result.output
    return result.output


@dataclass
class Garden:
    ada: Person
    bob: Person
    bundle: str
    post: str  # the short id of Ada's "Garden update", as both see it
    note: str  # of Ada's note
    reply: str  # of Bob's reply "Lovely tomatoes!"

    def stop(self) -> None:
        for p in (self.ada, self.bob):
            p.server.stop()

    def wait_past_bobs_reply(self) -> None:
        """Sleep until the clock has passed the second Bob's reply is dated: replies
        are dated to the second and a thread orders each level by date, so a reply
        written in the same second would go before or after his by its random id."""
        (reply,) = (self.bob.root / "content" / "replies").glob("*.md")
        dated = re.search(r"^date: (\S+)$", reply.read_text(), re.M)[1]
        time.sleep(max(0.0, dt.datetime.fromisoformat(dated).timestamp() + 1 - time.time()))


def make_garden(tmp_path: Path, ca) -> Garden:  # noqa: ANN001 - the conftest's ca
    authority, bundle = ca
    context = server_context(authority)
    ada, bob = Person(tmp_path, "ada", context), Person(tmp_path, "bob", context)
    ada.befriend(bob)
    bob.befriend(ada)
    ada.post("garden", "Garden update", "friends", body="The tomatoes are in.",
             date="2026-11-20")
    (ada.root / "content" / "2026" / "note.md").write_text(
        f"---\ndate: 2026-11-21\naudience: friends\n---\n{NOTE_TEXT}\n")
    ada.build()
    assert bob.fetch(bundle)["ada"].ok
    by_title = {p.title: p.short_id for p in bob.timeline()}
    post, note = by_title["Garden update"], by_title[None]
    cli(bob.root, "reply", post, "--text", "Lovely tomatoes!")
    cli(bob.root, "react", post, "👍")
    bob.build()
    assert ada.fetch(bundle)["bob"].ok
    (reply,) = [p.short_id for p in ada.timeline() if p.reply_to]
    return Garden(ada, bob, bundle, post, note, reply)
