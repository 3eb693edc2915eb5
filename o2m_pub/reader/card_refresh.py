"""The card refresh of `o2m fetch` (PROTOCOL.md §2.4 and §3.5): before a friend's feed
is read, their published card is read again, by a conditional request, and a newer one
is adopted by its signature, never by the connection it came over.

Pure over a `get` (as `fetch_plan`): the shell passes the getter of the friend's site
(checked by their pin or by CAs) and, when that TLS check fails, one of an unverified
TLS connection, over which nothing but the card is asked for.

The rule (`cards.decide_card_update`): the same key, a higher `seq`, the same `next`
and a URL the address rule allows is adopted without asking (a new URL, pin, name);
another key only through a verified rotation chain (`rotation.verify_rotation`, read
from `.well-known/o2m-rotations.json`); a replayed older card, two cards with one
`seq`, a `next` changed outside a rotation, a move from a public to a local address,
and another key without a rotation are refused with one line, and nothing stored
changes. Each adoption and each refusal is also a notification.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from o2m_pub.protocol.canonical import b64u_encode
from o2m_pub.protocol.cards import (
    MAX_CARD_BYTES,
    Card,
    CardError,
    decide_card_update,
    parse_card,
)
from o2m_pub.protocol.keyfile import fingerprint
from o2m_pub.protocol.rotation import (
    MAX_FILE_BYTES,
    ROTATIONS_PATH,
    RotationError,
    parse_rotations_file,
    verify_rotation,
)
from o2m_pub.reader.fetch_plan import CARD_PATH, Getter, Refused
from o2m_pub.reader.model import Validators


@dataclass
class CardRefresh:
    """What a friend's published card came to in one fetch."""

    card: Card  # the card to read their site with now (the stored one, or `adopted`)
    adopted: Card | None = None  # a newer card, to store in place of theirs
    rotations: tuple[bytes, ...] = ()  # the verified statements, when the key changed
    validators: Validators | None = None  # of the card file, to keep (None: keep the old)
    notifications: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None  # one line: the published card was refused
    previous: Card | None = None  # the card held before this fetch

    @property
    def rekeyed(self) -> bool:
        """Whether the adopted card has other keys: the feed secrets change (§3.1)."""
        return self.adopted is not None and (self.adopted.sign_pk, self.adopted.box_pk) \
            != (self.previous.sign_pk, self.previous.box_pk)


def refresh_card(stored: Card, get: Getter, *, etag: str | None = None,
                 last_modified: str | None = None) -> CardRefresh:
    """Read the card their site publishes and apply the card update rule (§2.4).

    Args:
        stored: the friend's card as the owner holds it.
        get: downloads a path under the site (of the stored card's URL).
        etag, last_modified: the validators kept from the last time (None: ask whole).

    Returns:
        What to use, store and report. A site that publishes no card (404) or an
        unchanged one (304) changes nothing.

    Raises:
        Refused: the download failed (the caller decides: a failed TLS check is
            retried over an unverified connection; anything else is left to the feed
            fetch to report).
    """
    same = CardRefresh(stored, previous=stored)
    resp = get(CARD_PATH, cap=MAX_CARD_BYTES, etag=etag, last_modified=last_modified)
    if resp.status in (304, 404):
        return same
    try:
        card = parse_card(resp.body)
    except CardError as e:
        same.error = f"their published card: {e}"
        return same
    validators = Validators(resp.etag, resp.last_modified)
    decision = decide_card_update(stored, card)
    if decision.kind == "unchanged":
        same.validators = validators
        return same
    if decision.kind == "key change":
        return _follow_rotation(stored, card, get, validators)
    if decision.refused:
        same.error = f"their published card was refused: {decision.detail}"
        kind = "equivocation" if decision.kind == "equivocation" else "card_refused"
        same.notifications.append((kind, f"their card: {decision.detail}"))
        return same
    return CardRefresh(card, adopted=card, validators=validators, previous=stored,
                       notifications=_changes(stored, card))


def _follow_rotation(stored: Card, card: Card, get: Getter,
                     validators: Validators) -> CardRefresh:
    """A card of another key: adopted only through a verified chain of rotations (§2.5)."""
    refused = CardRefresh(stored, previous=stored)
    try:
        resp = get(ROTATIONS_PATH, cap=MAX_FILE_BYTES)
        statements = parse_rotations_file(resp.body) if resp.status == 200 else []
        chain = verify_rotation(stored, statements, card)
    except (Refused, RotationError) as e:
        detail = e.detail if isinstance(e, Refused) else str(e)
        refused.error = (f"their published card has another key (fingerprint "
                         f"{fingerprint(card.sign_pk, card.box_pk)}) and no verified key "
                         f"rotation: {detail}")
        refused.notifications.append(("key_changed", f"their site's card has another key "
                                      f"and no verified rotation ({detail})"))
        return refused
    notes = _changes(stored, card)
    for link in chain:
        if link.reason == "compromised":
            notes.insert(0, ("key_rotated", f"reported their previous key stolen on "
                                            f"{link.created[:10]}; they moved to a new key"))
        else:
            notes.insert(0, ("key_rotated", f"moved to a new key on {link.created[:10]}"))
    return CardRefresh(card, adopted=card, rotations=tuple(link.raw for link in chain),
                       validators=validators, previous=stored, notifications=notes)


def _changes(old: Card, new: Card) -> list[tuple[str, str]]:
    """The notifications for an adopted card: what a friend sees changed (a card
    renewed with nothing to see, a higher seq alone, is adopted quietly)."""
    notes = []
    if new.url != old.url:
        notes.append(("moved", new.url))
    if new.tls_pin != old.tls_pin:
        if new.tls_pin is None:
            text = "now checked by a certificate authority (no pin)"
        else:
            text = "new pin sha256/" + b64u_encode(new.tls_pin)[:12] + "…"
        notes.append(("certificate_changed", text))
    other = [what for what, changed in (("name", new.name != old.name),
                                        ("picture", new.avatar != old.avatar),
                                        ("bio", new.bio != old.bio)) if changed]
    if new.name != old.name:
        other[0] = f"name ({new.name})"
    if other:
        notes.append(("card_changed", ", ".join(other)))
    return notes
