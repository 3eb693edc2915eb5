"""Invitations and acceptances (PROTOCOL.md §2.7), the pure core: every format rule,
and every bad input refused with an `InvitationError` (never another exception)."""

from __future__ import annotations

import datetime as dt

import nacl.secret
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from o2m_pub.protocol import invite
from o2m_pub.protocol.canonical import b64u_encode, canonical_json, parse_json
from o2m_pub.protocol.cards import MAX_WRAPPED_TEXT_CHARS, make_card
from o2m_pub.protocol.feeds import pad

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
SECRET = bytes(range(128, 160))
NONCE = bytes([13]) * 24


def card(n: int, name: str, **kw):  # noqa: ANN003, ANN201
    return make_card(SigningKey(bytes([n]) * 32), name=name,
                     url=f"https://{name.lower()}.example/",
                     box_pk=bytes(PrivateKey(bytes([n + 100]) * 32).public_key),
                     tls_pin=None, created=NOW - dt.timedelta(days=1), **kw)


ADA, BOB = card(1, "Ada"), card(2, "Bob")


def invitation(**kw) -> invite.Invitation:  # noqa: ANN003
    args = {"secret": SECRET, "expires": NOW + dt.timedelta(days=7), "name": "bob", **kw}
    return invite.make_invitation(ADA, **args)


def doc_of(inv: invite.Invitation) -> dict:
    return parse_json(inv.raw, max_bytes=1 << 20)


# ---------------------------------------------------------------- invitations


def test_an_invitation_survives_its_text_form_and_carries_the_owners_card():
    """make -> text -> parse gives the same invitation; the card inside is the owner's,
    byte for byte; the text starts o2m1i: and holds no whitespace."""
    inv = invitation()
    text = invite.invitation_to_text(inv)
    assert text.startswith("o2m1i:") and not any(c.isspace() for c in text)
    back = invite.invitation_from_text(text)
    assert back == inv
    assert back.card.raw == ADA.raw and back.secret == SECRET and back.name == "bob"
    assert back.expires == "2026-12-01T12:00:00Z"


def test_the_text_may_be_wrapped_by_a_chat_client():
    """Line breaks and spaces anywhere in the text are dropped (§2.7, as for cards)."""
    text = invite.invitation_to_text(invitation())
    wrapped = "\n  ".join(text[i:i + 60] for i in range(0, len(text), 60)) + "\n"
    assert invite.invitation_from_text(wrapped) == invitation()


def _invitation_of_exactly(size: int) -> bytes:
    """A valid invitation document grown by an unknown key to exactly `size` bytes."""
    doc = doc_of(invitation())
    doc["greeting"] = ""
    doc["greeting"] = "a" * (size - len(canonical_json(doc)))
    data = canonical_json(doc)
    assert len(data) == size
    return data


