"""QR codes of cards (and invitations): images a phone can read, and a clean error for
a text too long for one."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import nacl.signing
import pytest

from o2m_pub.friends.qr import QRTooBigError, qr_png, qr_svg, qr_terminal
from o2m_pub.protocol.cards import card_to_text, make_card


def vector_card(extra=None):  # noqa: ANN001, ANN201
    """A card like the spec's vector (Ada's keys), with extra fields."""
    return make_card(nacl.signing.SigningKey(bytes(range(32))), name="Ada",
                     url="https://ada.example/", box_pk=bytes(range(32, 64)), tls_pin=None,
                     created=dt.datetime(2026, 11, 24, 10, 30, tzinfo=dt.timezone.utc),
                     **({"extra": extra} if extra else {}))



def test_qr_outputs_are_valid_images():
    """The SVG parses as XML with an <svg> root, the PNG has its magic bytes, the
    terminal form draws something."""
    card = vector_card()
    svg = qr_svg(card_to_text(card))
    assert ET.fromstring(svg).tag.endswith("svg")
    assert qr_png(card_to_text(card)).startswith(b"\x89PNG\r\n\x1a\n")
    term = qr_terminal(card_to_text(card))
    assert term.strip() and "█" in term
    assert len(term.splitlines()) > 20


def test_card_too_big_for_a_qr_code_is_a_clean_error():
    """A card within 4 KiB can still be over a QR code's capacity: say so."""
    card = vector_card(extra={"about": "x" * 3000})
    with pytest.raises(QRTooBigError):
        qr_png(card_to_text(card))


