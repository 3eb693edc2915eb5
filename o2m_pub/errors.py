"""The one error tree of o2m. Each class's docstring is the user-facing text.

Every error o2m reports to the user is an `O2MError`: the command (`o2m_pub.cli`)
shows it as one line, ``o2m: error: <where>: <what>``, with its hint below and exit
status 1. Anything else that reaches the command is a bug: one ``o2m: internal
error: <Type>: <message>`` line, exit status 1, the traceback only with ``--debug``.
Many classes also inherit the builtin they refine (``ValueError`` for bad input, as
PyNaCl's errors do), so code that knows nothing of o2m still catches them.

The tree, grouped by cause, with the module of each class (under `o2m_pub.`)::

    O2MError                            errors                anything o2m shows as one line
    │
    │   the owner's site: configuration, posts, the build
    ├── ConfigError                     errors                o2m.toml is missing or wrong
    ├── SiteError                       errors                the site folder or its state: unusable
    ├── PostError                       errors                one post cannot be built (file:line)
    ├── BuildFailedError                errors                a build ran, but some posts failed
    ├── RollbackRefusedError            friends.private_feeds a feed would go below its last seq
    ├── MentionError                    site.mentions         .o2m/mentions.db cannot be used
    │   └── UnknownMentionError         site.mentions         no stored Webmention has that id
    │
    │   the owner's keys
    ├── PassphraseError                 protocol.keyfile      no passphrase, or an unusable one
    │   └── WrongPassphraseError        protocol.keyfile      wrong passphrase, or altered key file
    ├── KeyFileError                    protocol.keyfile      the key file is damaged or unsupported
    │   ├── NoIdentityError             protocol.keyfile      the site has no keys yet
    │   └── IdentityExistsError         protocol.keyfile      the site has keys already
    │
    │   cards, friends and groups
    ├── CardError                       protocol.cards        a contact card that cannot be used
    │   ├── MalformedCardError          protocol.cards        not a card at all
    │   ├── InvalidCardFieldError       protocol.cards        one field is wrong (`.field`)
    │   ├── UnsupportedCardVersionError protocol.cards        made by a newer o2m
    │   ├── BadCardSignatureError       protocol.cards        changed after signing, or forged
    │   └── CertificateError            protocol.cards        an unreadable TLS certificate
    ├── QRTooBigError                   friends.qr            too long for a QR code
    ├── InvitationError                 protocol.invite       an invitation or reply that cannot be used
    │   ├── MalformedInvitationError    protocol.invite       not an invitation or reply at all
    │   ├── ExpiredInvitationError      protocol.invite       its time is over
    │   ├── BadAcceptanceError          protocol.invite       a reply that does not open: forged, altered
    │   ├── UnknownInvitationError      friends.invitations   no invitation of this site has that id
    │   ├── UsedInvitationError         friends.invitations   the invitation made a friend already
    │   └── InvitationStoreError        friends.invitations   .o2m/invites.json is damaged
    ├── RotationError                   protocol.rotation     a key rotation that does not verify
    ├── RotationRefusedError            friends.key_rotation  the site's keys cannot rotate (now)
    ├── FeedSignatureError              protocol.feed_signature a public feed that does not verify
    ├── FriendError                     friends.friend_store  wrong with friends or groups
    │   ├── InvalidFriendNameError      friends.friend_store  breaks the name rule, or clashes
    │   ├── UnknownFriendError          friends.friend_store  no friend has that name
    │   ├── DuplicateFriendNameError    friends.friend_store  the name is taken by another card
    │   ├── SameKeyOtherNameError       friends.friend_store  a friend's card, under another name
    │   ├── KeyChangeError              friends.friend_store  a friend's card, with new keys
    │   ├── SameOriginOtherPinError     friends.friend_store  another pin for a friend's host
    │   ├── OwnCardError                friends.friend_store  the owner's own card
    │   ├── FriendStoreError            friends.friend_store  a file under keys/ is damaged
    │   ├── GroupError                  friends.friend_store  a group cannot be changed that way
    │   │   ├── InvalidGroupNameError   friends.friend_store  breaks the name rule, or clashes
    │   │   ├── UnknownGroupError       friends.friend_store  no group has that name
    │   │   └── ConfigGroupError        friends.friend_store  the group is set in o2m.toml
    │   ├── UnknownAudienceError        friends.friend_store  an audience that names nobody
    │   └── AmbiguousAudienceError      friends.friend_store  both a friend's and a group's name
    │
    │   serving and publishing
    ├── TLSError                        host.tls              an unusable certificate or key
    ├── ServeError                      host.listen           the server cannot start
    ├── PublishError                    host.publish.target   the site could not be published
    │   └── _RemoteFolderMissingError   host.publish.rclone   (private) no remote folder yet: a
    │                                                         listing takes it as empty
    │
    │   fetching and reading friends
    ├── CABundleError                   reader.http_fetch     $O2M_CA_BUNDLE is no usable bundle
    ├── CardFetchError                  reader.http_fetch     a card not fetched from a site
    ├── Urllib3CompatError              reader._urllib3_compat this urllib3 lacks what o2m needs
    ├── StoreError                      reader.store          the reader's store cannot be used
    │   ├── StoreBusyError              reader.store          another process is writing to it
    │   ├── StaleUpdateError            reader.store          a newer head was stored meanwhile
    │   ├── OverQuotaError              reader.store          a friend's update past their quota
    │   └── AmbiguousPostError          reader.store          a short id of several posts
    ├── ReadingError                    reader.timeline       the timeline cannot show this
    │   ├── NoSuchPostError             reader.timeline       no stored post has this id
    │   └── NoSuchFriendError           reader.timeline       nothing stored from this friend
    ├── ConversationActionError         reader.replying       a reply or reaction cannot be made
    │
    │   the owner's desk
    └── DeskError                       desk.web              the desk cannot do this
        ├── DeskStoreError              desk.sessions         the desk's store cannot be used
        ├── DeskListenError             desk.server           the desk cannot start
        ├── EditConflictError           desk.posts            the post changed on disk meanwhile
        ├── PostPathError               desk.posts            not a post of content/
        └── PhotoError                  desk.photos           an upload that is no usable photo

Outside the tree, on purpose (none of them reaches the user as it is):

- `FeedFormatError` (with its `FutureHeadError`) and `FeedAuthError` (with its
  `RollbackError` and `EquivocationError`), ValueErrors of `protocol.feeds`: a feed
  file or object that is not well formed, or does not verify. The pure core raises
  them; the reader's `fetch_plan` turns each into a refusal reason for that friend
  alone (`Refused`).
- `Refused` (an Exception, `reader.fetch_plan`): not a failure of the command, but one
  friend's fetch refused, with the reason `o2m fetch` prints and the store keeps.
- `EncodingError` (a ValueError, `protocol.canonical`): malformed encoded bytes, too
  low-level to say whose; cards, key files and feeds catch it and raise their own
  error, with the context.
- `OutsideOutputError` (a ValueError, `site.writer`): a guard, not a message: a path
  that would leave build/ (or pass through a symlink in it) is a bug or an attack, and
  shows as an internal error.
- `WebRefused` (an Exception, `reader.public_web`): a page of the public web not
  fetched for Webmention (unreachable, too slow, too large, a private address); the
  outcome of that one mention, recorded with it, never a failure of the command.
- `PinMismatchError` (an `ssl.SSLError`, `reader.http_fetch`): it must be a TLS
  error, so that urllib3 fails the connection as it fails a bad certificate; the
  fetcher reports it as a "bad certificate" refusal.
"""

