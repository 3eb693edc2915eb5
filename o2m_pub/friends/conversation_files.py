"""The owner's side of conversations (PROTOCOL.md §4) as files in the state folder, read
by the build and written by `o2m react`, `o2m fetch` and `o2m thread hide`:

- `.o2m/reactions.json`: the owner's reactions, one per post reacted to (the build puts
  each, as a signed statement, in the feeds of its audience; removing one is `--undo`,
  which the build turns into a tombstone);
- `.o2m/conversations.json`: for each of the owner's posts, the reply links and
  reactions its item carries (§4.4), as the last fetch found them, hidden replies left
  out. The reader writes it; the build only reads it, so the site never imports the
  reader.

Both are small JSON documents, written whole and durably (0600, never published).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from o2m_pub._files import write_file
from o2m_pub.config import STATE_DIR

REACTIONS_FILE = "reactions.json"
CONVERSATIONS_FILE = "conversations.json"


@dataclass(frozen=True)
class OwnReaction:
    """One reaction of the owner's: to which post, which emoji, since when, to whom."""

    id: str  # protocol.conversation.reaction_id
    to: str  # the post reference's text form
    emoji: str
    date: str  # RFC 3339 UTC
    audience: tuple[str, ...]  # friend names whose feeds carry it

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps([self.to, self.emoji, self.date],
                                         ensure_ascii=False).encode()).hexdigest()[:32]


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def load_reactions(root: Path) -> dict[str, OwnReaction]:
    """The owner's reactions, by reaction id."""
    doc = _read(root / STATE_DIR / REACTIONS_FILE).get("reactions", {})
    out = {}
    for rid, r in doc.items() if isinstance(doc, dict) else ():
        try:
            out[rid] = OwnReaction(rid, r["to"], r["emoji"], r["date"], tuple(r["audience"]))
        except (KeyError, TypeError):
            continue
    return out


def save_reactions(root: Path, reactions: dict[str, OwnReaction]) -> None:
    doc = {"v": 1, "reactions": {rid: {"to": r.to, "emoji": r.emoji, "date": r.date,
                                       "audience": list(r.audience)}
                                 for rid, r in sorted(reactions.items())}}
    (root / STATE_DIR).mkdir(mode=0o700, exist_ok=True)
    write_file(root / STATE_DIR / REACTIONS_FILE,
               json.dumps(doc, ensure_ascii=False, indent=1).encode(), mode=0o600)


def load_conversations(root: Path) -> dict[str, dict[str, list[Any]]]:
    """Own post item id -> {"replies": [link…], "reactions": [b64u statement…]}."""
    posts = _read(root / STATE_DIR / CONVERSATIONS_FILE).get("posts", {})
    return posts if isinstance(posts, dict) else {}


def save_conversations(root: Path, posts: dict[str, dict[str, list[Any]]]) -> bool:
    """Write the links for the next build; returns whether they changed."""
    path = root / STATE_DIR / CONVERSATIONS_FILE
    data = json.dumps({"v": 1, "posts": posts}, sort_keys=True, indent=1).encode()
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    (root / STATE_DIR).mkdir(mode=0o700, exist_ok=True)
    write_file(path, data, mode=0o600)
    return True


def extra_digest(extra: dict[str, list[Any]]) -> str:
    """The digest of an item's conversation fields (empty for none)."""
    if not extra.get("replies") and not extra.get("reactions"):
        return ""
    return hashlib.sha256(json.dumps(extra, sort_keys=True).encode()).hexdigest()[:32]
