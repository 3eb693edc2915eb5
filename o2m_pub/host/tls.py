"""The server's TLS: its certificate and key, and the OpenSSL context `o2m serve` uses.

An owner without a CA-issued certificate gets a self-signed one on the first
`o2m serve`, kept in ``keys/tls/`` (0600); friends trust it through the pin in the
owner's card (PROTOCOL.md §2.4), not through a CA. An owner with a certificate (from
an ACME client, say) names it in ``[serve]``; it is re-read when the files change or
on SIGHUP, and connections already open keep the context they started with.

Making a certificate is a pure function of a key, names and the time; only
`ensure_self_signed` and `load_pair` touch files.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from o2m_pub._files import write_file
from o2m_pub.errors import O2MError
from o2m_pub.protocol.cards import tls_pin_from_certificate

TLS_DIR = "keys/tls"
CERT_NAME = "cert.pem"
KEY_NAME = "key.pem"
SELF_SIGNED_DAYS = 825  # the longest lifetime clients accepted for a leaf; renewal changes the pin

# TLS 1.2 forward-secret AEAD suites (TLS 1.3 suites are not configurable and all good).
CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
           "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
           "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")


class TLSError(O2MError):
    """A certificate or key that cannot be used."""


@dataclass(frozen=True)
class KeyPair:
    """A certificate chain and its key, as PEM, with where they came from."""

    cert_pem: bytes
    key_pem: bytes
    cert_path: Path
    key_path: Path

    @property
    def pin(self) -> bytes:
        """SHA-256 of the leaf's SubjectPublicKeyInfo: the card's ``tls_pin`` (§2.4)."""
        return tls_pin_from_certificate(self.cert_pem)

    def stamp(self) -> tuple[int, int]:
        """What changes when either file is replaced (a renewal), for reloading."""
        return (_mtime(self.cert_path), _mtime(self.key_path))


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1


def self_signed(key: ec.EllipticCurvePrivateKey, names: list[str], now: dt.datetime) -> bytes:
    """A self-signed P-256 certificate for `names` (host names or IP addresses), as PEM.

    Pure: the key and the time come from the caller. The pin, not the chain, is what
    friends check, so the certificate carries only what TLS clients insist on.
    """
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])])
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=SELF_SIGNED_DAYS))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM))


def ensure_self_signed(root: Path, host_names: list[str], now: dt.datetime) -> tuple[KeyPair, bool]:
    """The site's self-signed pair, made on first use; returns (pair, made_now).

    The key file is written 0600 before any byte of it, and the certificate last, so
    an interrupted first run leaves no certificate without its key.
    """
    folder = root / TLS_DIR
    cert_path, key_path = folder / CERT_NAME, folder / KEY_NAME
    if cert_path.exists() and key_path.exists():
        return load_pair(cert_path, key_path), False
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    names = list(dict.fromkeys([*host_names, "localhost", "127.0.0.1", "::1"]))
    write_file(key_path, key_pem, 0o600)
    write_file(cert_path, self_signed(key, names, now), 0o600)
    return load_pair(cert_path, key_path), True


def load_pair(cert_path: Path, key_path: Path) -> KeyPair:
    """Read and check a certificate chain and its key (PEM).

    Raises:
        TLSError: a file is missing or unreadable, not PEM, or the key does not match.
    """
    def read(path: Path, what: str) -> bytes:
        try:
            return path.read_bytes()
        except OSError as e:
            raise TLSError(f"cannot read the {what}: {e.strerror}", path=str(path),
                           hint="check the path in [serve] and the file's permissions") from None

    cert_pem, key_pem = read(cert_path, "certificate"), read(key_path, "private key")
    try:
        leaf = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise TLSError("not a PEM certificate", path=str(cert_path),
                       hint="name the full chain file, e.g. fullchain.pem") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as e:
        raise TLSError(f"not an unencrypted PEM private key ({e})", path=str(key_path),
                       hint="name the key file, e.g. privkey.pem") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (key.public_key().public_bytes(serialization.Encoding.DER, public)
            != leaf.public_key().public_bytes(serialization.Encoding.DER, public)):
        raise TLSError("the private key does not belong to the certificate", path=str(key_path))
    return KeyPair(cert_pem, key_pem, cert_path, key_path)


def server_context(pair: KeyPair, alpn: list[bytes]):  # noqa: ANN201 - OpenSSL.SSL.Context
    """An OpenSSL server context: TLS 1.2 at least, forward-secret AEAD suites only,
    no compression or renegotiation, ALPN as given (h2 first when available)."""
    from OpenSSL import SSL, crypto

    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE
                    | SSL.OP_NO_RENEGOTIATION | SSL.OP_SINGLE_ECDH_USE)
    ctx.set_cipher_list(CIPHERS.encode())
    chain = x509.load_pem_x509_certificates(pair.cert_pem)
    ctx.use_certificate(crypto.X509.from_cryptography(chain[0]))
    for extra in chain[1:]:
        ctx.add_extra_chain_cert(crypto.X509.from_cryptography(extra))
    ctx.use_privatekey(crypto.PKey.from_cryptography_key(
        serialization.load_pem_private_key(pair.key_pem, password=None)))
    ctx.check_privatekey()
    ctx.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
    ctx.set_session_id(b"o2m-serve")
    if alpn:
        def choose(_conn, offered: list[bytes]) -> bytes:
            return next((p for p in alpn if p in offered), b"") or SSL.NO_OVERLAPPING_PROTOCOLS
        ctx.set_alpn_select_callback(choose)
    return ctx


def stdlib_context(pair: KeyPair, alpn: list[bytes]) -> ssl.SSLContext:
    """The same policy as `server_context`, as a context of Python's `ssl` module, for
    `o2m serve`'s own TLS transport (tls_transport.py): TLS 1.2 at least, the same
    forward-secret AEAD suites with the server's order, no compression or
    renegotiation, ALPN from `alpn` in its order (no ALPN answer when nothing
    overlaps), the server's session cache and tickets as OpenSSL keeps them.

    Raises:
        TLSError: OpenSSL refuses the pair (it was checked by `load_pair`: rare), or
            its files, read again without /proc, are gone or unreadable.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= (ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
                    | ssl.OP_NO_RENEGOTIATION | ssl.OP_SINGLE_ECDH_USE)
    ctx.set_ciphers(CIPHERS)
    try:
        _load_chain(ctx, pair)
    except OSError as e:  # ssl.SSLError is one
        why = getattr(e, "reason", None) or e.strerror or e
        raise TLSError(f"OpenSSL cannot use this certificate and key ({why})",
                       path=str(pair.cert_path)) from None
    if alpn:
        ctx.set_alpn_protocols([name.decode("ascii") for name in alpn])
    return ctx


