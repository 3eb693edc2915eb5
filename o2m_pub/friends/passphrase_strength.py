"""How weak a new passphrase looks, by a few simple rules (zxcvbn's spirit, not its
dictionaries): `o2m init` warns before it seals the keys that guard every friend's feed.

Pure: text in, a reason or None out. The rules are rough on purpose and only ever
warn; a passphrase is never refused for them.
"""

from __future__ import annotations

import re

MIN_CHARACTERS = 12
MIN_WORDS = 3
_WORD = re.compile(r"[^\W\d_]{2,}")  # a run of two or more letters, in any script


def _kinds(text: str) -> int:
    """How many kinds of character the text mixes: lower, upper, digits, others."""
    return sum((any(c.islower() for c in text), any(c.isupper() for c in text),
                any(c.isdigit() for c in text),
                any(not c.isalnum() and not c.isspace() for c in text)))


def passphrase_weakness(passphrase: bytes) -> str | None:
    """Why `passphrase` looks weak, as the end of a sentence ("it has only 8
    characters"), or None when it passes the rules.

    Weak: fewer than 12 characters; or fewer than 3 distinct words, unless it mixes at
    least three kinds of character (lower and upper case, digits, punctuation); or
    mostly one repeated character. A word said again counts once, and the reason says
    so ("carol carol carol carol" has four words, but only one different).
    """
    text = passphrase.decode("utf-8", "replace")
    if len(text) < MIN_CHARACTERS:
        return f"it has only {len(text)} character{'s' if len(text) != 1 else ''}"
    if len(set(text)) * 3 < len(text) // 2 or len(set(text)) < 5:
        return "it repeats a few characters"
    found = _WORD.findall(text)
    words = {w.casefold() for w in found}
    if len(words) < MIN_WORDS and _kinds(text) < 3:
        if len(found) < MIN_WORDS:
            return f"it has fewer than {MIN_WORDS} words"
        return (f"it has only {len(words)} different word{'s' if len(words) != 1 else ''} "
                f"({len(found)} in all: a repeated word adds little)")
    return None
