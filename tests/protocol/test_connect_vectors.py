"""The test vectors of protocol 1.1's cards, rotation statements and public feed
signature (tests/vectors/connect.json, quoted in PROTOCOL.md §1.4, §2.4, §2.5):

- the code against the file (an accidental format change fails here first);
- the spec quotes the same bytes;
- a verifier written apart from o2m's code (pyca/cryptography for Ed25519, hashlib,
  the json module), from the rules as the spec states them, accepts every document:
  it derives the keys from the seeds, rebuilds each signed message and checks each
  signature, commitment and digest (as pyca/cryptography's custom vectors come with a
  generator and a verifier)."""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

VECTORS = Path(__file__).parents[1] / "vectors"
sys.path.insert(0, str(VECTORS))

from make_connect_vectors import compute  # noqa: E402

EXPECTED = json.loads((VECTORS / "connect.json").read_text())


def test_connect_vectors_match_the_code():
    """The generator, run on today's code, writes exactly the stored file."""
    assert compute() == EXPECTED


def test_protocol_md_quotes_the_same_vectors():
    """PROTOCOL.md quotes each document's bytes and digest as the file has them."""
    protocol = (Path(__file__).parents[2] / "docs/PROTOCOL.md").read_text()
    for key in ("card", "card_sha256", "rotation", "rotation_sha256", "card_after_rotation",
                "card_after_rotation_sha256", "feed_signature", "feed_signature_sha256",
                "next_commitment"):
        assert EXPECTED[key] in protocol, key


# ---------------------------------------------------------------- an independent verifier


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def ed25519_public(seed_hex: str) -> bytes:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def x25519_public(secret_hex: str) -> bytes:
    key = X25519PrivateKey.from_private_bytes(bytes.fromhex(secret_hex))
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def canonical(doc: dict) -> bytes:
    """§2.1 for these documents (ASCII keys, no floats): sorted keys, no spaces."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def check_signed(data: bytes, context: bytes, signers: dict[str, bytes]) -> dict:
    """Each signature field verifies by its key over context || the document without
    the signature fields (pyca raises InvalidSignature otherwise); returns it."""
    doc = json.loads(data)
    assert canonical(doc) == data  # the bytes are their canonical form
    message = context + canonical({k: v for k, v in doc.items() if k not in signers})
    for field, signer in signers.items():
        Ed25519PublicKey.from_public_bytes(signer).verify(unb64u(doc[field]), message)
    return doc


def commitment(public_key: bytes) -> str:
    return "sha256/" + b64u(hashlib.sha256(public_key).digest())


def test_an_independent_verifier_accepts_the_card():
    """§2.4: the card's keys come from the seeds; `next` is the SHA-256 of the next
    key; the signature by sign_pk covers "o2m-card-v1\\n" and the card without sig."""
    inputs = EXPECTED["inputs"]
    data = EXPECTED["card"].encode()
    ada = ed25519_public(inputs["ada_sign_seed"])
    doc = check_signed(data, b"o2m-card-v1\n", {"sig": ada})
    assert doc["sign_pk"] == b64u(ada)
    assert doc["box_pk"] == b64u(x25519_public(inputs["ada_box_secret"]))
    assert doc["next"] == commitment(ed25519_public(inputs["next_sign_seed"])) \
        == EXPECTED["next_commitment"]
    assert doc["feed_pk"] == b64u(ed25519_public(inputs["feed_sign_seed"]))
    assert doc["tls_pin"] == "sha256/" + b64u(hashlib.sha256(b"pin").digest())
    assert doc["avatar"]["sha256"] == hashlib.sha256(b"avatar").hexdigest()
    assert (doc["seq"], doc["bio"]) == (7, "Walks, bread and\nthe odd script.")
    assert hashlib.sha256(data).hexdigest() == EXPECTED["card_sha256"]


def test_an_independent_verifier_follows_the_rotation():
    """§2.5: the statement verifies by the old and by the new key over
    "o2m-rotation-v1\\n" and the statement without its two signatures; the new key
    hashes to the card's `next`; the card after it is signed by the new key, carries
    the new box key and commits to `new_next`; the published list holds the statement's
    exact bytes."""
    inputs = EXPECTED["inputs"]
    data = EXPECTED["rotation"].encode()
    old, new = ed25519_public(inputs["ada_sign_seed"]), ed25519_public(inputs["next_sign_seed"])
    statement = check_signed(data, b"o2m-rotation-v1\n", {"sig_old": old, "sig_new": new})
    before = json.loads(EXPECTED["card"])
    assert commitment(unb64u(statement["new_sign_pk"])) == before["next"]
    assert (statement["old_sign_pk"], statement["new_sign_pk"]) == (b64u(old), b64u(new))
    assert statement["new_box_pk"] == b64u(x25519_public(inputs["new_box_secret"]))
    assert statement["new_next"] == commitment(ed25519_public(inputs["after_sign_seed"]))
    after = check_signed(EXPECTED["card_after_rotation"].encode(), b"o2m-card-v1\n",
                         {"sig": new})
    assert (after["sign_pk"], after["box_pk"], after["next"]) == (
        statement["new_sign_pk"], statement["new_box_pk"], statement["new_next"])
    assert [data] == [unb64u(s) for s in json.loads(EXPECTED["rotations_file"])]
    assert hashlib.sha256(data).hexdigest() == EXPECTED["rotation_sha256"]


def test_an_independent_verifier_checks_the_feed_signature():
    """§1.4: feed.json.sig is signed by the card's feed_pk over "o2m-feed-sig-v1\\n" and
    the document without sig; it names the card's sign_pk as author, and feed.json's
    exact size and SHA-256."""
    inputs = EXPECTED["inputs"]
    feed = inputs["feed_json"].encode()
    card = json.loads(EXPECTED["card"])
    signer = unb64u(card["feed_pk"])
    doc = check_signed(EXPECTED["feed_signature"].encode(), b"o2m-feed-sig-v1\n",
                       {"sig": signer})
    assert (doc["author"], doc["feed_pk"], doc["path"]) == (card["sign_pk"], card["feed_pk"],
                                                          "feed.json")
    assert (doc["size"], doc["sha256"]) == (len(feed), hashlib.sha256(feed).hexdigest())
    altered = feed.replace(b"Ada's notes", b"Eve's notes")
    assert hashlib.sha256(altered).hexdigest() != doc["sha256"]
