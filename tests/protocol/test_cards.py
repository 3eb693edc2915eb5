"""Contact cards (PROTOCOL.md §2.4): one test per attack of THREATS.md "Card parsing"
(cases 1-7) and 39, the fixed test vector of the spec, and properties that no input
makes the reader raise anything but a CardError."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nacl.public
import nacl.signing
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from o2m_pub.errors import O2MError
from o2m_pub.protocol.canonical import (
    MAX_DEPTH,
    EncodingError,
    _nested_too_deeply,
    b64u_encode,
    canonical_json,
    parse_json,
)
from o2m_pub.protocol.cards import (
    MAX_CARD_BYTES,
    MAX_TEXT_CHARS,
    MAX_WRAPPED_TEXT_CHARS,
    TEXT_PREFIX,
    BadCardSignatureError,
    Card,
    CardError,
    CertificateError,
    InvalidCardFieldError,
    MalformedCardError,
    UnsupportedCardVersionError,
    card_from_any,
    card_from_text,
    card_to_text,
    key_changed,
    make_card,
    parse_card,
    same_identity,
    tls_pin_from_certificate,
)
from o2m_pub.protocol.invite import INVITE_PREFIX, MAX_INVITATION_BYTES

# ---------------------------------------------------------------- the test vector (§2.4)

SEED = bytes(range(32))
SIGNING_KEY = nacl.signing.SigningKey(SEED)
BOX_PK = bytes(nacl.public.PrivateKey(bytes(range(32, 64))).public_key)
CREATED = datetime(2026, 11, 24, 10, 30, 0, tzinfo=timezone.utc)
PIN = hashlib.sha256(b"pin").digest()

VECTOR_BYTES = (
    b'{"box_pk":"NYBy1jZYgNGu6jKa35EhODhR7SGijjt16WXQ0s0WYlQ",'
    b'"created":"2026-11-24T10:30:00Z","name":"Ada",'
    b'"sig":"uxmWGRhDa0n1y9BHRFSL88L66u7ZPUvsl2OMQ9j3sAYaDrARCmNdHXPPgQqc2dCh'
    b'VxLkGnoHm4wZGbNjatdnDA",'
    b'"sign_pk":"A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg",'
    b'"tls_pin":"sha256/ZPRqdSahhtI0ZVJFOuR4ylEkRnT1shuhUL1IOzn3yBI",'
    b'"type":"o2m-card","url":"https://ada.example/","v":1}'
)
VECTOR_TEXT = (
    "o2m1:eyJib3hfcGsiOiJOWUJ5MWpaWWdOR3U2akthMzVFaE9EaFI3U0dpamp0MTZXWFEwczBXWWxRIiwiY3Jl"
    "YXRlZCI6IjIwMjYtMTEtMjRUMTA6MzA6MDBaIiwibmFtZSI6IkFkYSIsInNpZyI6InV4bVdHUmhEYTBuMXk5"
    "QkhSRlNMODhMNjZ1N1pQVXZzbDJPTVE5ajNzQVlhRHJBUkNtTmRIWFBQZ1FxYzJkQ2hWeExrR25vSG00d1pH"
    "Yk5qYXRkbkRBIiwic2lnbl9wayI6IkE2RUh2X1BPRUw0ZGNOMFk1MHZBbVdmazFqQ2JwUTFmSGR5R1pCSlZN"
    "YmciLCJ0bHNfcGluIjoic2hhMjU2L1pQUnFkU2FoaHRJMFpWSkZPdVI0eWxFa1JuVDFzaHVoVUwxSU96bjN5"
    "QkkiLCJ0eXBlIjoibzJtLWNhcmQiLCJ1cmwiOiJodHRwczovL2FkYS5leGFtcGxlLyIsInYiOjF9"
)

# The X25519 public keys libsodium refuses (§2.4): 0, 1, the two points of order 8,
# p-1, p and p+1 (little-endian), each also with the top bit set, which X25519 ignores.
_P = 2**255 - 19
_LOW_ORDER_VALUES = [
    0, 1,
    325606250916557431795983626356110631294008115727848805560023387167927233504,
    39382357235489614581723060781553021112529911719440698176882885853963445705823,
    _P - 1, _P, _P + 1,
]
LOW_ORDER_POINTS = [(v + top).to_bytes(32, "little")
                    for v in _LOW_ORDER_VALUES for top in (0, 2**255)]


def vector_card(**kw) -> Card:
    """The spec's vector card, with some arguments of make_card changed."""
    args = dict(name="Ada", url="https://ada.example/", box_pk=BOX_PK, tls_pin=PIN,
                created=CREATED)
    args.update(kw)
    return make_card(SIGNING_KEY, **args)


DELETE = object()


def signed(key: nacl.signing.SigningKey = SIGNING_KEY, **changes) -> bytes:
    """The vector card's JSON with fields changed (DELETE removes one), re-signed by
    `key`, so the change under test is the card's only defect."""
    doc = json.loads(VECTOR_BYTES)
    del doc["sig"]
    doc["sign_pk"] = b64u_encode(bytes(key.verify_key))
    for k, v in changes.items():
        if v is DELETE:
            doc.pop(k, None)
        else:
            doc[k] = v
    sig = key.sign(b"o2m-card-v1\n" + canonical_json(doc)).signature
    doc["sig"] = b64u_encode(sig)
    return canonical_json(doc)


def assert_rejected(data: bytes, error: type[CardError] = CardError, *,
                    field: str | None = None) -> CardError:
    """The card is refused with `error`, a usable message and a hint."""
    with pytest.raises(error) as info:
        parse_card(data)
    e = info.value
    assert isinstance(e, O2MError) and isinstance(e, ValueError)
    assert str(e) and e.hint
    if field is not None:
        assert isinstance(e, InvalidCardFieldError) and e.field == field, str(e)
    return e