@pytest.mark.parametrize("wrap", ["\r\n", "\n", "  \n"])
def test_the_biggest_invitation_text_wrapped_at_every_character_is_read(wrap):
    """§2.7: the text's cap, 6 + ceil(8192·4/3) characters, is counted after the
    whitespace is removed: an 8 KiB invitation's text with a line break after every
    character is read; the bound on the text as given is a reader limit far above."""
    data = _invitation_of_exactly(invite.MAX_INVITATION_BYTES)
    text = invite.INVITE_PREFIX + b64u_encode(data)
    assert len(text) == 6 + -(-8192 * 4 // 3)
    wrapped = wrap.join(text) + wrap
    assert len(wrapped) <= MAX_WRAPPED_TEXT_CHARS
    assert invite.invitation_from_text(wrapped).raw == data


def test_a_reply_text_wrapped_at_every_character_is_read():
    """§2.7: the reply text follows the same rule (its cap counted without whitespace)."""
    big = card(3, "Cy", extra={"about": "x" * 3600})
    data = invite.seal_acceptance(SECRET, big, nonce=NONCE)
    wrapped = "\r\n ".join(invite.reply_to_text(data))
    assert invite.reply_from_text(wrapped) == data


def test_the_outer_bound_counts_the_text_as_given():
    """A text within the cap once its whitespace is gone is read up to
    MAX_WRAPPED_TEXT_CHARS characters as given, and refused above that, unread."""
    text = invite.invitation_to_text(invitation())
    padded = text + "\n" * (MAX_WRAPPED_TEXT_CHARS - len(text))
    assert invite.invitation_from_text(padded) == invitation()
    with pytest.raises(invite.MalformedInvitationError, match="too long"):
        invite.invitation_from_text(padded + "\n")
    reply = invite.reply_to_text(invite.seal_acceptance(SECRET, BOB, nonce=NONCE))
    assert invite.reply_from_text(reply + " " * (MAX_WRAPPED_TEXT_CHARS - len(reply)))
    with pytest.raises(invite.MalformedInvitationError, match="too long"):
        invite.reply_from_text(reply + " " * (MAX_WRAPPED_TEXT_CHARS + 1 - len(reply)))


def test_the_name_is_optional():
    """Without a name, the document has no "name" key at all (not null)."""
    inv = invitation(name=None)
    assert "name" not in doc_of(inv) and inv.name is None


def test_derivations_are_separate_and_sized():
    """invite_id (16 bytes) and box_key (32 bytes) differ, and another secret gives others."""
    assert len(invite.invite_id(SECRET)) == 16 and len(invite.box_key(SECRET)) == 32
    assert invite.box_key(SECRET)[:16] != invite.invite_id(SECRET)
    assert invite.invite_id(bytes(32)) != invite.invite_id(SECRET)
    with pytest.raises(ValueError):
        invite.invite_id(b"short")


def _reencode(doc: dict) -> bytes:
    return canonical_json(doc)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(type="o2m-card"), "'type' is not 'o2m-invite'"),
    (lambda d: d.update(v=2), "version 2 is not supported"),
    (lambda d: d.update(v=True), "version True is not supported"),
    (lambda d: d.pop("secret"), "'secret' is missing"),
    (lambda d: d.pop("card"), "'card' is missing"),
    (lambda d: d.pop("expires"), "'expires' is missing"),
    (lambda d: d.update(secret=b64u_encode(bytes(31))), "'secret' is not b64u of 32 bytes"),
    (lambda d: d.update(secret=7), "'secret' is not b64u"),
    (lambda d: d.update(expires="2026-12-01 12:00:00"), "'expires' is not a UTC time"),
    (lambda d: d.update(expires="2026-02-30T12:00:00Z"), "'expires' is not a UTC time"),
    (lambda d: d.update(name="Bob"), "'name' is not a friend name"),
    (lambda d: d.update(name=""), "'name' is not a friend name"),
    (lambda d: d.update(card="o2m1:abc"), "'card' is not a card"),
    (lambda d: d["card"].update(name="Eve"), "signature does not verify"),
    (lambda d: d["card"].pop("sig"), "card field 'sig'"),
])
def test_each_bad_field_is_refused_with_its_reason(change, message):
    """A field that breaks §2.7 (or a card that breaks §2.4) is one MalformedInvitation-
    Error naming it."""
    doc = doc_of(invitation())
    change(doc)
    with pytest.raises(invite.MalformedInvitationError) as raised:
        invite.parse_invitation(_reencode(doc))
    assert message in str(raised.value)


def _card_with_url(n: int, owner, url: str) -> dict:  # noqa: ANN001
    """`owner`'s card as a JSON object with another `url`, signed again by its key, so
    the URL is the card's only defect."""
    doc = parse_json(owner.raw, max_bytes=4096)
    del doc["sig"]
    doc["url"] = url
    key = SigningKey(bytes([n]) * 32)
    doc["sig"] = b64u_encode(key.sign(b"o2m-card-v1\n" + canonical_json(doc)).signature)
    return doc


@pytest.mark.parametrize("url", ["https://[v1.x]/", "https://[fe80::1%25eth0]/",
                                 "https://[2001:db8::1]junk/"])
def test_a_card_url_that_breaks_the_host_rule_is_refused_in_both_documents(url):
    """§2.4's URL rule holds for the card inside an invitation and inside an acceptance
    (§2.7): a bracketed host is an IPv6 address without a zone, and nothing else."""
    doc = doc_of(invitation())
    doc["card"] = _card_with_url(1, ADA, url)
    with pytest.raises(invite.MalformedInvitationError, match="card field 'url'"):
        invite.parse_invitation(_reencode(doc))
    accepted = canonical_json(_accept_doc(card=_card_with_url(2, BOB, url)))
    with pytest.raises(invite.MalformedInvitationError, match="card field 'url'"):
        invite.open_acceptance(_seal_raw(accepted), SECRET)


def test_unknown_keys_are_allowed():
    """A later version may add keys; they do not break a 1.0 reader (§2.7)."""
    doc = doc_of(invitation())
    doc["greeting"] = "hello"
    assert invite.parse_invitation(_reencode(doc)).secret == SECRET


@pytest.mark.parametrize("data, message", [
    (b"x" * 9000, "over 8192 bytes"),
    (b"[1,2]", "'type' is not"),
    (b"{\"type\":\"o2m-invite\",\"type\":\"o2m-invite\"}", "duplicate key"),
    (b"\xff\xfe", "not UTF-8"),
    (b"{\"v\": 1}", "'type' is not"),
])
def test_not_an_invitation_at_all(data, message):
    """Size first, then strict JSON (§2.1), then the type."""
    with pytest.raises(invite.MalformedInvitationError) as raised:
        invite.parse_invitation(data)
    assert message in str(raised.value)


