"""Photos uploaded from the desk: checked by what they are, not by what they claim, and
re-encoded so that nothing but the pixels reaches `content/` (no GPS position, no camera
serial, no comment: no metadata at all).

- the bytes must open with Pillow as JPEG, PNG, WebP or GIF (the name and the browser's
  content type are ignored);
- at most `MAX_BYTES` uploaded and `MAX_PIXELS` decoded (a small file can claim a huge
  image: a decompression bomb), and Pillow's own bomb check is an error, not a warning;
- turned upright by its EXIF orientation, shrunk to `MAX_SIDE` pixels on its long side,
  and written anew: JPEG stays JPEG, PNG and GIF become PNG (a GIF's first frame), WebP
  stays WebP.

The file name is the desk's (`photo-N.ext`), never the uploaded one. The owner's
picture (`square_avatar`) goes through the same checks, then is cropped to its middle
square and written as a PNG of `AVATAR_SIDE` pixels.

    PhotoError (DeskError)   an upload that is no usable photo
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from o2m_pub.desk.web import DeskError

MAX_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 40_000_000
MAX_SIDE = 2560
_FORMATS = {"JPEG": ("jpg", "image/jpeg"), "PNG": ("png", "image/png"),
            "WEBP": ("webp", "image/webp"), "GIF": ("png", "image/png")}


class PhotoError(DeskError):
    """This upload is not a photo the desk can use."""

    hint = "upload a JPEG, PNG, WebP or GIF image of at most 20 MB"


@dataclass(frozen=True)
class Photo:
    data: bytes
    extension: str
    media_type: str
    width: int
    height: int


def prepare(data: bytes) -> Photo:
    """The uploaded bytes as a clean photo to store.

    Raises:
        PhotoError: empty, too big, not an image of an accepted kind, or damaged.
    """
    from PIL import Image, ImageOps

    if not data:
        raise PhotoError("the photo is empty")
    if len(data) > MAX_BYTES:
        raise PhotoError(f"the photo is over {MAX_BYTES // 2**20} MB")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                kind = probe.format
                if kind not in _FORMATS:
                    raise PhotoError(f"not a JPEG, PNG, WebP or GIF image ({kind or 'unknown'})")
                if probe.width * probe.height > MAX_PIXELS:
                    raise PhotoError("the image is too large in pixels")
                probe.verify()
            with Image.open(io.BytesIO(data)) as image:
                image.seek(0)
                image.load()
                upright = ImageOps.exif_transpose(image)
    except PhotoError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoError("the image is too large in pixels") from None
    except Exception as e:  # Pillow raises many kinds for damaged input  # noqa: BLE001
        raise PhotoError(f"the image cannot be read ({type(e).__name__})") from None
    extension, media_type = _FORMATS[kind]
    upright.thumbnail((MAX_SIDE, MAX_SIDE))
    clean = _pixels_only(upright, kind)
    out = io.BytesIO()
    if kind == "JPEG":
        clean.save(out, "JPEG", quality=88, optimize=True)
    elif kind == "WEBP":
        clean.save(out, "WEBP", quality=88)
    else:
        clean.save(out, "PNG", optimize=True)
    return Photo(out.getvalue(), extension, media_type, clean.width, clean.height)


def _pixels_only(image, kind: str):  # noqa: ANN001, ANN202 - PIL images
    """A new image holding the pixels alone: no EXIF, XMP, ICC, comments or text."""
    from PIL import Image

    mode = image.mode
    if kind == "JPEG" and mode not in ("RGB", "L"):
        mode = "RGB"
    elif kind in ("PNG", "GIF", "WEBP") and mode not in ("RGB", "RGBA", "L", "LA"):
        mode = "RGBA"
    converted = image.convert(mode) if image.mode != mode else image
    fresh = Image.new(converted.mode, converted.size)
    fresh.paste(converted)
    return fresh


AVATAR_SIDE = 256  # px: a card's picture shows at 44 to 96 px; twice that for sharp screens


def square_avatar(data: bytes) -> bytes:
    """The owner's uploaded picture as their card's: checked and cleaned as any photo
    (`prepare`), the middle square cut out, `AVATAR_SIDE` pixels wide, as a PNG (far
    below a card picture's 512 KiB, PROTOCOL.md §2.4).

    Raises:
        PhotoError: as `prepare`.
    """
    from PIL import Image, ImageOps

    photo = prepare(data)
    with Image.open(io.BytesIO(photo.data)) as image:
        image.load()
        side = min(image.width, image.height)
        square = ImageOps.fit(image, (side, side), method=Image.Resampling.LANCZOS)
        square = square.resize((AVATAR_SIDE, AVATAR_SIDE), Image.Resampling.LANCZOS) \
            if side > AVATAR_SIDE else square
        if square.mode not in ("RGB", "RGBA"):
            square = square.convert("RGBA")
        out = io.BytesIO()
        square.save(out, "PNG", optimize=True)
    return out.getvalue()