# ---------------------------------------------------------------- round trips and vector


def test_made_card_parses_back_to_the_same_card():
    """A card we make is one every reader accepts, with the fields we gave."""
    card = vector_card()
    assert parse_card(card.raw) == card
    assert card.name == "Ada" and card.url == "https://ada.example/"
    assert card.sign_pk == bytes(SIGNING_KEY.verify_key) and card.box_pk == BOX_PK
    assert card.tls_pin == PIN and card.created == "2026-11-24T10:30:00Z"
    assert card.created_at == CREATED
    assert dict(card.extra) == {}


def test_text_form_round_trips():
    """o2m1: text carries the exact bytes."""
    card = vector_card()
    text = card_to_text(card)
    assert text.startswith("o2m1:")
    assert card_from_text(text) == card
    assert card_from_text(text).raw == card.raw


def test_fixed_vector_gives_the_exact_bytes_in_the_spec():
    """Drift in canonical JSON, key derivation or signing changes these literals
    (PROTOCOL.md §2.4 test vector)."""
    card = vector_card()
    assert card.raw == VECTOR_BYTES
    assert card_to_text(card) == VECTOR_TEXT
    assert parse_card(VECTOR_BYTES) == card


def test_vector_signature_verifies_with_an_independent_ed25519():
    """The signature is plain Ed25519 over context + canonical JSON without "sig", so a
    second implementation (pyca/cryptography) agrees."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from o2m_pub.protocol.canonical import b64u_decode

    doc = json.loads(VECTOR_BYTES)
    sig = b64u_decode(doc.pop("sig"))
    pk = Ed25519PublicKey.from_public_bytes(b64u_decode(doc["sign_pk"]))
    pk.verify(sig, b"o2m-card-v1\n" + canonical_json(doc))  # raises if not


def test_card_without_pin_omits_the_key():
    """tls_pin is optional: absent, never null."""
    card = vector_card(tls_pin=None)
    assert card.tls_pin is None
    assert b"tls_pin" not in card.raw
    assert parse_card(card.raw) == card


def test_created_is_written_in_utc_whole_seconds():
    """§2.1: any aware time becomes UTC with a Z; sub-seconds are dropped."""
    plus2 = timezone(timedelta(hours=2))
    card = vector_card(created=datetime(2026, 11, 24, 12, 30, 0, 999_999, tzinfo=plus2))
    assert card.created == "2026-11-24T10:30:00Z"


def test_naive_created_is_a_caller_bug():
    """A naive datetime has no defined UTC time; refuse rather than guess."""
    with pytest.raises(ValueError):
        vector_card(created=datetime(2026, 11, 24, 10, 30))


def test_make_card_normalizes_the_name_to_nfc():
    """A decomposed é is written composed, so the reader's NFC rule holds."""
    card = vector_card(name="Re\u0301my")
    assert card.name == "R\u00e9my"


def test_make_card_refuses_what_the_reader_refuses():
    """One set of rules: a bad field never reaches a signature."""
    with pytest.raises(InvalidCardFieldError) as info:
        vector_card(name="evil\u202e")
    assert info.value.hint == "fix the name given for your card"
    with pytest.raises(InvalidCardFieldError):
        vector_card(url="http://ada.example/")
    with pytest.raises(InvalidCardFieldError):
        vector_card(box_pk=LOW_ORDER_POINTS[0])
    with pytest.raises(InvalidCardFieldError):
        vector_card(tls_pin=b"short")
    with pytest.raises(InvalidCardFieldError):
        vector_card(extra={"name": "Eve"})
    with pytest.raises(MalformedCardError):
        vector_card(extra={"note": "x" * MAX_CARD_BYTES})  # ("bio" is a field now)


# ---------------------------------------------------------------- THREATS 1: tampering


def flipped(data: bytes, i: int, bit: int) -> bytes:
    mutated = bytearray(data)
    mutated[i] ^= 1 << bit
    return bytes(mutated)


def site_files(root) -> dict[str, bytes]:  # noqa: ANN001
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_threat_1_a_card_with_one_flipped_bit_is_rejected_and_nothing_is_stored(site):
    """THREATS 1: every single-bit flip anywhere in a valid card is refused by the
    reader, in both shapes (file bytes and o2m1: text); and `o2m friend add` of a
    flipped card file (one flip at every byte) fails with one line and leaves every
    file of the site as it was, while the unflipped card is then added."""
    data = VECTOR_BYTES
    for i in range(len(data)):
        for bit in range(8):
            bad = flipped(data, i, bit)
            with pytest.raises(CardError):
                parse_card(bad)
            with pytest.raises(CardError):
                card_from_text(TEXT_PREFIX + b64u_encode(bad))
    card_file = site.root.parent / "ada-card.json"
    before = site_files(site.root)
    for i in range(len(data)):
        card_file.write_bytes(flipped(data, i, i % 8))
        result = site.o2m("friend", "add", "ada", str(card_file), "--yes", ok=False)
        assert result.exit_code == 1, (i, result.output)
        assert result.output.startswith("o2m: error: ") and "Traceback" not in result.output
        assert site_files(site.root) == before, i
    card_file.write_bytes(data)
    site.o2m("friend", "add", "ada", str(card_file), "--yes")
    assert site_files(site.root) != before  # the same path stores a good card


