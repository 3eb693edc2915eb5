"""QR codes of the texts people exchange to become friends: a card (`o2m1:…`) and, later,
an invitation. Drawn for a terminal, or as PNG and SVG files (segno), for a phone's
camera to read from a screen or from paper."""

from __future__ import annotations

import io

import segno

from o2m_pub.errors import O2MError


class QRTooBigError(O2MError, ValueError):
    """This text is too long for a QR code."""

    hint = "share the o2m1:… text or the card file instead"


def _qr(text: str) -> segno.QRCode:
    """A QR code of `text`, at level M (15 % damage) if it fits, else L."""
    for level in ("m", "l"):
        try:
            return segno.make(text, error=level, micro=False)
        except segno.DataOverflowError:
            continue
    raise QRTooBigError(f"the text ({len(text)} characters) does not fit in a QR code")


def qr_svg(text: str, *, scale: int = 4) -> bytes:
    """The QR code of `text` as an SVG document (UTF-8 bytes).

    Raises:
        QRTooBigError: `text` does not fit in a QR code.
    """
    out = io.BytesIO()
    _qr(text).save(out, kind="svg", scale=scale, border=4)
    return out.getvalue()


def qr_png(text: str, *, scale: int = 4) -> bytes:
    """The QR code of `text` as a PNG image.

    Raises:
        QRTooBigError: `text` does not fit in a QR code.
    """
    out = io.BytesIO()
    _qr(text).save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def qr_terminal(text: str, *, compact: bool = True) -> str:
    """The QR code of `text` drawn with block characters for a terminal (two rows per
    line when `compact`), with the quiet zone scanners need.

    Raises:
        QRTooBigError: `text` does not fit in a QR code.
    """
    out = io.StringIO()
    _qr(text).terminal(out=out, compact=compact, border=4)
    return out.getvalue()
