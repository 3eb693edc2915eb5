"""A software passkey (a WebAuthn authenticator of one ES256 key) for the desk's tests:
it answers the options the desk gives as a browser and a platform authenticator would,
with "none" attestation, user presence and verification flagged, and a counter."""

from __future__ import annotations

import hashlib
import json
import os

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from o2m_pub.protocol.canonical import b64u_decode, b64u_encode

UP_UV = 0x01 | 0x04  # user present, user verified
ATTESTED = 0x40


class SoftPasskey:
    """One credential: its id, key and counter."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.id = os.urandom(16)
        self.count = 0

    def _cose(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                            -3: numbers.y.to_bytes(32, "big")})

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin,
                           "crossOrigin": False}).encode()

    def create(self, options_json: str, origin: str) -> str:
        """The registration response (JSON) to navigator.credentials.create's options."""
        options = json.loads(options_json)
        rp_hash = hashlib.sha256(options["rp"]["id"].encode()).digest()
        auth_data = (rp_hash + bytes([UP_UV | ATTESTED]) + self.count.to_bytes(4, "big")
                     + bytes(16) + len(self.id).to_bytes(2, "big") + self.id + self._cose())
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return json.dumps({
            "id": b64u_encode(self.id), "rawId": b64u_encode(self.id), "type": "public-key",
            "response": {"clientDataJSON": b64u_encode(self._client_data(
                "webauthn.create", options["challenge"], origin)),
                "attestationObject": b64u_encode(attestation), "transports": ["internal"]},
            "clientExtensionResults": {}})

    def get(self, options_json: str, origin: str, *, rp_id: str | None = None,
            unasked: bool = False) -> str:
        """The authentication response (JSON) to navigator.credentials.get's options
        (`unasked`: even when they do not name this passkey, as an attacker would)."""
        options = json.loads(options_json)
        allowed = [b64u_decode(c["id"]) for c in options.get("allowCredentials", [])]
        assert unasked or not allowed or self.id in allowed, "not a passkey the desk asked for"
        self.count += 1
        auth_data = (hashlib.sha256((rp_id or options["rpId"]).encode()).digest()
                     + bytes([UP_UV]) + self.count.to_bytes(4, "big"))
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(),
                                  ec.ECDSA(hashes.SHA256()))
        return json.dumps({
            "id": b64u_encode(self.id), "rawId": b64u_encode(self.id), "type": "public-key",
            "response": {"clientDataJSON": b64u_encode(client_data),
                         "authenticatorData": b64u_encode(auth_data),
                         "signature": b64u_encode(signature),
                         "userHandle": b64u_encode(b"o2m-desk-owner")},
            "clientExtensionResults": {}})
