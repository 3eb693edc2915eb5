"""The fetcher's shell: HTTPS downloads with hard limits, friends in parallel, results
into the reader's store. The decisions are in `fetch_plan.py`; this module moves bytes.

What a hostile or broken host can do, and what stops it (THREATS.md 24-32):

- hang or trickle: connect and read timeouts, and a wall-clock deadline per friend that
  also bounds every socket read (the read timeout shrinks to what is left of it);
- send too much (endless body, lying Content-Length): a cap per file, counted on the
  bytes received after any decoding; a Content-Length over the cap is refused unread;
- compress a bomb: we ask for ``Accept-Encoding: identity``; an encoded body anyway is
  decoded by urllib3 (>= 2.7, at most 5 stacked codings) in bounded steps and counted;
- redirect: at most 3, only to https on the same host and port, never in a loop;
- answer 404, 500, or a 200 HTML page: refused for that friend, state kept;
- present a bad certificate: normal CA checks (``$O2M_CA_BUNDLE`` names a private CA),
  or, when the card has a ``tls_pin``, the SHA-256 of the server's SubjectPublicKeyInfo
  is checked right after the handshake, before a byte of the request (whose path is a
  semi-secret, §3.1) is sent;
- reset mid-object: nothing partial is kept (attachments are renamed into place whole,
  the store commits one friend at a time);
- fail: only that friend; the others go on (a pool of `workers` threads).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from . import __version__, feeds
from .canonical import b64u_encode
from .fetch_plan import (
    BAD_CERTIFICATE,
    MALFORMED,
    OVERSIZED,
    REDIRECT,
    HTTP_ERROR,
    TIMEOUT,
    UNREACHABLE,
    FriendKeys,
    Outcome,
    Refused,
    Response,
    fetch_friend,
)
from .store import ReaderStore

MAX_REDIRECTS = 3
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """Timeouts (seconds) and parallelism of one fetch run."""

    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    deadline: float = 120.0  # per friend: every file of theirs, start to end
    workers: int = 8


# ---------------------------------------------------------------- TLS pinning (§2.4)


class PinMismatchError(ssl.SSLError):
    """The server's key is not the one pinned in the friend's card."""


class _PinnedHTTPSConnection(urllib3.connection.HTTPSConnection):
    """A connection that accepts exactly one server key, by its SPKI SHA-256 pin.

    The chain and the name are not checked (the card pins a self-signed key); the pin
    is, right after the handshake and before `connect` returns, so urllib3 never sends
    the request line on a connection whose key does not match (THREATS.md 30)."""

    spki_pin: bytes = b""

    def connect(self) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.ssl_context = context
        self.cert_reqs = "CERT_NONE"
        self.ca_certs = self.ca_cert_dir = self.ca_cert_data = None
        self.assert_hostname = False
        self.assert_fingerprint = None
        super().connect()
        from .cards import CertificateError, tls_pin_from_certificate
        der = self.sock.getpeercert(binary_form=True) if self.sock else None
        try:
            pin = tls_pin_from_certificate(der) if der else None
        except CertificateError:
            pin = None
        if pin != self.spki_pin:
            self.sock.close()
            self.sock = None
            raise PinMismatchError("the server's key does not match the pin in their card")
        self.is_verified = True  # by the pin, which is stronger than a CA for this host


class PinnedAdapter(HTTPAdapter):
    """A requests adapter whose HTTPS connections check one SPKI pin."""

    def __init__(self, spki_pin: bytes, **kwargs: object) -> None:
        self._pin = spki_pin
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        super().init_poolmanager(*args, **kwargs)
        connection = type("PinnedConnection", (_PinnedHTTPSConnection,), {"spki_pin": self._pin})
        pool = type("PinnedPool", (urllib3.HTTPSConnectionPool,), {"ConnectionCls": connection})
        self.poolmanager.pool_classes_by_scheme = {"http": urllib3.HTTPConnectionPool,
                                                   "https": pool}
        self.poolmanager.key_fn_by_scheme = dict(self.poolmanager.key_fn_by_scheme)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/".lower()


# ---------------------------------------------------------------- downloads


class HTTPFetcher:
    """One pooled requests.Session for a fetch run (thread-safe for plain GETs)."""

    def __init__(self, limits: Limits = Limits(), *, ca_bundle: str | None = None,
                 hosts: int = 10) -> None:
        self.limits = limits
        self.verify: bool | str = ca_bundle or os.environ.get("O2M_CA_BUNDLE") or True
        self.session = requests.Session()
        self.session.trust_env = False  # no proxies or .netrc from the environment
        self._pool_args = dict(pool_connections=max(10, hosts), pool_maxsize=limits.workers,
                               max_retries=0)
        self.session.mount("https://", HTTPAdapter(**self._pool_args))
        self.session.mount("http://", HTTPAdapter(max_retries=0))  # never used: refused below
        self.session.headers.update({"User-Agent": f"o2m/{__version__}",
                                     "Accept-Encoding": "identity"})

    def pin(self, site_url: str, spki_pin: bytes) -> None:
        """Check this pin, instead of a CA, on every connection to the site's origin."""
        self.session.mount(_origin(site_url), PinnedAdapter(spki_pin, **self._pool_args))

    def close(self) -> None:
        self.session.close()

    def getter(self, site_url: str, deadline_at: float) -> Callable[..., Response]:
        """The `get` of fetch_plan for one friend: paths under `site_url`, all done by
        `deadline_at` (time.monotonic())."""
        def get(path: str, *, cap: int, etag: str | None = None,
                last_modified: str | None = None) -> Response:
            return self.get(urljoin(site_url, path), cap=cap, deadline_at=deadline_at,
                            etag=etag, last_modified=last_modified, origin=_origin(site_url))
        return get

    def get(self, url: str, *, cap: int, deadline_at: float, etag: str | None = None,
            last_modified: str | None = None, origin: str | None = None) -> Response:
        """GET one file: 200 with its whole body (at most `cap` bytes), 304, or 404.

        Raises:
            Refused: timeout, unreachable, bad certificate, redirect refused, an HTTP
                status other than these, an HTML page, or more than `cap` bytes.
        """
        origin = origin or _origin(url)
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        name = urlsplit(url).path.rsplit("/", 1)[-1][:12] or "/"
        seen = {url}
        for _ in range(MAX_REDIRECTS + 1):
            if not url.lower().startswith("https://"):
                raise Refused(REDIRECT, f"{name}: not https")
            response = self._send(url, headers, deadline_at)
            try:
                if response.status_code in (301, 302, 303, 307, 308):
                    target = urljoin(url, response.headers.get("Location", ""))
                    if not target.lower().startswith("https://"):
                        raise Refused(REDIRECT, f"{name}: redirected to http")
                    if _origin(target) != origin:
                        raise Refused(REDIRECT, f"{name}: redirected to another host")
                    if target in seen:
                        raise Refused(REDIRECT, f"{name}: redirect loop")
                    seen.add(target)
                    url = target
                    continue
                if response.status_code in (304, 404, 410):
                    self._drain(response, deadline_at)
                    return Response(304 if response.status_code == 304 else 404)
                if response.status_code != 200:
                    raise Refused(HTTP_ERROR, f"{name}: HTTP {response.status_code}")
                ctype = response.headers.get("Content-Type", "").lower()
                if ctype.startswith("text/html"):
                    raise Refused(MALFORMED, f"{name}: the host answered with an HTML page")
                length = response.headers.get("Content-Length", "")
                if length.isdigit() and int(length) > cap:
                    raise Refused(OVERSIZED, f"{name}: {int(length):,} bytes, over the cap "
                                  f"of {cap:,}")
                body = self._read(response, cap, deadline_at, name)
                return Response(200, body, response.headers.get("ETag"),
                                _strong_last_modified(response.headers))
            finally:
                response.close()  # a no-op for a connection already given back whole
        raise Refused(REDIRECT, f"{name}: too many redirects")

    def _send(self, url: str, headers: dict[str, str], deadline_at: float) -> requests.Response:
        remaining = deadline_at - time.monotonic()
        if remaining <= 0:
            raise Refused(TIMEOUT, "the deadline for this friend passed")
        timeout = (min(self.limits.connect_timeout, remaining),
                   min(self.limits.read_timeout, remaining))
        try:
            return self.session.get(url, headers=headers, stream=True, allow_redirects=False,
                                    timeout=timeout, verify=self.verify)
        except requests.exceptions.SSLError as e:
            pinned = "pin" in str(e)
            raise Refused(BAD_CERTIFICATE, "the server's key does not match the pin in their "
                          "card" if pinned else "the server's certificate is not valid for "
                          "it") from None
        except (requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout):
            raise Refused(TIMEOUT, "no answer in time") from None
        except requests.exceptions.RequestException as e:
            raise Refused(UNREACHABLE, _short(e)) from None

    def _read(self, response: requests.Response, cap: int, deadline_at: float,
              name: str) -> bytes:
        """The whole body, at most `cap` decoded bytes, by `deadline_at`."""
        raw = response.raw
        conn = getattr(raw, "connection", None)
        sock = getattr(conn, "sock", None)
        chunks, total = [], 0
        while True:
            remaining = deadline_at - time.monotonic()
            if remaining <= 0:
                raise Refused(TIMEOUT, f"{name}: still downloading at the deadline")
            if sock is not None:
                sock.settimeout(min(self.limits.read_timeout, remaining))
            try:
                # never more than one byte past the cap (THREATS 20: abort at length+1)
                chunk = raw.read1(min(CHUNK, cap + 1 - total), decode_content=True)
            except (socket.timeout, urllib3.exceptions.ReadTimeoutError, TimeoutError):
                raise Refused(TIMEOUT, f"{name}: the body stopped coming") from None
            except urllib3.exceptions.DecodeError as e:
                raise Refused(MALFORMED, f"{name}: bad content encoding ({_short(e)})") from None
            except (urllib3.exceptions.HTTPError, OSError) as e:
                raise Refused(UNREACHABLE, f"{name}: the connection broke ({_short(e)})") \
                    from None
            if not chunk:
                break
            total += len(chunk)
            if total > cap:
                raise Refused(OVERSIZED, f"{name}: over the cap of {cap:,} bytes")
            chunks.append(chunk)
        raw.release_conn()  # read whole: the connection goes back to the pool
        return b"".join(chunks)

    def _drain(self, response: requests.Response, deadline_at: float) -> None:
        """Read a small error or 304 body so the connection can be reused."""
        try:
            self._read(response, 64 * 1024, deadline_at, "")
        except Refused:
            pass


