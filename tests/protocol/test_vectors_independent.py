"""The spec's test vectors recomputed by independent code (the audit's A.3 item 11): no
o2m module is imported here. Each value is rebuilt from PROTOCOL.md's words, byte by
byte, with hashlib, pyca/cryptography and libsodium's bindings (PyNaCl's thin layer over
the C functions the spec names), and compared with what the spec quotes and
tests/vectors/feeds.json holds. tests/protocol/test_vectors.py checks o2m's own code
against the same file, so a wrong implementation cannot agree with itself alone."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import nacl.bindings as sodium
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ROOT = Path(__file__).parents[2]
SPEC = (ROOT / "docs/PROTOCOL.md").read_text()
VECTORS = json.loads((ROOT / "tests/vectors/feeds.json").read_text())

# §2.6 and §3.6: the inputs, as the spec states them
ADA_SIGN_SEED, ADA_BOX_SECRET = bytes(range(0x00, 0x20)), bytes(range(0x20, 0x40))
BOB_SIGN_SEED, BOB_BOX_SECRET = bytes(range(0x40, 0x60)), bytes(range(0x60, 0x80))
POST = b'{"date":"2026-11-24T10:00:00Z","markdown":"Hello, Bob.","type":"o2m-post","v":1}'
POST_KEY, POST_NONCE, HEAD_NONCE = bytes([7]) * 32, bytes([9]) * 24, bytes([11]) * 24
ITEM_ID = "AAECAwQFBgcICQoLDA0ODw"


def quoted(value: str) -> str:
    """`value`, after checking that the spec quotes it."""
    assert value in SPEC, value
    return value


def raw(public_key) -> bytes:  # noqa: ANN001 - a pyca public key
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def sign_pk(seed: bytes) -> bytes:
    return raw(Ed25519PrivateKey.from_private_bytes(seed).public_key())


def box_pk(secret: bytes) -> bytes:
    return raw(X25519PrivateKey.from_private_bytes(secret).public_key())


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def bucket(n: int) -> int:
    """§3.2 in its own words: 512 for n <= 512, else the first of 2^k, 5·2^(k-2),
    3·2^(k-1), 7·2^(k-2), 2^(k+1) not below n, where 2^k < n <= 2^(k+1)."""
    if n <= 512:
        return 512
    k = 0
    while not 2**k < n <= 2 ** (k + 1):
        k += 1
    return next(c for c in (2**k, 5 * 2 ** (k - 2), 3 * 2 ** (k - 1), 7 * 2 ** (k - 2),
                            2 ** (k + 1)) if c >= n)


def pad(plaintext: bytes) -> bytes:
    """§3.2: u32be(len(P)) || P || zeros, to bucket(4 + len(P)) bytes."""
    body = len(plaintext).to_bytes(4, "big") + plaintext
    return body + bytes(bucket(len(body)) - len(body))


def secretbox(message: bytes, nonce: bytes, key: bytes) -> bytes:
    """§3.3: libsodium's combined crypto_secretbox_easy, the 16-byte MAC first."""
    return sodium.crypto_secretbox_easy(message, nonce, key)


# ---------------------------------------------------------------- §2.2, §2.6: keys


def test_keys_and_fingerprints():
    """§2.2: Ed25519 and X25519 public keys from the seeds (pyca), and the fingerprint:
    SHA-256 of the label and both keys, bytes 0..29 in six big-endian chunks mod 100000."""
    ada_sign, ada_box = sign_pk(ADA_SIGN_SEED), box_pk(ADA_BOX_SECRET)
    assert ada_sign.hex() == quoted("03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8")
    assert ada_box.hex() == quoted("358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254")

    def fingerprint(sign: bytes, box: bytes) -> str:
        h = hashlib.sha256(b"o2m-fingerprint-v1" + sign + box).digest()
        return " ".join(f"{int.from_bytes(h[i:i + 5], 'big') % 100000:05d}"
                        for i in range(0, 30, 5))

    assert fingerprint(ada_sign, ada_box) == quoted("88831 03398 91558 10686 45431 67909")
    assert fingerprint(bytes(32), bytes(32)) == quoted("08450 45476 75409 59926 29476 89013")


# ---------------------------------------------------------------- §2.3: the key file


def test_the_key_file():
    """§2.3, byte by byte: the magic, the header's length and canonical JSON, Argon2id
    (libsodium crypto_pwhash, ALG_ARGON2ID13) of the passphrase's UTF-8 bytes in NFC,
    and XChaCha20-Poly1305 of sign_seed || box_sk with every byte before the ciphertext
    as associated data: 253 bytes, and the ciphertext the spec quotes."""
    salt, nonce = bytes(range(0x40, 0x50)), bytes(range(0x50, 0x68))
    header = json.dumps({"aead": "xchacha20poly1305-ietf", "kdf": "argon2id13",
                         "memlimit": 65536, "nonce": b64u(nonce), "opslimit": 2,
                         "salt": b64u(salt)}, sort_keys=True, separators=(",", ":")).encode()
    prefix = b"o2m-secret-v1\n" + len(header).to_bytes(2, "big") + header
    key = sodium.crypto_pwhash_alg(32, "correct horse battery staple".encode(), salt, 2, 65536,
                                   sodium.crypto_pwhash_ALG_ARGON2ID13)
    ciphertext = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        ADA_SIGN_SEED + ADA_BOX_SECRET, prefix, nonce, key)
    assert len(prefix + ciphertext) == 253 and "is 253 bytes" in SPEC
    assert ciphertext.hex() == quoted(
        "cb63139ba2057f5e86e2f435fdcf2f099606de11426ffc32a6cc865055752155c2dda6c9fa721c251a6c"
        "a391169cca4d0b0521ca724c28f47f94c54920deef39b8850f30d79b89bac0237821c3285d80")