def test_changed_field_with_old_signature_is_rejected():
    """A re-canonicalised edit (a new name) keeps the JSON valid but not the signature."""
    doc = json.loads(VECTOR_BYTES)
    doc["name"] = "Eve"
    assert_rejected(canonical_json(doc), BadCardSignatureError)


def test_card_signed_by_another_key_is_rejected():
    """The signature must be by the card's own sign_pk, not any key."""
    ada_pk = b64u_encode(bytes(SIGNING_KEY.verify_key))
    assert_rejected(signed(nacl.signing.SigningKey(bytes(32)), sign_pk=ada_pk),
                    BadCardSignatureError)


def test_low_order_signing_key_is_rejected():
    """A small-order Ed25519 key (the identity point) can "verify" forged signatures in
    lax verifiers; libsodium refuses it."""
    identity = (1).to_bytes(32, "little")
    doc = json.loads(VECTOR_BYTES)
    doc["sign_pk"] = b64u_encode(identity)
    doc["sig"] = b64u_encode(identity + bytes(32))
    assert_rejected(canonical_json(doc), BadCardSignatureError)


# ---------------------------------------------------------------- THREATS 2: duplicates


@pytest.mark.parametrize("evil", [
    VECTOR_BYTES.replace(b'"name":"Ada",', b'"name":"Ada","name":"Eve",'),
    VECTOR_BYTES.replace(b'"name":"Ada",', b'"name":"Eve","name":"Ada",'),
    VECTOR_BYTES.replace(b'"name":"Ada",', b'"name":"Ada","na\\u006de":"Eve",'),
    VECTOR_BYTES.replace(b'"v":1', b'"v":1,"v":1'),
    VECTOR_BYTES.replace(b'"v":1', b'"v":1,"zz":{"a":1,"a":2}'),
], ids=["first-wins", "last-wins", "escaped-spelling", "same-value", "nested"])
def test_threat_2_duplicate_keys_are_rejected(evil):
    """THREATS 2: two readers could pick different values of a duplicated key, so a
    duplicate anywhere (also spelled with an escape, or deep in an unknown field) is
    refused, by the card reader and by the strict JSON parser every document uses."""
    e = assert_rejected(evil, MalformedCardError)
    assert "duplicate key" in str(e)
    with pytest.raises(EncodingError, match="duplicate key"):
        parse_json(evil, max_bytes=1 << 20)


# ---------------------------------------------------------------- THREATS 3: keys


@pytest.mark.parametrize("field,length", [("sign_pk", 31), ("sign_pk", 33), ("box_pk", 31),
                                          ("box_pk", 33), ("box_pk", 0), ("sig", 63),
                                          ("sig", 65)])
def test_threat_3_key_of_wrong_length_is_rejected(field, length):
    """THREATS 3: keys are exactly 32 bytes, signatures 64."""
    value = b64u_encode(bytes(range(1, length + 1)))
    if field == "sig":
        doc = json.loads(VECTOR_BYTES)
        doc["sig"] = value
        data = canonical_json(doc)
    else:
        data = signed(**{field: value})
    assert_rejected(data, InvalidCardFieldError, field=field)


@pytest.mark.parametrize("mangle", [
    lambda s: s + "=",  # padding
    lambda s: s.replace(s[5], "+", 1),  # standard base64 alphabet
    lambda s: s.replace(s[5], "/", 1),
    lambda s: s[:10] + " " + s[10:],  # whitespace
    lambda s: s[:-1] + ("h" if s[-1] != "h" else "i"),  # non-zero unused bits
    lambda s: s[:-1],  # truncated
    lambda s: s + "A",  # one char too many (length % 4 == 1)
], ids=["padding", "plus", "slash", "space", "non-canonical", "truncated", "extra-char"])
@pytest.mark.parametrize("field", ["sign_pk", "box_pk"])
def test_threat_3_bad_base64_in_a_key_is_rejected(field, mangle):
    """THREATS 3, §2.1: padding, foreign characters and non-canonical b64u are refused,
    so one key has one spelling."""
    doc = json.loads(VECTOR_BYTES)
    assert_rejected(signed(**{field: mangle(doc[field])}), InvalidCardFieldError, field=field)


def test_threat_3_bad_base64_in_the_signature_is_rejected():
    """THREATS 3: the signature's b64u is checked like the keys'."""
    doc = json.loads(VECTOR_BYTES)
    doc["sig"] = doc["sig"][:-1] + "B"  # "A" -> "B": non-zero unused bits
    assert_rejected(canonical_json(doc), InvalidCardFieldError, field="sig")


@pytest.mark.parametrize("point", LOW_ORDER_POINTS, ids=lambda p: p.hex()[:8] + p.hex()[-2:])
def test_threat_3_zero_or_low_order_box_key_is_rejected(point):
    """THREATS 3: a zero or low-order X25519 key (and its non-canonical encodings)
    would make every shared secret with it public."""
    e = assert_rejected(signed(box_pk=b64u_encode(point)), InvalidCardFieldError,
                        field="box_pk")
    assert "low-order" in str(e)


def test_ordinary_box_key_with_top_bit_set_is_kept_as_is():
    """Only low-order points are refused; the bytes of a card are never rewritten."""
    pk = bytearray(BOX_PK)
    pk[31] |= 0x80
    card = parse_card(signed(box_pk=b64u_encode(bytes(pk))))
    assert card.box_pk == bytes(pk)


# ---------------------------------------------------------------- THREATS 4: url