def _strong_last_modified(headers: object) -> str | None:
    """Last-Modified, unless the file changed within a second of the response (RFC 9110
    §8.8.2.2: then it is weak): a head rewritten in that same second would be missed by
    a later If-Modified-Since."""
    from email.utils import parsedate_to_datetime
    value = headers.get("Last-Modified")
    try:
        modified = parsedate_to_datetime(value)
        date = parsedate_to_datetime(headers.get("Date"))
    except (TypeError, ValueError, IndexError):
        return None
    return value if (date - modified).total_seconds() >= 2 else None


def _short(e: BaseException) -> str:
    text = str(e).split("\n")[0]
    for marker in ("Caused by ", "Failed to establish a new connection: "):
        if marker in text:
            text = text.split(marker)[-1]
    return text.strip("()'\" ")[:160] or e.__class__.__name__


# ---------------------------------------------------------------- a fetch run


class _Attachments:
    """The attachment cache of the store, for worker threads (files only, no SQL)."""

    def __init__(self, store: ReaderStore) -> None:
        self._store = store

    def has(self, object_hash: str) -> bool:
        return self._store.attachment_path(object_hash) is not None

    def save(self, object_hash: str, plaintext: bytes) -> None:
        self._store.store_attachment(object_hash, plaintext)


@dataclass(frozen=True)
class Target:
    """One friend to fetch: the local name and the card's public facts."""

    name: str
    url: str
    sign_pk: bytes
    box_pk: bytes
    tls_pin: bytes | None