def test_a_reformatted_invitation_is_refused():
    """Only the canonical bytes are an invitation (§2.1): spaces added are refused."""
    raw = invitation().raw.replace(b'","', b'", "', 1)
    with pytest.raises(invite.MalformedInvitationError, match="canonical"):
        invite.parse_invitation(raw)


@pytest.mark.parametrize("text, message", [
    ("o2m1:" + "A" * 100, "starts with 'o2m1i:'"),
    ("o2m1r:AAAA", "starts with 'o2m1i:'"),
    ("o2m1i:" + "A" * 20000, "too long"),
    ("o2m1i:" + "A" * 11000, "too long"),
    ("o2m1i:a=b", "not base64url"),
    ("o2m1i:" + b64u_encode(b"{}"), "'type' is not"),
])
def test_bad_text_forms(text, message):
    """The text is capped before decoding; prefix and b64u are checked."""
    with pytest.raises(invite.MalformedInvitationError) as raised:
        invite.invitation_from_text(text)
    assert message in str(raised.value)


def test_an_expired_invitation_is_refused_from_its_expiry_on():
    """`expires` <= now is expired (one line naming who and when); a second before is not."""
    inv = invitation()
    invite.check_not_expired(inv, inv.expires_at - dt.timedelta(seconds=1))
    with pytest.raises(invite.ExpiredInvitationError) as raised:
        invite.check_not_expired(inv, inv.expires_at)
    assert str(raised.value) == "this invitation from Ada expired on 2026-12-01T12:00:00Z"


def test_a_card_near_its_cap_still_fits_an_invitation():
    """A 4 KiB card (the §2.4 cap) fits the invitation's 8 KiB cap and an acceptance."""
    big = card(3, "Cy", extra={"about": "x" * 3600})
    assert 3900 < len(big.raw) <= 4096
    inv = invite.make_invitation(big, secret=SECRET, expires=NOW + dt.timedelta(days=1))
    assert invite.parse_invitation(inv.raw).card == big
    assert len(invite.seal_acceptance(SECRET, big, nonce=NONCE)) <= invite.MAX_ACCEPTANCE_BYTES


# ---------------------------------------------------------------- acceptances


def test_an_acceptance_opens_with_the_invitations_secret():
    """seal -> open gives the invitee's card; the id in clear is the invitation's."""
    data = invite.seal_acceptance(SECRET, BOB, nonce=NONCE)
    assert data[:8] == b"O2MACPT1" and invite.acceptance_well_formed(data)
    assert invite.acceptance_invite_id(data) == invite.invite_id(SECRET)
    opened = invite.open_acceptance(data, SECRET)
    assert opened.card == BOB and opened.invite_id == invite.invite_id(SECRET)


@settings(max_examples=40, deadline=None)
@given(secret=st.binary(min_size=32, max_size=32), nonce=st.binary(min_size=24, max_size=24))
def test_open_of_seal_is_the_card_for_any_secret_and_nonce(secret, nonce):
    """Property: open(seal(card)) == card, whatever the secret and nonce."""
    assert invite.open_acceptance(invite.seal_acceptance(secret, BOB, nonce=nonce),
                                  secret).card == BOB


def test_any_flipped_bit_is_refused():
    """Flipping one bit of any byte gives an InvitationError: the magic, the id (another
    invitation, or an unknown shape), the nonce or the ciphertext (the MAC)."""
    data = invite.seal_acceptance(SECRET, BOB, nonce=NONCE)
    for i in range(len(data)):
        for bit in (0, 7):
            flipped = bytearray(data)
            flipped[i] ^= 1 << bit
            with pytest.raises(invite.InvitationError):
                invite.open_acceptance(bytes(flipped), SECRET)


def test_a_forged_acceptance_is_refused():
    """Someone who knows the invite_id (it travels in clear) but not the secret seals
    with a key of their own: it does not open."""
    ident = invite.invite_id(SECRET)
    body = canonical_json({"card": parse_json(BOB.raw, max_bytes=4096),
                           "invite_id": b64u_encode(ident), "type": "o2m-accept", "v": 1})
    forged = b"O2MACPT1" + ident + bytes(nacl.secret.SecretBox(bytes(32)).encrypt(pad(body),
                                                                                NONCE))
    assert invite.acceptance_well_formed(forged)
    with pytest.raises(invite.BadAcceptanceError):
        invite.open_acceptance(forged, SECRET)