@pytest.mark.parametrize("url", [
    "http://ada.example/",
    "HTTPS://ada.example/",
    "ftp://ada.example/",
    "https://user@ada.example/",
    "https://user:pw@ada.example/",
    "https://ada.example@evil.example/",
    "https://ada.example/?q=1",
    "https://ada.example/#top",
    "https://ada.example/?",
    "https://ada.example",
    "https://ada.example/blog",
    "https:///",
    "https://:443/",
    "https://ada.example:99999/",
    "https://ada.example:port/",
    "https://[::1/",
    "https://[not-ipv6]/",
    "https://ev\til.example/",
    "https://ev\nil.example/",
    "https://ada example/",
    "https://ädä.example/",
    "https://ada.example\\@evil.example/",
    "https://-ada.example/",
    "https://%61da.example/",
    "//ada.example/",
    "",
])
def test_threat_4_non_https_or_userinfo_url_is_rejected(url):
    """THREATS 4: only an https base URL with a host, without userinfo, query or
    fragment, and with no character urlsplit would silently drop."""
    assert_rejected(signed(url=url), InvalidCardFieldError, field="url")


@pytest.mark.parametrize("url", ["https://ada.example/", "https://ada.example:8443/o2m/",
                                 "https://[2001:db8::1]/", "https://xn--d-xaa.example/",
                                 "https://ada.example/~ada/@me/", "https://127.0.0.1/"])
def test_good_url_is_accepted(url):
    """The rules do not refuse ordinary sites, ports, paths or IP literals."""
    assert parse_card(signed(url=url)).url == url


@pytest.mark.parametrize("url", [
    "https://[v1.x]/",
    "https://[v1.x]:443/",
    "https://[fe80::1%25eth0]/",
    "https://[fe80::1%eth0]/",
    "https://[fe80::1%25]/",
    "https://[ada.example]/",
    "https://[127.0.0.1]/",
    "https://[]/",
    "https://[2001:db8::1]junk/",
    "https://[2001:db8::1]x:443/",
    "https://ada[::1]/",
    "https://ada.example]/",
    "https://[2001:db8::1/",
    "https://[2001:db8::1]]/",
    "https://[[2001:db8::1]]/",
    "https://[2001:db8::1::2]/",
])
def test_a_bracketed_host_must_be_an_ipv6_address_without_zone(url):
    """§2.4: "a DNS name or bracketed IPv6 host": between the brackets an IPv6 address
    and nothing else: not RFC 3986's IPvFuture (`[v1.x]`), not a zone id (RFC 6874,
    `%25eth0`: a name of the reader's own interface), not a name or an IPv4 address in
    brackets, and nothing around the brackets but the port."""
    assert_rejected(signed(url=url), InvalidCardFieldError, field="url")


@pytest.mark.parametrize("url", ["https://[2001:db8::1]:8443/", "https://[::ffff:192.0.2.1]/",
                                 "https://[2001:DB8::A]/o2m/", "https://[::1]/",
                                 "https://ADA.Example/"])
def test_ipv6_literals_with_ports_and_either_case_are_accepted(url):
    """An IPv6 address with a port, an IPv4-mapped one, hex digits and host names in
    either case (compared without case) stay valid."""
    assert parse_card(signed(url=url)).url == url


# ---------------------------------------------------------------- THREATS 5: endless data


def _deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


OVER_64_KIB = signed(about="x" * (64 * 1024))  # a validly signed card, only too big
HUGE_CARDS = {
    # name: (bytes, what the strict parser says when no size cap stops it first)
    "signed-card-over-64-KiB": (OVER_64_KIB, None),
    "garbage-over-64-KiB": (b'{"name":"' + b"a" * (64 * 1024) + b'"}', None),
    "nested-10^5": (_deep(100_000), "nested"),
    "nested-10^5-in-a-field": (VECTOR_BYTES[:-1] + b',"zz":' + _deep(100_000) + b"}", "nested"),
    "nested-40-within-the-cap": (VECTOR_BYTES[:-1] + b',"zz":' + _deep(40) + b"}", "nested"),
    "NaN": (VECTOR_BYTES.replace(b'"v":1', b'"v":NaN'), "NaN"),
    "Infinity": (VECTOR_BYTES.replace(b'"v":1', b'"v":Infinity'), "Infinity"),
    "-Infinity": (VECTOR_BYTES.replace(b'"v":1', b'"v":-Infinity'), "Infinity"),
    "float": (VECTOR_BYTES.replace(b'"v":1', b'"v":1.0'), "float"),
    "exponent": (VECTOR_BYTES.replace(b'"v":1', b'"v":1e3'), "float"),
    "int-of-4301-digits": (b'{"v":' + b"9" * 4301 + b"}", "JSON"),
    "int-of-4301-digits-in-a-card": (VECTOR_BYTES.replace(b'"v":1', b'"v":' + b"9" * 4301),
                                     "JSON"),
    "int-of-10^6-digits": (b"[" + b"1" * 1_000_000 + b"]", "JSON"),
    "int-2^53": (VECTOR_BYTES.replace(b'"v":1', b'"v":9007199254740992'), "range"),
    "negative-int": (VECTOR_BYTES.replace(b'"v":1', b'"v":-1'), "range"),
}


