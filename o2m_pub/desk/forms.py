"""Request bodies as the desk reads them: URL-encoded forms and multipart uploads.
Pure functions over bytes, with caps, so a hostile body costs bounded work; the shell
refuses a body past its cap at the headers (`body_cap`), before reading it.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qsl

MAX_FORM_BYTES = 256 * 1024  # a post's text and its fields
MAX_UPLOAD_BYTES = 25 * 1024 * 1024  # one photo as a phone takes it, plus the form
MAX_FIELDS = 200
SIGNED_OUT_BODY_BYTES = 8 * 1024  # the sign-in form: a passphrase and a token


class FormError(ValueError):
    """A body that is not a form the desk reads."""


@dataclass(frozen=True)
class Upload:
    """A file from a form: the name the browser gave (never used as a path) and its
    bytes."""

    filename: str
    content_type: str
    data: bytes


def body_cap(method: str, content_type: str, signed_in: bool) -> int:
    """The most bytes a request body may have, decided from its headers alone: nothing
    on GET or HEAD, a small form before sign-in, an upload only once signed in."""
    if method not in ("POST",):
        return 0
    if not signed_in:
        return SIGNED_OUT_BODY_BYTES
    if content_type.split(";")[0].strip().lower() == "multipart/form-data":
        return MAX_UPLOAD_BYTES
    return MAX_FORM_BYTES


def parse_body(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, Upload]]:
    """The fields (and files) of a POST body.

    Raises:
        FormError: not a form, too many fields, or text that is not UTF-8.
    """
    kind = content_type.split(";")[0].strip().lower()
    if not body:
        return {}, {}
    if kind == "application/x-www-form-urlencoded":
        return parse_urlencoded(body), {}
    if kind == "multipart/form-data":
        return parse_multipart(body, content_type)
    raise FormError(f"not a form ({kind or 'no content type'})")


def parse_urlencoded(body: bytes) -> dict[str, str]:
    """An URL-encoded form; of repeated names the first value wins, except names
    ending in "[]", whose values are joined by newlines (checkbox lists)."""
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True,
                          max_num_fields=MAX_FIELDS, errors="strict")
    except (UnicodeDecodeError, ValueError) as e:
        raise FormError(f"not a form: {e}") from None
    return _fields(pairs)


def _fields(pairs: list[tuple[str, str]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name.endswith("[]"):
            fields[name] = f"{fields[name]}\n{value}" if name in fields else value
        else:
            fields.setdefault(name, value)
    return fields


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, Upload]]:
    """A multipart/form-data body (RFC 7578): text fields and files.

    Raises:
        FormError: no boundary, too many parts, or a text field that is not UTF-8.
    """
    if "boundary=" not in content_type:
        raise FormError("a multipart form without a boundary")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise FormError("not a multipart form")
    pairs: list[tuple[str, str]] = []
    files: dict[str, Upload] = {}
    for count, part in enumerate(message.iter_parts()):
        if count >= MAX_FIELDS:
            raise FormError("too many fields")
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            continue
        data = part.get_payload(decode=True) or b""
        filename = part.get_param("filename", header="content-disposition")
        if filename is not None:
            if data and name not in files:
                files[name] = Upload(str(filename)[:255], part.get_content_type(), data)
            continue
        try:
            pairs.append((name, data.decode("utf-8")))
        except UnicodeDecodeError:
            raise FormError(f"the field {name!r} is not UTF-8 text") from None
    return _fields(pairs), files
