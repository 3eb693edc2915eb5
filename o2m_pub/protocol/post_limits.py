"""The limits a reader holds an author's posts to (PROTOCOL.md §1.4 and §3.3), in one
place for both sides: the reader refuses what breaks them, and the writer keeps within
them, so what o2m publishes is never refused by its own reader.

A private post that breaks §3.3's limits fails at every friend (that post alone); a
public feed that breaks §1.4's is refused whole (every public post of the site). So the
builder reports a post's fields as bad input (`text_problem`, `tags_problem`, with the
file's line) and fits `feed.json` to the caps before it publishes it.

Lengths of text are counted in code points (Python's `len` of a `str`), sizes in bytes.
"""

from __future__ import annotations

from typing import Sequence

# §3.3: a post's fields (private posts); §1.4 holds a public item's title and summary
# to the same lengths
MAX_TITLE = 4096
MAX_SUMMARY = 4096
MAX_TAGS = 64
MAX_TAG = 128

# §1.4: feed.json as a reader takes it
MAX_PUBLIC_FEED_BYTES = 4 << 20
MAX_PUBLIC_ITEMS = 1000
MAX_CONTENT_HTML = 1 << 20  # code points of one item's `content_html`
MAX_PUBLIC_MEDIA = 64  # entries of one item's `_o2m.media` (as §3.3's attachments)

_TEXT_LIMITS = {"title": MAX_TITLE, "summary": MAX_SUMMARY}


def text_problem(key: str, value: str) -> str | None:
    """What is wrong with a post's `title` or `summary` (§1.4, §3.3), or None.

    Args:
        key: "title" or "summary".
        value: the text, as it will be published.

    Returns:
        One line such as "`title` has 5,000 characters; a reader takes at most 4,096",
        or None when a reader takes it.
    """
    limit = _TEXT_LIMITS[key]
    if len(value) > limit:
        return f"`{key}` has {len(value):,} characters; a reader takes at most {limit:,}"
    return None


def tags_problem(tags: Sequence[str]) -> str | None:
    """What is wrong with a post's tags (§3.3: at most 64, each of 1 to 128 code
    points), or None.

    Args:
        tags: the tags, as they will be published (without duplicates).

    Returns:
        One line naming the count or the first tag out of bounds, or None.
    """
    if len(tags) > MAX_TAGS:
        return f"`tags` has {len(tags)} tags; a reader takes at most {MAX_TAGS}"
    for tag in tags:
        if not 0 < len(tag) <= MAX_TAG:
            shown = tag if len(tag) <= 20 else tag[:20] + "…"
            return (f"the tag {shown!r} has {len(tag):,} characters; a reader takes 1 to "
                    f"{MAX_TAG}")
    return None
