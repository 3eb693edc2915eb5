"""A fetch run (`o2m fetch`): every friend in parallel, each one's published card read
first (PROTOCOL.md §3.5), their feed verified by `fetch_plan`, downloaded by
`http_fetch.HTTPFetcher`, and each friend's result stored in the reader's store, in a
transaction of its own, as it completes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from o2m_pub.errors import O2MError
from o2m_pub.protocol import feeds
from o2m_pub.protocol.canonical import b64u_encode
from o2m_pub.protocol.cards import Card
from o2m_pub.protocol.keyfile import PassphraseError
from o2m_pub.reader.attachments import FriendAttachments
from o2m_pub.reader.avatars import fetch_avatar
from o2m_pub.reader.card_refresh import CardRefresh, refresh_card
from o2m_pub.reader.fetch_plan import (
    FriendKeys,
    Outcome,
    Refused,
    fetch_friend,
    refusal,
)
from o2m_pub.reader.http_fetch import HTTPFetcher, Limits
from o2m_pub.reader.model import FriendState, Reason
from o2m_pub.reader.render import render_pending
from o2m_pub.reader.spool import FriendSpool
from o2m_pub.reader.thread_store import links_for_build, stored_threads
from o2m_pub.reader.store import (
    OverQuotaError,
    ReaderStore,
    StaleUpdateError,
    StoreError,
    fetch_lock,
)


@dataclass(frozen=True)
class FetchTarget:
    """One friend to fetch: the local name and the card's public facts."""

    name: str
    url: str
    sign_pk: bytes
    box_pk: bytes
    tls_pin: bytes | None
    card: Card | None = None  # the card held: refreshed from their site first (§3.5)
    rotations: tuple[bytes, ...] = ()  # the verified rotations that led to sign_pk

    def with_card(self, card: Card) -> "FetchTarget":
        """This friend read with another (adopted) card."""
        return dataclasses.replace(self, url=card.url, sign_pk=card.sign_pk,
                                   box_pk=card.box_pk, tls_pin=card.tls_pin, card=card)


def keys_for(own_sign_pk: bytes, own_box_pk: bytes, target: FetchTarget) -> str:
    """What cached feed secrets were derived from: both parties' public keys."""
    return ".".join(b64u_encode(k) for k in (own_sign_pk, own_box_pk, target.sign_pk,
                                              target.box_pk))


def prepare_keys(store: ReaderStore, targets: list[FetchTarget], own_sign_pk: bytes,
                 own_box_pk: bytes, unlock: Callable[[], object]) -> list[FriendKeys]:
    """Each friend's feed secrets (§3.1): cached in the store, or derived with our box
    key, which `unlock()` gives (asked for only when a secret is missing)."""
    identity = None
    out = []
    for t in targets:
        state = store.friend_state(t.name)
        tag = keys_for(own_sign_pk, own_box_pk, t)
        fresh = False
        if state is not None and state.keys_for == tag and state.head_key:
            secrets = feeds.FeedSecrets(state.feed_name, state.head_key)
        else:
            if identity is None:
                identity = unlock()
            secrets = feeds.pairwise_secrets(bytes(identity.box_key), t.box_pk, t.sign_pk,
                                             own_sign_pk)
            store.save_secrets(t.name, b64u_encode(t.sign_pk), tag, secrets.name, secrets.key)
            fresh = state is not None and state.keys_for is not None  # their keys or ours
        out.append(FriendKeys(t.name, t.sign_pk, t.box_pk, own_sign_pk, secrets, t.url,
                              feed_pk=t.card.feed_pk if t.card is not None else None,
                              rotations=t.rotations, new_secrets=fresh))
    return out


SaveCard = Callable[[str, Card, tuple[bytes, ...]], None]