from __future__ import annotations

from dataclasses import dataclass


class O2MError(Exception):
    """Something went wrong."""

    hint: str | None = None
    path: str | None = None

    def __init__(self, message: str | None = None, *, hint: str | None = None,
                 path: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())
        if hint is not None:
            self.hint = hint
        if path is not None:
            self.path = path

    @property
    def where(self) -> str | None:
        """The place (a file, file:line, a URL) the message is about, when there is one."""
        return self.path


class ConfigError(O2MError, ValueError):
    """The site configuration (o2m.toml) is not valid."""

    def __init__(self, message: str, *, path: str = "o2m.toml", line: int | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path, self.line = path, line

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path


class SiteError(O2MError):
    """This folder is not an o2m site."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one post: where it is, what is wrong, how to mend it."""

    path: str
    line: int
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class PostError(O2MError, ValueError):
    """A post cannot be built."""

    def __init__(self, path: str, line: int, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problem = Problem(path, line, message, hint)

    @property
    def where(self) -> str:
        return f"{self.problem.path}:{self.problem.line}"


class BuildFailedError(O2MError):
    """Some posts have problems; the rest of the site was built."""

    def __init__(self, problems: list[Problem]) -> None:
        n = len(problems)
        super().__init__(f"{n:,} problem{'s' if n != 1 else ''} in the posts above; "
                         "the rest of the site was built",
                         hint="fix the files named above and run `o2m build` again (a post "
                         "that does not parse keeps its last good page; an unknown audience "
                         "name is left out of its audience)")
        self.problems = problems