def keys_for(own_sign_pk: bytes, own_box_pk: bytes, target: Target) -> str:
    """What cached feed secrets were derived from: both parties' public keys."""
    return ".".join(b64u_encode(k) for k in (own_sign_pk, own_box_pk, target.sign_pk,
                                              target.box_pk))


def prepare_keys(store: ReaderStore, targets: list[Target], own_sign_pk: bytes,
                 own_box_pk: bytes, unlock: Callable[[], object]) -> list[FriendKeys]:
    """Each friend's feed secrets (§3.1): cached in the store, or derived with our box
    key, which `unlock()` gives (asked for only when a secret is missing)."""
    identity = None
    out = []
    for t in targets:
        state = store.friend_state(t.name)
        tag = keys_for(own_sign_pk, own_box_pk, t)
        if state is not None and state.keys_for == tag and state.head_key:
            secrets = feeds.FeedSecrets(state.feed_name, state.head_key)
        else:
            if identity is None:
                identity = unlock()
            secrets = feeds.pairwise_secrets(bytes(identity.box_key), t.box_pk, t.sign_pk,
                                             own_sign_pk)
            store.save_secrets(t.name, b64u_encode(t.sign_pk), tag, secrets.name, secrets.key)
        out.append(FriendKeys(t.name, t.sign_pk, t.box_pk, own_sign_pk, secrets, t.url))
    return out