@pytest.mark.parametrize("name", HUGE_CARDS)
def test_threat_5_huge_deep_nan_or_giant_int_card_gives_a_clean_error(name):
    """THREATS 5: a card over 64 KiB (refused by the 4 KiB cap before anything is
    decoded), 10^5 levels of nesting (they never reach a recursive parser), NaN,
    Infinity or floats, and an int of more than 4300 digits (Python's own limit) or
    outside [0, 2^53): each is one clean MalformedCardError, in the file and in the
    text form. The strict parser itself, under a 1 MiB cap (a feed head's), refuses
    the same inputs with its one error, so the card's small cap is not what saves it."""
    data, parser_says = HUGE_CARDS[name]
    e = assert_rejected(data, MalformedCardError)
    if parser_says is None:
        assert f"over {MAX_CARD_BYTES} bytes" in str(e)
    with pytest.raises(MalformedCardError):
        card_from_text(TEXT_PREFIX + b64u_encode(data))
    with pytest.raises(MalformedCardError):
        card_from_any(data)
    if parser_says is not None:
        with pytest.raises(EncodingError, match=parser_says):
            parse_json(data, max_bytes=2 << 20)


@pytest.mark.parametrize("text", ["[" * 40, "{" * 40, "[" * 40 + "]" * 20, "\\" + "[" * 40,
                                  '"' + "{" * 40],
                         ids=["brackets", "braces", "unbalanced", "after-backslash",
                              "after-quote"])
def test_brackets_inside_strings_are_not_nesting(text):
    """The nesting bound counts structure, not text: a name or any string may hold many
    brackets (and escaped quotes or backslashes before them)."""
    card = vector_card(name=text)
    assert parse_card(card.raw).name == text
    deep_text = canonical_json({"a": [text] * 3, "b": {"c": text}})
    assert parse_json(deep_text, max_bytes=1 << 20) == {"a": [text] * 3, "b": {"c": text}}


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(0, 9) | st.text(alphabet='[]{}"\\ab', max_size=6),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(
        st.text(alphabet='[]{}"\\ab', max_size=3), c, max_size=3),
    max_leaves=30)


def _depth(value) -> int:  # noqa: ANN001
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


@settings(max_examples=150, deadline=None)
@given(_json_values, st.integers(0, 40))
def test_the_nesting_bound_counts_exactly_the_structure(value, wrap):
    """The pre-scan that keeps deep input from the recursive parser agrees with the
    document's real depth, whatever brackets and escapes its strings hold."""
    for _ in range(wrap):
        value = [value]
    text = json.dumps(value)
    assert _nested_too_deeply(text) == (_depth(value) > MAX_DEPTH)


def test_huge_text_form_is_rejected_before_decoding():
    """THREATS 5 for the text form: the length is capped before b64u decoding."""
    with pytest.raises(MalformedCardError):
        card_from_text("o2m1:" + "A" * 10_000_000)
    with pytest.raises(MalformedCardError):
        card_from_any(b"o2m1:" + b"A" * 10_000_000)


def _card_of_exactly(size: int) -> Card:
    """The vector card grown by an extra field to exactly `size` bytes."""
    filler = size - len(vector_card(extra={"x": ""}).raw)
    card = vector_card(extra={"x": "a" * filler})
    assert len(card.raw) == size
    return card


@pytest.mark.parametrize("wrap", ["\r\n", "\n", " \r\n "])
def test_the_biggest_card_text_wrapped_at_every_character_is_read(wrap):
    """§2.4: the text-form cap is counted after the whitespace is removed, so a 4 KiB
    card's text (at the cap of 5 + ceil(4096·4/3) characters) is read even when a mail
    client put a line break after every character; the bound on the text as given is
    a reader limit far above that (MAX_WRAPPED_TEXT_CHARS)."""
    card = _card_of_exactly(MAX_CARD_BYTES)
    text = card_to_text(card)
    assert len(text) == MAX_TEXT_CHARS
    wrapped = wrap.join(text) + wrap
    assert len(wrapped) >= 2 * MAX_TEXT_CHARS  # what the reader refused before
    for shape in (card_from_text, card_from_any):
        assert shape(wrapped).raw == card.raw
    assert card_from_any(wrapped.encode()).raw == card.raw


def test_the_outer_bound_on_a_text_counts_the_text_as_given():
    """A text within the cap once its whitespace is gone is read up to
    MAX_WRAPPED_TEXT_CHARS characters as given, and refused above, unread (THREATS 5:
    a reader never splits megabytes of spaces)."""
    padded = VECTOR_TEXT + " " * (MAX_WRAPPED_TEXT_CHARS - len(VECTOR_TEXT))
    assert card_from_text(padded).raw == VECTOR_BYTES
    assert card_from_any(padded).raw == VECTOR_BYTES
    assert card_from_any(padded.encode()).raw == VECTOR_BYTES
    for shape in (card_from_text, card_from_any):
        with pytest.raises(MalformedCardError, match="too long"):
            shape(padded + " ")
    with pytest.raises(MalformedCardError, match="too long"):
        card_from_any(padded.encode() + b" ")