def test_an_acceptance_for_another_invitation_is_refused():
    """Opened with another invitation's secret: refused before any decryption."""
    data = invite.seal_acceptance(SECRET, BOB, nonce=NONCE)
    with pytest.raises(invite.BadAcceptanceError, match="another invitation"):
        invite.open_acceptance(data, bytes(32))


def _seal_raw(doc_bytes: bytes, ident: bytes | None = None) -> bytes:
    """An acceptance made with the right key around any plaintext."""
    ident = ident or invite.invite_id(SECRET)
    box = nacl.secret.SecretBox(invite.box_key(SECRET))
    return b"O2MACPT1" + ident + bytes(box.encrypt(pad(doc_bytes), NONCE))


def _accept_doc(**changes) -> dict:  # noqa: ANN003
    doc = {"card": parse_json(BOB.raw, max_bytes=4096),
           "invite_id": b64u_encode(invite.invite_id(SECRET)), "type": "o2m-accept", "v": 1}
    doc.update(changes)
    return doc


@pytest.mark.parametrize("doc_bytes, error, message", [
    (canonical_json(_accept_doc(invite_id=b64u_encode(bytes(16)))), invite.BadAcceptanceError,
     "another invitation inside"),
    (canonical_json(_accept_doc(type="o2m-invite")), invite.MalformedInvitationError,
     "'type' is not 'o2m-accept'"),
    (canonical_json(_accept_doc(v=2)), invite.MalformedInvitationError, "version 2"),
    (canonical_json({k: v for k, v in _accept_doc().items() if k != "card"}),
     invite.MalformedInvitationError, "a field is missing"),
    (canonical_json(_accept_doc(card={"name": "Bob"})), invite.MalformedInvitationError,
     "card in this reply cannot be used"),
    (canonical_json(_accept_doc()).replace(b",", b", ", 1), invite.MalformedInvitationError,
     "canonical"),
    (b"not json", invite.MalformedInvitationError, "not a reply"),
])
def test_an_acceptance_that_opens_but_is_wrong_inside_is_refused(doc_bytes, error, message):
    """Made with the right key (by the secret's holder) but not a well-formed answer:
    the inner id must equal the outer one, type, version, canonical form, a valid card."""
    with pytest.raises(error) as raised:
        invite.open_acceptance(_seal_raw(doc_bytes), SECRET)
    assert message in str(raised.value)


def test_bad_padding_inside_is_refused():
    """A plaintext whose §3.2 padding is wrong (nonzero tail) does not count as opened."""
    box = nacl.secret.SecretBox(invite.box_key(SECRET))
    padded = bytearray(pad(canonical_json(_accept_doc())))
    padded[-1] = 1
    data = b"O2MACPT1" + invite.invite_id(SECRET) + bytes(box.encrypt(bytes(padded), NONCE))
    with pytest.raises(invite.BadAcceptanceError):
        invite.open_acceptance(data, SECRET)


@pytest.mark.parametrize("mutate", [
    lambda d: d[:-1],  # ciphertext not a bucket
    lambda d: d + b"\0",
    lambda d: d[:100],  # too short
    lambda d: d + bytes(9000),  # over the cap
    lambda d: b"O2MNOTE1" + d[8:],  # another kind
    lambda d: b"",
])
def test_shape_checks_need_no_secret(mutate):
    """`acceptance_well_formed` (what earns a 202 at the inbox) refuses wrong sizes,
    caps and magic; `acceptance_invite_id` raises for them."""
    data = mutate(invite.seal_acceptance(SECRET, BOB, nonce=NONCE))
    assert not invite.acceptance_well_formed(data)
    with pytest.raises(invite.MalformedInvitationError):
        invite.acceptance_invite_id(data)


def test_reply_text_round_trip_and_refusals():
    """o2m1r: + b64u of the acceptance; wrapped text is fine; other texts are refused."""
    data = invite.seal_acceptance(SECRET, BOB, nonce=NONCE)
    text = invite.reply_to_text(data)
    assert text.startswith("o2m1r:")
    assert invite.reply_from_text(text[:50] + "\n" + text[50:]) == data
    for bad in ("o2m1i:" + text[6:], "o2m1r:" + b64u_encode(b"O2MACPT1" + bytes(100)),
                "o2m1r:" + "A" * 30000, "o2m1r:!!"):
        with pytest.raises(invite.MalformedInvitationError):
            invite.reply_from_text(bad)


def test_the_nonce_must_be_24_bytes():
    """A caller's bug (a short nonce) is a ValueError, not a weak acceptance."""
    with pytest.raises(ValueError):
        invite.seal_acceptance(SECRET, BOB, nonce=bytes(12))