def fetch_friends(store: ReaderStore, friend_keys: list[FriendKeys], targets: list[Target], *,
                  now: dt.datetime, limits: Limits = Limits(), ca_bundle: str | None = None,
                  public: bool = True,
                  on_done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Fetch every friend in parallel (at most `limits.workers` at once) and store each
    accepted update in its own transaction as it completes. One friend's failure is
    recorded for them alone (THREATS.md 32)."""
    pins = {t.name: t for t in targets}
    fetcher = HTTPFetcher(limits, ca_bundle=ca_bundle, hosts=len(targets))
    for t in targets:
        if t.tls_pin is not None:
            fetcher.pin(t.url, t.tls_pin)
    attachments = _Attachments(store)
    work = [(k, store.friend_state(k.name), store.stored_object_hashes(k.name))
            for k in friend_keys]
    outcomes = []

    def one(keys: FriendKeys, state, hashes) -> Outcome:  # noqa: ANN001
        get = fetcher.getter(pins[keys.name].url, time.monotonic() + limits.deadline)
        return fetch_friend(keys, state, hashes, get, attachments, now, public=public)

    try:
        with ThreadPoolExecutor(max_workers=max(1, limits.workers)) as pool:
            futures = {pool.submit(one, *w): w[0] for w in work}
            for future in as_completed(futures):
                keys = futures[future]
                try:
                    outcome = future.result()
                except Exception as e:  # a bug must not cost the other friends their fetch
                    outcome = Outcome(keys.name, "refused", reason=MALFORMED,
                                      detail=f"internal error: {e.__class__.__name__}: {e}")
                _record(store, keys, outcome, now)
                outcomes.append(outcome)
                if on_done is not None:
                    on_done(outcome)
    finally:
        fetcher.close()
    return sorted(outcomes, key=lambda o: o.friend)


def _record(store: ReaderStore, keys: FriendKeys, outcome: Outcome, now: dt.datetime) -> None:
    if outcome.update is not None:
        store.apply_update(outcome.update, now=now)
    else:
        store.record_failure(keys.name, keys.sign_pk_text, outcome.reason or MALFORMED,
                             outcome.detail, now=now, notifications=outcome.notifications)


def targets_from_friends(friends: Iterable[object]) -> list[Target]:
    """Targets from `friends.Friend` values."""
    return [Target(f.name, f.card.url, f.card.sign_pk, f.card.box_pk, f.card.tls_pin)
            for f in friends]


def run_fetch(root: Path, names: Iterable[str] = (), *, unlock: Callable[[], object],
              now: dt.datetime, limits: Limits = Limits(), ca_bundle: str | None = None,
              on_start: Callable[[int], None] | None = None,
              on_done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """`o2m fetch`: every friend (or those named) of the site at `root`.

    Raises:
        UnknownFriendError: a name given is not a friend.
        KeyFileError, PassphraseError: our keys are needed and cannot be read.
        StoreError: the reader's store cannot be opened.
    """
    from .config import load
    from .friends import FriendStore
    from .owner import own_card
    config = load(root)
    friend_store = FriendStore(root, config_groups=config.groups)
    wanted = list(dict.fromkeys(names))
    friends = [friend_store.get(n) for n in wanted] if wanted else friend_store.list()
    if not friends:
        return []
    me = own_card(root)
    if me is None:
        from .keys import NoIdentityError
        raise NoIdentityError("this site has no identity (keys/card.json)")
    targets = targets_from_friends(friends)
    with ReaderStore.open(root) as store:
        keys = prepare_keys(store, targets, me.sign_pk, me.box_pk, unlock)
        if on_start is not None:
            on_start(len(keys))
        return fetch_friends(store, keys, targets, now=now, limits=limits,
                             ca_bundle=ca_bundle, on_done=on_done)
