"""Passkeys (WebAuthn): a second way to sign in to the desk, beside the passphrase. The
checks are the maintained `webauthn` package's (py_webauthn: client data, origin, RP ID
hash, user presence and verification, the signature, the counter); this module only
says what the desk asks of it.

- The relying party is the host the browser names (checked by the gate against the
  desk's own names): "localhost" for `o2m desk`, the site's host under `o2m serve
  --desk`. Browsers refuse an IP address as RP ID, so at http://127.0.0.1:8480/ no
  passkey is offered (http://localhost:8480/ is the same desk, with passkeys).
- Adding a passkey asks for the passphrase again: a stolen session cannot give itself a
  way back in. Each challenge is random, single-use, bound to the session (adding) or
  to the browser's sign-in cookie (signing in), and lives `CHALLENGE_SECONDS`, in
  desk.db, which every process of `o2m serve --desk` shares.
- Signing in with a passkey counts as an attempt for the back-off, as a passphrase
  does; a passkey must verify its user (a PIN or a fingerprint on the device).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

CHALLENGE_SECONDS = 300.0
RP_NAME = "o2m desk"
MAX_CREDENTIAL_CHARS = 16_384  # a response's JSON: a few hundred bytes, a few KiB with
# an attestation certificate chain


class PasskeyError(ValueError):
    """A passkey response that does not verify (the reason is for the log, not the page)."""


@dataclass(frozen=True)
class RelyingParty:
    id: str  # the host name
    origin: str  # scheme://host[:port], as the browser sends it in the client data


def relying_party(scheme: str, host_header: str) -> RelyingParty | None:
    """The relying party of a request whose Host the gate accepted; None for an IP
    address (no browser takes one as RP ID)."""
    host = host_header.lower()
    if host.startswith("["):  # an IPv6 address
        return None
    name = host.rsplit(":", 1)[0] if ":" in host else host
    try:
        ipaddress.ip_address(name)
        return None
    except ValueError:
        pass
    if not name:
        return None
    return RelyingParty(name, f"{scheme}://{host}")


def registration_options(rp: RelyingParty, user_id: bytes, user_name: str,
                         existing: list[bytes]) -> tuple[str, bytes]:
    """The options for navigator.credentials.create (JSON) and their challenge."""
    import webauthn
    from webauthn.helpers.structs import (
        AuthenticatorSelectionCriteria,
        PublicKeyCredentialDescriptor,
        ResidentKeyRequirement,
        UserVerificationRequirement,
    )

    options = webauthn.generate_registration_options(
        rp_id=rp.id, rp_name=RP_NAME, user_id=user_id, user_name=user_name,
        user_display_name=user_name,
        exclude_credentials=[PublicKeyCredentialDescriptor(id=i) for i in existing],
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED))
    return webauthn.options_to_json(options), options.challenge


@dataclass(frozen=True)
class NewPasskey:
    id: bytes
    public_key: bytes  # COSE
    sign_count: int


def verify_new(credential: str, challenge: bytes, rp: RelyingParty) -> NewPasskey:
    """A registration response checked against its challenge and our RP.

    Raises:
        PasskeyError: it does not verify.
    """
    import webauthn
    from webauthn.helpers.exceptions import WebAuthnException

    if len(credential) > MAX_CREDENTIAL_CHARS:
        raise PasskeyError("the response is too long")
    try:
        verified = webauthn.verify_registration_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp.id,
            expected_origin=rp.origin, require_user_verification=True)
    except (WebAuthnException, ValueError, KeyError, TypeError) as e:
        raise PasskeyError(f"{type(e).__name__}: {e}") from None
    return NewPasskey(verified.credential_id, verified.credential_public_key,
                      verified.sign_count)


def authentication_options(rp: RelyingParty, ids: list[bytes]) -> tuple[str, bytes]:
    """The options for navigator.credentials.get (JSON) and their challenge."""
    import webauthn
    from webauthn.helpers.structs import (
        PublicKeyCredentialDescriptor,
        UserVerificationRequirement,
    )

    options = webauthn.generate_authentication_options(
        rp_id=rp.id, allow_credentials=[PublicKeyCredentialDescriptor(id=i) for i in ids],
        user_verification=UserVerificationRequirement.REQUIRED)
    return webauthn.options_to_json(options), options.challenge


def credential_id(credential: str) -> bytes:
    """The id of the passkey an authentication response is from (not yet checked).

    Raises:
        PasskeyError: not a response.
    """
    from webauthn.helpers import parse_authentication_credential_json
    from webauthn.helpers.exceptions import WebAuthnException

    if len(credential) > MAX_CREDENTIAL_CHARS:
        raise PasskeyError("the response is too long")
    try:
        return parse_authentication_credential_json(credential).raw_id
    except (WebAuthnException, ValueError, KeyError, TypeError) as e:
        raise PasskeyError(f"{type(e).__name__}: {e}") from None


def verify_sign_in(credential: str, challenge: bytes, rp: RelyingParty, public_key: bytes,
                   sign_count: int) -> int:
    """An authentication response checked against its challenge, our RP and the stored
    key; returns the passkey's new counter.

    Raises:
        PasskeyError: it does not verify (a signature, an origin, a counter gone back).
    """
    import webauthn
    from webauthn.helpers.exceptions import WebAuthnException

    try:
        verified = webauthn.verify_authentication_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp.id,
            expected_origin=rp.origin, credential_public_key=public_key,
            credential_current_sign_count=sign_count, require_user_verification=True)
    except (WebAuthnException, ValueError, KeyError, TypeError) as e:
        raise PasskeyError(f"{type(e).__name__}: {e}") from None
    return verified.new_sign_count