def fetch_friends(store: ReaderStore, friend_keys: list[FriendKeys], targets: list[FetchTarget], *,
                  now: dt.datetime, limits: Limits = Limits(), ca_bundle: str | None = None,
                  public: bool = True, save_card: SaveCard | None = None,
                  quota: int | None = None,
                  on_done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Fetch every friend in parallel (at most `limits.workers` at once) and store each
    accepted update in its own transaction as it completes; one that would take the
    friend past `quota` bytes in the store is refused (THREATS.md 52). One friend's
    failure is recorded for them alone (THREATS.md 32). Each friend's long texts wait
    in the store's spool, not in memory, until their update is stored or refused.

    With `save_card`, each friend's published card is read first (`card_refresh`) and
    a newer one adopted is given to it (the friend store) before their update is
    stored; their feed is then read at the new card's URL, with its pin. A friend whose
    adopted card has other keys (a rotation) ends with status "rekey": their feed
    secrets must be derived anew (`run_fetch` does, and fetches them again)."""
    by_name = {t.name: t for t in targets}
    fetcher = HTTPFetcher(limits, ca_bundle=ca_bundle, hosts=len(targets),
                          pins=[t.tls_pin for t in targets if t.tls_pin is not None])
    work = [(k, store.friend_state(k.name), store.stored_object_hashes(k.name),
             FriendAttachments(store.attachments, store.credited_attachments(k.name)),
             FriendSpool(store.spool))
            for k in friend_keys]
    threads_of = {k.name: stored_threads(store.db, k.name) for k in friend_keys}
    outcomes = []
    state_dir = store.state_dir

    def one(keys: FriendKeys, state, hashes, attachments, spool) -> Outcome:  # noqa: ANN001
        target = by_name[keys.name]
        deadline_at = time.monotonic() + limits.deadline
        refresh = None
        if save_card is not None and target.card is not None:
            try:
                refresh = _refresh_card(fetcher, target, state, deadline_at)
            except Refused as e:  # no answer at all: their feed would get none either
                return refusal(keys.name, state, e, now)
            if refresh.adopted is not None:
                if refresh.rekeyed:
                    return Outcome(keys.name, "rekey", card=refresh)
                target = target.with_card(refresh.adopted)
                keys = dataclasses.replace(keys, site_url=target.url,
                                           feed_pk=refresh.adopted.feed_pk)
        get = fetcher.getter(target.url, deadline_at, target.tls_pin)

        def get_site(url: str, pin: bytes | None):  # noqa: ANN202 - a fetch_plan Getter
            """A reply's site (§4.5 step 7): its pin from the link, else the CA check."""
            return fetcher.getter(url, deadline_at, pin)
        outcome = fetch_friend(keys, state, hashes, get, attachments, now, public=public,
                               max_bytes=limits.friend_bytes, spool=spool,
                               get_site=get_site, threads=threads_of[keys.name])
        if outcome.ok and target.card is not None:  # their picture, once per hash
            fetch_avatar(target.card, get, state_dir)
        if refresh is not None:
            _with_card(outcome, refresh)
        return outcome

    try:
        with ThreadPoolExecutor(max_workers=max(1, limits.workers)) as pool:
            futures = {pool.submit(one, *w): w for w in work}
            try:
                _gather(futures, store, now, outcomes, on_done, save_card, quota)
            except BaseException:  # Ctrl-C, a store error, a full disk: do not fetch the
                pool.shutdown(wait=False, cancel_futures=True)  # friends queued
                raise
    except BaseException:
        with contextlib.suppress(Exception):  # the first error is the one to tell
            _drop_unstored(store, work, outcomes)
        raise
    finally:
        fetcher.close()
    _drop_unstored(store, work, outcomes)
    return sorted(outcomes, key=lambda o: o.friend)


def _drop_unstored(store: ReaderStore, work: list, outcomes: list[Outcome]) -> None:
    """Attachments that an update not stored alone brought are not kept (THREATS.md
    52), nor its spooled texts (THREATS.md 48: a fetch stopped by a full disk leaves
    room, not orphans); only once every accepted update that may share them is stored."""
    stored = {o.friend for o in outcomes if o.ok}
    for keys, _, _, _, spool in work:
        if keys.name not in stored:
            spool.discard()
    store.drop_uncredited_attachments([h for keys, _, _, attachments, _ in work
                                       if keys.name not in stored for h in attachments.saved])


def _refresh_card(fetcher: HTTPFetcher, target: FetchTarget, state: FriendState | None,
                  deadline_at: float) -> CardRefresh:
    """Their published card, by a conditional request checked as their feed is (pin
    or CAs); when that TLS check fails, once more over an unverified connection, over
    which nothing else is asked (§3.5: a card is trusted by its signature alone).

    Raises:
        Refused: the site gives no answer (timeout, unreachable): the friend's fetch
            ends with that reason, rather than spending the rest of its deadline on
            the feed. Other failures are left to the feed's fetch to report.
    """
    assert target.card is not None
    get = fetcher.getter(target.url, deadline_at, target.tls_pin)
    try:
        return refresh_card(target.card, get, etag=state.card_etag if state else None,
                            last_modified=state.card_last_modified if state else None)
    except Refused as e:
        if e.reason in (Reason.TIMEOUT, Reason.UNREACHABLE):
            raise  # the site does not answer: the fetch ends here, with this reason
        if e.reason != Reason.BAD_CERTIFICATE:
            return CardRefresh(target.card, previous=target.card)
    unverified = fetcher.getter(target.url, deadline_at, unverified=True)
    try:
        refresh = refresh_card(target.card, unverified)
    except Refused:
        return CardRefresh(target.card, previous=target.card)
    refresh.validators = None  # kept only from a checked connection
    return refresh


def _with_card(outcome: Outcome, refresh: CardRefresh) -> None:
    """Attach what their card came to: its notifications (stored with the update, or
    with the failure) and its validators (with the update)."""
    outcome.card = refresh
    if outcome.update is not None:
        outcome.update.notifications[:0] = refresh.notifications
        if refresh.validators is not None and outcome.update.state is not None:
            outcome.update.state = dataclasses.replace(outcome.update.state,
                                                       card_validators=refresh.validators)
    else:
        outcome.notifications[:0] = refresh.notifications


def _gather(futures: dict, store: ReaderStore, now: dt.datetime, outcomes: list[Outcome],
            on_done: Callable[[Outcome], None] | None,
            save_card: SaveCard | None = None, quota: int | None = None) -> None:
    """Record each friend's outcome as it completes."""
    for future in as_completed(futures):
        keys, spool = futures[future][0], futures[future][4]
        try:
            outcome = future.result()
        except OSError as e:  # our own disk (the network's are Refused): not their fault
            raise _local_error(keys.name, e, store.state_dir) from e
        except Exception as e:  # a bug must not cost the other friends their fetch
            outcome = Outcome(keys.name, "refused", reason=Reason.MALFORMED,
                              detail=f"internal error: {e.__class__.__name__}: {e}")
        try:
            _record(store, keys, outcome, now, save_card, quota)
        finally:
            spool.discard()  # stored, or refused: the texts' files are done with
        outcomes.append(outcome)
        if on_done is not None and outcome.status != "rekey":
            on_done(outcome)


def _local_error(friend: str, e: OSError, state_dir: Path) -> StoreError:
    """A file of our own that could not be written (a full disk, a quota, a read-only or
    failing disk, a permission) stops the fetch as the local problem it is (THREATS.md
    48): nothing of `friend`'s update is stored, nothing is held against them, and the
    next fetch stores what this one could not. Updates stored before it stay."""
    where = None
    if e.filename is not None:
        path = Path(os.fsdecode(e.filename))
        where = str(path.relative_to(state_dir.parent)
                    if path.is_relative_to(state_dir.parent) else path)
    full = e.errno in (errno.ENOSPC, errno.EDQUOT)
    return StoreError(f"{e.strerror or e}: {friend}'s update was not stored (nothing is "
                      "held against them)", path=where,
                      hint=("free space on the disk that holds .o2m/" if full else
                            "mend that (a read-only or failing disk, a permission on "
                            ".o2m/)") + ", then run `o2m fetch` again")


def _record(store: ReaderStore, keys: FriendKeys, outcome: Outcome, now: dt.datetime,
            save_card: SaveCard | None = None, quota: int | None = None) -> None:
    """Store an adopted card (in the friend store, first: it stands on its own
    signature), then the accepted update, or the failure. An update whose head is no
    longer newer than the stored one when it commits (another fetch stored a newer
    head meanwhile) is refused then, as a rollback or equivocation (THREATS.md 10); one
    that would take the friend past `quota`, as over quota (THREATS.md 52)."""
    refresh = outcome.card
    if refresh is not None and refresh.adopted is not None and save_card is not None:
        try:
            save_card(keys.name, refresh.adopted, refresh.rotations)
        except O2MError as e:  # e.g. removed meanwhile: their feed was read all the same
            refresh.error = f"their new card could not be kept: {e}"
    if outcome.status == "rekey":  # fetched again with the new keys (run_fetch)
        for kind, detail in refresh.notifications:
            store.add_notification(kind, keys.name, detail, now=now)
        return
    if outcome.update is not None:
        try:
            store.apply_update(outcome.update, now=now, quota=quota)
            return
        except (StaleUpdateError, OverQuotaError) as e:
            reason = e.reason if isinstance(e, StaleUpdateError) else Reason.OVER_QUOTA
            outcome.status, outcome.reason, outcome.detail = "refused", reason, str(e)
            outcome.notifications[:0] = outcome.update.notifications[:len(
                refresh.notifications)] if refresh is not None else []
            outcome.update = None
            outcome.new = outcome.updated = outcome.deleted = outcome.skipped = 0
            if reason == Reason.EQUIVOCATION:  # THREATS.md 11: a warning, as in fetch_plan
                outcome.notifications.append(("equivocation", str(e)))
            if reason == Reason.OVER_QUOTA:
                outcome.detail = f"{e}; {e.hint}"
                outcome.notifications.append(("over_quota", outcome.detail))
    store.record_failure(keys.name, keys.sign_pk_text, outcome.reason or Reason.MALFORMED,
                         outcome.detail, now=now, notifications=outcome.notifications)


def export_links(root: Path, store: ReaderStore, friends: Iterable[object]) -> bool:
    """Write, for the owner's next build, the reply links and reactions of each of its
    posts (PROTOCOL.md §4.4; `friends.conversation_files`); True when they changed."""
    from o2m_pub.friends.conversation_files import save_conversations
    assert store.own_key is not None
    pins = {b64u_encode(f.card.sign_pk): "sha256/" + b64u_encode(f.card.tls_pin)
            for f in friends if f.card.tls_pin is not None}
    return save_conversations(root, links_for_build(store.db, store.own_key, pins))


def targets_from_friends(friends: Iterable[object]) -> list[FetchTarget]:
    """Targets from `friends.Friend` values."""
    return [FetchTarget(f.name, f.card.url, f.card.sign_pk, f.card.box_pk, f.card.tls_pin,
                   card=f.card, rotations=f.rotations)
            for f in friends]


def run_fetch(root: Path, names: Iterable[str] = (), *, unlock: Callable[[], object],
              now: dt.datetime, limits: Limits = Limits(), ca_bundle: str | None = None,
              on_start: Callable[[int], None] | None = None,
              on_done: Callable[[Outcome], None] | None = None,
              wait_for_lock: bool = False) -> list[Outcome]:
    """`o2m fetch`: every friend (or those named) of the site at `root`, one fetch per
    site at a time (`store.fetch_lock`; with `wait_for_lock`, queue behind another).

    Each friend's published card is read first (PROTOCOL.md §3.5) and a newer one
    adopted into the friend store; friends who moved to new keys (a verified rotation,
    §2.5) are fetched a second time, with secrets derived for their new keys.

    Raises:
        UnknownFriendError: a name given is not a friend.
        KeyFileError, PassphraseError: our keys are needed and cannot be read.
        StoreBusyError: another fetch is running for this site (unless waiting).
        StoreError: the reader's store cannot be opened or written.
        CABundleError: $O2M_CA_BUNDLE names no usable CA bundle.
    """
    from o2m_pub.config import load
    from o2m_pub.friends.friend_store import FriendStore
    from o2m_pub.friends.identity import own_card
    config = load(root)
    friend_store = FriendStore(root, config_groups=config.groups)
    wanted = list(dict.fromkeys(names))
    if not (wanted or friend_store.list()):
        return []
    me = own_card(root)
    if me is None:
        from o2m_pub.protocol.keyfile import NoIdentityError
        raise NoIdentityError("this site has no identity (keys/card.json)")

    def save_card(name: str, card: Card, rotations: tuple[bytes, ...]) -> None:
        friend_store.update_card(name, card, rotations=rotations)

    with fetch_lock(root, wait=wait_for_lock), ReaderStore.open(root) as store:
        # the friends as they are once the lock is ours: a fetch that waited for it may
        # follow `o2m friend remove` or `rename`, which hold it while they change both
        friends = [friend_store.get(n) for n in wanted] if wanted else friend_store.list()
        targets = targets_from_friends(friends)
        options = dict(now=now, limits=limits, ca_bundle=ca_bundle, save_card=save_card,
                       on_done=on_done, quota=config.reader.quota_per_friend)
        store.spool.clear()  # what a fetch killed before left there
        store.own_key = b64u_encode(me.sign_pk)
        outcomes = _fetch_all(store, targets, me, unlock, friend_store, on_start, options)
        export_links(root, store, friend_store.list())
        from o2m_pub.friends.notice_queue import drop
        from o2m_pub.reader.thread_store import clear_notices
        fetched = [o.friend for o in outcomes if o.ok]
        drop(root, fetched)  # §4.7: their notices are done,
        clear_notices(store.db, fetched)  # and so is what they told the owner
        # Each new post rendered once, here, within hard limits: the reader never
        # renders while a person waits (THREATS.md 49). Posts of older stores too.
        rendering = render_pending(store, [o.friend for o in outcomes],
                                   cpu_seconds=limits.render_cpu_seconds,
                                   budget_seconds=limits.render_budget,
                                   quota=config.reader.quota_per_friend)
        for o in outcomes:
            o.as_text = rendering.as_text.get(o.friend, 0)
        return outcomes


def _fetch_all(store: ReaderStore, targets: list[FetchTarget], me: Card,
               unlock: Callable[[], object], friend_store: object,
               on_start: Callable[[int], None] | None, options: dict) -> list[Outcome]:
    """Every target fetched once; those who moved to new keys (a verified rotation)
    a second time, with secrets derived for their new keys."""
    keys = prepare_keys(store, targets, me.sign_pk, me.box_pk, unlock)
    if on_start is not None:
        on_start(len(keys))
    outcomes = fetch_friends(store, keys, targets, **options)
    rekeyed = {o.friend: o for o in outcomes if o.status == "rekey"}
    if not rekeyed:
        return outcomes
    again = targets_from_friends(friend_store.get(n) for n in rekeyed)
    try:
        keys = prepare_keys(store, again, me.sign_pk, me.box_pk, unlock)
    except PassphraseError as e:  # e.g. a cron job: the others' results stand
        locked = [Outcome(name, "refused", reason=Reason.KEY_CHANGED,
                          detail=f"their new key was followed, but reading its feed "
                                 f"needs your key once ({e}): run `o2m fetch` with "
                                 "your passphrase", card=rekeyed[name].card)
                  for name in rekeyed]
        return sorted([o for o in outcomes if o.status != "rekey"] + locked,
                      key=lambda o: o.friend)
    second = fetch_friends(store, keys, again, **{**options, "save_card": None})
    for outcome in second:
        outcome.card = rekeyed[outcome.friend].card
    return sorted([o for o in outcomes if o.status != "rekey"] + second,
                  key=lambda o: o.friend)