def test_protocol_md_states_the_outer_bound_the_code_uses():
    """§2.4 states the reader limit on a text as given, and the longest text form it
    must let through wrapped with CRLF after every character (§2.7's cap)."""
    spec = (Path(__file__).parents[2] / "docs/PROTOCOL.md").read_text()
    stated = re.search(r"longer than\s+([0-9,]+) characters as given", spec)
    assert stated and int(stated[1].replace(",", "")) == MAX_WRAPPED_TEXT_CHARS
    longest = re.search(r"three times ([0-9,]+) characters", spec)
    cap = len(INVITE_PREFIX) + -(-MAX_INVITATION_BYTES * 4 // 3)
    assert longest and int(longest[1].replace(",", "")) == cap
    assert 3 * cap <= MAX_WRAPPED_TEXT_CHARS and MAX_TEXT_CHARS < cap


def test_a_text_over_the_cap_once_whitespace_is_gone_is_refused():
    """The cap itself is unchanged: one character more than 5 + ceil(4096·4/3), however
    it is wrapped, is refused before decoding."""
    text = VECTOR_TEXT + "A" * (MAX_TEXT_CHARS + 1 - len(VECTOR_TEXT))
    with pytest.raises(MalformedCardError, match="too long"):
        card_from_text("\n".join(text))


# ---------------------------------------------------------------- THREATS 7: pins


@pytest.mark.parametrize("pin", [
    "sha256/" + b64u_encode(bytes(31)),
    "sha256/" + b64u_encode(bytes(33)),
    "sha256/",
    "sha1/" + b64u_encode(bytes(20)),
    "SHA256/" + b64u_encode(PIN),
    "sha256:" + b64u_encode(PIN),
    b64u_encode(PIN),
    "sha256/" + b64u_encode(PIN) + "=",
    "sha256/" + b64u_encode(PIN).replace("-", "+").replace("_", "/") + "+/",
    "sha256/" + b64u_encode(PIN)[:-1] + "J",  # non-canonical last char
    "sha256/ " + b64u_encode(PIN),
    "sha256/" + PIN.hex(),
])
def test_threat_7_malformed_tls_pin_is_rejected(pin):
    """THREATS 7: a pin is "sha256/" + b64u of exactly 32 bytes, nothing looser."""
    assert_rejected(signed(tls_pin=pin), InvalidCardFieldError, field="tls_pin")


def test_threat_7_non_string_tls_pin_is_rejected():
    """THREATS 7: no pin is an absent key, never null, a number or a list."""
    for pin in (None, 0, [], {}, True):
        assert_rejected(signed(tls_pin=pin), InvalidCardFieldError, field="tls_pin")


def test_tls_pin_is_sha256_of_the_certificates_spki():
    """§2.4: the pin is SHA-256 of the SubjectPublicKeyInfo DER, from PEM or DER alike."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.x509.oid import NameOID

    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ada.example")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(CREATED).not_valid_after(CREATED + timedelta(days=1))
            .sign(key, None))
    raw_pk = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
    # RFC 8410: an Ed25519 SubjectPublicKeyInfo is this fixed prefix and the key.
    expected = hashlib.sha256(bytes.fromhex("302a300506032b6570032100") + raw_pk).digest()
    assert tls_pin_from_certificate(cert.public_bytes(serialization.Encoding.PEM)) == expected
    assert tls_pin_from_certificate(cert.public_bytes(serialization.Encoding.DER)) == expected


def test_garbage_certificate_is_a_clean_error():
    """A file that is not a certificate is reported, not a traceback."""
    for data in (b"", b"not a cert", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END "
                 b"CERTIFICATE-----\n", bytes(100)):
        with pytest.raises(CertificateError):
            tls_pin_from_certificate(data)


# ---------------------------------------------------------------- THREATS 39: names


@pytest.mark.parametrize("name", [
    "Ada\u202eevE", "\u202aAda", "Ada\u2066", "Ada\u2069", "Ada\u200e", "Ada\u200f",
    "Ad\u200ba", "Ad\u200ca", "Ad\u200da", "\ufeffAda", "Ada\u2060", "Ada\u061c",
    "Ada\u2028", "Ada\u2029",
], ids=lambda n: next((f"U+{ord(c):04X}" for c in n if not c.isalpha()), n))
def test_name_with_bidi_or_zero_width_characters_is_rejected(name):
    """THREATS 39: a reader refuses (never strips) characters that reorder or hide text,
    so "Ada" with an RLO cannot pass for someone else."""
    assert_rejected(signed(name=name), InvalidCardFieldError, field="name")


@pytest.mark.parametrize("name", ["Ada\x00", "Ada\n", "\tAda", "Ada\x1b[31m", "Ada\x7f",
                                  "Ada\x85", "Ada\x9b"],
                         ids=["NUL", "LF", "TAB", "ESC", "DEL", "NEL", "CSI"])
def test_name_with_control_characters_is_rejected(name):
    """§2.4: control characters (C0, DEL, C1) could rewrite the terminal that shows
    the name."""
    assert_rejected(signed(name=name), InvalidCardFieldError, field="name")


def test_name_length_is_checked_in_characters():
    """§2.4: 1 to 64 characters (code points), not bytes."""
    assert_rejected(signed(name=""), InvalidCardFieldError, field="name")
    assert_rejected(signed(name="a" * 65), InvalidCardFieldError, field="name")
    assert parse_card(signed(name="🦊" * 64)).name == "🦊" * 64
    assert parse_card(signed(name="Zoë Ñúñez 李")).name == "Zoë Ñúñez 李"


def test_name_not_in_nfc_is_rejected():
    """Two spellings of "Rémy" must not be two different names to a reader."""
    assert_rejected(signed(name="Re\u0301my"), InvalidCardFieldError, field="name")


# ---------------------------------------------------------------- versions, fields, form


def test_threat_15_unknown_card_version_is_reported_as_unsupported():
    """THREATS 15, §2.4: another v is "update o2m", not "broken card", even if its fields
    differ (feed documents: tests/protocol/test_feeds.py)."""
    e = assert_rejected(signed(v=2), UnsupportedCardVersionError)
    assert e.version == 2
    e = assert_rejected(canonical_json({"type": "o2m-card", "v": 7, "whatever": []}),
                        UnsupportedCardVersionError)
    assert e.version == 7


@pytest.mark.parametrize("v", [True, "1", [1], {}])
def test_non_integer_version_is_rejected(v):
    """`true` equals 1 in Python; the reader must not be fooled by it."""
    assert_rejected(signed(v=v), InvalidCardFieldError, field="v")


@pytest.mark.parametrize("field", ["box_pk", "created", "name", "sign_pk", "url", "v"])
def test_missing_field_is_rejected(field):
    """Every field but tls_pin is required."""
    assert_rejected(signed(**{field: DELETE}), InvalidCardFieldError, field=field)


def test_missing_signature_is_rejected():
    """An unsigned card is not a card."""
    doc = json.loads(VECTOR_BYTES)
    del doc["sig"]
    assert_rejected(canonical_json(doc), InvalidCardFieldError, field="sig")


def test_other_document_type_is_not_a_card():
    """A feed head or any other JSON pasted as a card is refused as "not a card"."""
    assert_rejected(signed(type="o2m-head"), MalformedCardError)
    assert_rejected(signed(type=DELETE), MalformedCardError)
    for doc in (b"[]", b"1", b'"o2m-card"', b"null", b"{}"):
        assert_rejected(doc, MalformedCardError)


@pytest.mark.parametrize("field,value", [("name", 1), ("name", None), ("url", ["https://a/"]),
                                         ("created", 1_700_000_000), ("box_pk", {}),
                                         ("sign_pk", False)])
def test_field_of_wrong_type_is_rejected(field, value):
    """Every field has one JSON type."""
    doc = json.loads(VECTOR_BYTES)
    doc[field] = value
    assert_rejected(canonical_json(doc), InvalidCardFieldError, field=field)


@pytest.mark.parametrize("created", ["2026-11-24T10:30:00+00:00", "2026-11-24T10:30:00.5Z",
                                     "2026-11-24 10:30:00Z", "2026-11-24T10:30:00z",
                                     "2026-02-30T10:30:00Z", "2026-11-24T24:00:00Z",
                                     "2026-12-31T23:59:60Z", "0000-01-01T00:00:00Z",
                                     "２０２６-11-24T10:30:00Z", "2026-11-24"])
def test_bad_created_time_is_rejected(created):
    """§2.1: RFC 3339, UTC, a Z, whole seconds, a real date; ASCII digits only."""
    assert_rejected(signed(created=created), InvalidCardFieldError, field="created")


@pytest.mark.parametrize("reformat", [
    lambda b: b.replace(b",", b", "),
    lambda b: b.replace(b":", b": ", 1),
    lambda b: b + b"\n",
    lambda b: b" " + b,
    lambda b: json.dumps(dict(reversed(json.loads(b).items())), separators=(",", ":")).encode(),
    lambda b: b.replace(b'"Ada"', b'"\\u0041da"'),
    lambda b: b.replace(b'"v":1', b'"v":1.0'),
    lambda b: b.replace(b'"v":1', b'"v":01'),
    lambda b: b"\xef\xbb\xbf" + b,
], ids=["spaces", "colon-space", "newline", "leading-space", "unsorted", "escaped-char",
        "float-one", "leading-zero", "bom"])
def test_non_canonical_json_is_rejected(reformat):
    """§2.1: the reader requires the exact canonical bytes, so the bytes stored are
    the bytes signed (a reformatted card would verify but differ)."""
    data = reformat(VECTOR_BYTES)
    assert data != VECTOR_BYTES
    assert_rejected(data, CardError)


def test_lone_surrogate_is_a_clean_error():
    """A "\\ud800" escape parses in Python but cannot be UTF-8: a CardError, not a
    UnicodeEncodeError."""
    assert_rejected(VECTOR_BYTES.replace(b'"Ada"', b'"\\ud800"'), MalformedCardError)
    with pytest.raises(CardError):
        card_from_any('{"name":"\ud800"}')


def test_unknown_fields_survive_and_are_signed():
    """§2.4, STYLE §3: unknown keys are kept byte for byte through read and write, and
    editing one breaks the signature."""
    extra = {"about": "hi", "links": ["https://ada.example/about/"], "x": {"n": 3, "ok": True}}
    card = vector_card(extra=extra)
    assert dict(card.extra) == extra
    again = card_from_text(card_to_text(parse_card(card.raw)))
    assert again.raw == card.raw and dict(again.extra) == extra
    doc = json.loads(card.raw)
    doc["about"] = "pwned"
    assert_rejected(canonical_json(doc), BadCardSignatureError)
    doc = json.loads(card.raw)
    del doc["about"]
    assert_rejected(canonical_json(doc), BadCardSignatureError)


def test_card_is_immutable():
    """A Card is a value: its fields and extra cannot be changed after checking."""
    card = vector_card(extra={"about": "hi"})
    with pytest.raises(AttributeError):
        card.name = "Eve"  # type: ignore[misc]
    with pytest.raises(TypeError):
        card.extra["about"] = "pwned"  # type: ignore[index]
    assert hash(card) == hash(parse_card(card.raw))



# ---------------------------------------------------------------- avatar path (§2.4)


def _avatar(path: object) -> dict[str, object]:
    return {"media_type": "image/png", "path": path, "sha256": "ab" * 32}


@pytest.mark.parametrize("path", [
    "media/8a9f3b1d5e7c2f40/avatar.png",
    ".well-known/avatar.png",
    "media/.avatar.png",
    "...",
    "a..b/x.png",
    "_~-/a",
    "a" * 256,
    "a/" * 127 + "aa",
])
def test_an_avatar_path_the_spec_allows_is_accepted(path):
    """§2.4: `path` is segments of [A-Za-z0-9._~-], none `.` or `..`, at most 256
    characters: a segment may begin with a dot (`.well-known/`), which takes nothing
    out from under the card's URL."""
    assert parse_card(signed(avatar=_avatar(path))).avatar.path == path


@pytest.mark.parametrize("path", [
    "", ".", "..", "./avatar.png", "media/../avatar.png", "media/..", "/avatar.png",
    "media//avatar.png", "media/", "https://eve.example/a.png", "media/a.png?x=1",
    "media/a.png#x", "media/a%2e.png", "media\\a.png", "média/a.png", "media/a b.png",
    "a" * 257, "a/" * 128 + "a", 7, None,
])
def test_an_avatar_path_outside_the_rule_is_refused(path):
    """§2.4: no scheme, host, leading `/`, empty, `.` or `..` segment, query, fragment,
    escape or other character, nothing over 256 characters: the picture stays under
    the card's URL."""
    assert_rejected(signed(avatar=_avatar(path)), InvalidCardFieldError, field="avatar")

# ---------------------------------------------------------------- text form and any


@pytest.mark.parametrize("text", ["", "o2m1:", "o2m2:" + VECTOR_TEXT[5:], VECTOR_TEXT[5:],
                                  "O2M1:" + VECTOR_TEXT[5:], VECTOR_TEXT + "=",
                                  VECTOR_TEXT[:-1], VECTOR_TEXT[:-2], VECTOR_TEXT + "é",
                                  "o2m1:" + b64u_encode(b"{}")])
def test_bad_text_form_is_rejected(text):
    """Only "o2m1:" + canonical b64u of a whole card is read."""
    with pytest.raises(CardError):
        card_from_text(text)


def test_text_form_with_line_breaks_and_spaces_is_read():
    """Mail and chat wrap long lines; whitespace is not part of b64u."""
    wrapped = "\n  " + "\n".join(VECTOR_TEXT[i:i + 60] for i in range(0, len(VECTOR_TEXT), 60))
    assert card_from_text(wrapped + " \r\n").raw == VECTOR_BYTES


def test_card_from_any_reads_every_shape():
    """A file's bytes (with an editor's final newline), the text as str or bytes."""
    for value in (VECTOR_BYTES, VECTOR_BYTES + b"\n", VECTOR_BYTES.decode(), VECTOR_TEXT,
                  f"  {VECTOR_TEXT}\n", VECTOR_TEXT.encode() + b"\r\n"):
        assert card_from_any(value).raw == VECTOR_BYTES
    for value in (b"", "", b"\xff\xfe", "hello", b"o2m1:\xff", 42):
        with pytest.raises(CardError):
            card_from_any(value)  # type: ignore[arg-type]


# ---------------------------------------------------------------- THREATS 6: key change


def test_new_keys_for_a_known_friend_are_a_key_change():
    """THREATS 6: same URL (or same name) with other keys must be flagged, so the
    friend store warns instead of overwriting silently."""
    old = vector_card()
    eve = make_card(nacl.signing.SigningKey(bytes(32)), name="Ada", url="https://ada.example/",
                    box_pk=BOX_PK, tls_pin=PIN, created=CREATED)
    assert key_changed(old, eve) and not same_identity(old, eve)
    moved = vector_card(url="https://ada.example/new/", name="Ada L.")  # same keys
    assert same_identity(old, moved) and not key_changed(old, moved)
    new_box = bytes(nacl.public.PrivateKey(bytes(range(100, 132))).public_key)
    assert key_changed(old, vector_card(box_pk=new_box))  # one key is enough
    other = make_card(nacl.signing.SigningKey(bytes(32)), name="Bob", url="https://bob.example/",
                      box_pk=new_box, tls_pin=None, created=CREATED)
    assert not key_changed(old, other) and not same_identity(old, other)


# ---------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_card_errors(data):
    """No input makes the reader raise anything but a CardError, and random bytes are
    never accepted: they cannot be a card validly signed by its own key."""
    with pytest.raises(CardError):
        parse_card(data)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(VECTOR_BYTES) - 1),
                          st.sampled_from(["set", "insert", "delete"]),
                          st.integers(0, 255)), min_size=1, max_size=4))