# ---------------------------------------------------------------- §3.1-3.4: a feed


def pair_secret() -> bytes:
    """§3.1: X25519 of Ada's box secret and Bob's public key (pyca), the same both ways."""
    ada = X25519PrivateKey.from_private_bytes(ADA_BOX_SECRET)
    bob = X25519PrivateKey.from_private_bytes(BOB_BOX_SECRET)
    shared = ada.exchange(X25519PublicKey.from_public_bytes(box_pk(BOB_BOX_SECRET)))
    assert shared == bob.exchange(X25519PublicKey.from_public_bytes(box_pk(ADA_BOX_SECRET)))
    return shared


def test_feed_name_and_head_key():
    """§3.1: BLAKE2b (hashlib) of ctx = author sign_pk || reader sign_pk (64 raw bytes,
    the message), keyed with the shared secret, the 16-byte personalisation given, the
    salt zero (hashlib's default), 16 and 32 bytes long."""
    ctx = sign_pk(ADA_SIGN_SEED) + sign_pk(BOB_SIGN_SEED)
    name = hashlib.blake2b(ctx, digest_size=16, key=pair_secret(),
                           person=b"o2m1 feed name\0\0", salt=bytes(16))
    head_key = hashlib.blake2b(ctx, digest_size=32, key=pair_secret(),
                               person=b"o2m1 head key\0\0\0")
    assert name.hexdigest() == quoted(VECTORS["feed_name"])
    assert head_key.hexdigest() == quoted(VECTORS["head_key"])


def test_padding():
    """§3.2 and §3.6's table: bucket(n), and the padded length of an n-byte plaintext,
    which is bucket(4 + n) (so 511 and 512 bytes pad to 640, not 512)."""
    assert {int(n): size for n, size in VECTORS["buckets"].items()} == {
        n: bucket(n) for n in (0, 512, 513, 1000, 5000, 70000)}
    assert {int(n): size for n, size in VECTORS["padded_lengths"].items()} == {
        n: len(pad(bytes(n))) for n in (0, 508, 509, 511, 512, 1000, 5000, 70000)}
    assert len(pad(bytes(511))) == 640 and len(pad(bytes(508))) == 512


def the_object() -> bytes:
    """§3.3: "O2MOBJ1\\n" || nonce || crypto_secretbox(pad(post), nonce, key)."""
    return b"O2MOBJ1\n" + POST_NONCE + secretbox(pad(POST), POST_NONCE, POST_KEY)


def test_the_object():
    """§3.3: 8 + 24 + 16 + 512 = 560 bytes, named by its SHA-256; the MAC comes first,
    and it opens back to the padded post with libsodium's secretbox."""
    obj = the_object()
    assert len(obj) == 560 == VECTORS["object_size"]
    assert hashlib.sha256(obj).hexdigest() == quoted(VECTORS["object_sha256"])
    assert obj[:48].hex() == VECTORS["object_prefix_hex"]
    opened = sodium.crypto_secretbox_open_easy(obj[32:], POST_NONCE, POST_KEY)
    assert opened[:4] == len(POST).to_bytes(4, "big") and opened[4:4 + len(POST)] == POST
    assert not any(opened[4 + len(POST):])


def test_the_head():
    """§3.4: the head's document written out from the spec (stdlib JSON, sorted keys, no
    whitespace), signed with pyca's Ed25519 over "o2m-feed-v1\\n" || body, padded, and
    sealed with libsodium's secretbox under the head key: the body the spec quotes, and
    the file's size and SHA-256; then opened back, as a reader does."""
    obj = the_object()
    doc = {"v": 1, "type": "o2m-head", "author": b64u(sign_pk(ADA_SIGN_SEED)),
           "recipient": b64u(sign_pk(BOB_SIGN_SEED)), "seq": 1,
           "updated": "2026-11-24T10:00:00Z", "expires": "2026-12-24T10:00:00Z",
           "items": [{"id": ITEM_ID, "date": "2026-11-24T10:00:00Z",
                      "object": {"hash": hashlib.sha256(obj).hexdigest(),
                                 "key": b64u(POST_KEY), "size": len(obj)}}],
           "prev": None}
    body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    assert body.decode() == VECTORS["head_body"] and quoted(body.decode())
    signature = Ed25519PrivateKey.from_private_bytes(ADA_SIGN_SEED).sign(
        b"o2m-feed-v1\n" + body)
    assert signature.hex() == VECTORS["head_signature"]
    ctx = sign_pk(ADA_SIGN_SEED) + sign_pk(BOB_SIGN_SEED)
    head_key = hashlib.blake2b(ctx, digest_size=32, key=pair_secret(),
                               person=b"o2m1 head key\0\0\0").digest()
    head = b"O2MHEAD1" + HEAD_NONCE + secretbox(pad(signature + body), HEAD_NONCE, head_key)
    assert len(head) == VECTORS["head_size"] == 560
    assert hashlib.sha256(head).hexdigest() == quoted(VECTORS["head_sha256"])
    padded = sodium.crypto_secretbox_open_easy(head[32:], HEAD_NONCE, head_key)
    signed = padded[4:4 + int.from_bytes(padded[:4], "big")]
    assert signed == signature + body
    Ed25519PrivateKey.from_private_bytes(ADA_SIGN_SEED).public_key().verify(
        signed[:64], b"o2m-feed-v1\n" + signed[64:])