def _load_chain(ctx: ssl.SSLContext, pair: KeyPair) -> None:
    """Give `ctx` the pair's chain and key from memory: `ssl` reads them only from a
    file, so from an anonymous one where the system has them (Linux's memfd), never
    written to a disk; elsewhere (or without /proc to name it) from the pair's own
    files."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("o2m-tls", os.MFD_CLOEXEC)
        try:
            with open(fd, "wb", closefd=False) as memory:
                memory.write(pair.cert_pem + b"\n" + pair.key_pem)
            ctx.load_cert_chain(f"/proc/self/fd/{fd}")
            return
        except FileNotFoundError:  # no /proc in this container
            pass
        finally:
            os.close(fd)
    ctx.load_cert_chain(pair.cert_path, pair.key_path)


def site_pair(root: Path, config, now: dt.datetime) -> tuple[KeyPair, bool, bool]:  # noqa: ANN001
    """The pair `o2m serve` uses: the owner's from ``[serve]``, else the self-signed one.

    Returns (pair, made_now, self_signed); only a self-signed certificate's pin
    belongs in the card (a CA-issued one is checked the usual way, and changes).
    """
    if config.serve.cert:
        return load_pair(root / config.serve.cert, root / config.serve.key), False, False
    from urllib.parse import urlsplit
    host = urlsplit(config.url).hostname or "localhost"
    pair, made = ensure_self_signed(root, [host], now)
    return pair, made, True