def test_mutated_card_raises_only_card_errors(edits):
    """Random byte edits of a valid card are refused with a CardError, never accepted
    (but for the identity edit) and never another exception."""
    data = bytearray(VECTOR_BYTES)
    for pos, op, byte in edits:
        pos = min(pos, len(data) - 1)
        if op == "set":
            data[pos] = byte
        elif op == "insert":
            data.insert(pos, byte)
        elif len(data) > 1:
            del data[pos]
    try:
        card = parse_card(bytes(data))
    except CardError:
        return
    assert card.raw == VECTOR_BYTES


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=300), st.text(max_size=300).map(lambda t: "o2m1:" + t),
                 st.binary(max_size=300)))
def test_arbitrary_text_raises_only_card_errors(value):
    """The text and any-shape readers refuse random input as cleanly as parse_card:
    with a CardError, never another exception, never a card."""
    with pytest.raises(CardError):
        card_from_any(value)
    if isinstance(value, str):
        with pytest.raises(CardError):
            card_from_text(value)


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=10).filter(
    lambda k: k not in {"box_pk", "created", "name", "sig", "sign_pk", "tls_pin", "type",
                        "url", "v"}),
    st.recursive(st.none() | st.booleans() | st.integers(0, 2**53 - 1) | st.text(max_size=20),
                 lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c,
                                                                     max_size=3),
                 max_leaves=8), max_size=4))
def test_any_extra_fields_round_trip(extra):
    """Whatever unknown (valid JSON) keys a newer writer adds, they survive."""
    try:
        card = vector_card(extra=extra)
    except CardError:  # lone surrogates from st.text cannot be canonical UTF-8
        return
    assert parse_card(card.raw).raw == card.raw
    assert dict(parse_card(card.raw).extra) == extra
