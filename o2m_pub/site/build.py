"""`o2m build`: the imperative shell around parsing, planning and rendering.

Order of work (DESIGN.md property 7, PROTOCOL.md §1.5), one `_Build` method each:
scan sources -> parse and render what changed (in parallel) -> plan the pages and the
friends' feeds -> A: write media, assets and encrypted objects; then B: archive pages
and pages at new paths; then C: rewritten post pages; then D: rewritten index pages;
then E: feeds, sitemap and friends' heads, each phase made durable before the next ->
F: delete what nothing refers to any more -> commit the manifest. A build killed at any
point leaves a readable site and whole feeds; the next one repairs the rest.

The phases' parts live beside this shell: `sources` (scanning and rendering posts),
`audience` (who may read), `plan` (pure page planning), `outputs` (what to write, keep
or delete), `pages` (rendering pages), `public_feeds` (feed.json, Atom, the sitemap),
`private_steps` (friends' feeds), `snapshot` (the manifest as last committed) and
`report`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import os
import posixpath
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping, Union

import jinja2

from o2m_pub import config as config_mod
from o2m_pub._files import site_lock
from o2m_pub.config import BUILD_DIR, CARD_FILE, STATE_DIR, SiteConfig, build_paths
from o2m_pub.errors import SiteError
from o2m_pub.site.audience import (
    Friends,
    check_audience,
    check_default_audience,
    load_friends,
)
from o2m_pub.site.manifest import FileState, Manifest, OutputState, SourceState
from o2m_pub.site.media_paths import MediaPaths, unreadable
from o2m_pub.site.model import PostRecord
from o2m_pub.site.outputs import Outputs
from o2m_pub.site.pages import (
    LINKS_KEY,
    TEMPLATES_DIR,
    LinkWarnings,
    PageResult,
    Views,
    render_pages,
    template_problem,
)
from o2m_pub.site.plan import (
    Page,
    digest_of,
    index_fingerprint,
    plan_pages,
    post_pages,
    resolve_collisions,
    sha256_hex,
)
from o2m_pub.site.public_feeds import PublicFeeds
from o2m_pub.site.render import (
    BUILTIN_THEME,
    PageRenderer,
    make_environment,
    template_fingerprints,
    theme_dirs,
)
from o2m_pub.site.report import BuildProgress, BuildReport
from o2m_pub.site.scan import CONTENT_DIR, is_editor_litter, scan_sources
from o2m_pub.site.scan_ahead import ScanAhead, start as start_scan_ahead
from o2m_pub.site.snapshot import ManifestSnapshot
from o2m_pub.site.sources import (
    MARKUP_KEY,
    PARSE_KEY,
    markup_options,
    parse_options,
    render_changed,
    sha_of_file,
)
from o2m_pub.site.writer import AtomicWriter

if TYPE_CHECKING:
    from o2m_pub.friends.private_feeds import FeedPlan
    from o2m_pub.site.mention_plan import MentionView
    from o2m_pub.protocol.keyfile import Identity
    from o2m_pub.site.private_steps import PrivateFeeds

# The names `o2m build`, `o2m watch` and the tests import from here.
__all__ = ["BUILD_DIR", "BuildProgress", "BuildReport", "Builder", "build_site",
           "is_editor_litter"]

WELL_KNOWN_CARD = ".well-known/o2m-card.json"
WELL_KNOWN_ROTATIONS = ".well-known/o2m-rotations.json"  # PROTOCOL.md §2.5
ROTATIONS_FILE = "keys/rotations.json"
AVATAR_FILE = "keys/avatar"  # the card's picture; published where the card says (§2.4)
FUTURE_WARNING = dt.timedelta(days=1)  # a post dated later than this is a likely typo


def _media_name(ref: str) -> str:
    """The file name a media file is published under: its own when that is a plain
    name, otherwise a safe one with the same extension (the hash names it anyway)."""
    name = posixpath.basename(ref)
    if re.fullmatch(r"[\w][\w.-]{0,120}", name):
        return name
    ext = posixpath.splitext(name)[1]
    return "file" + (ext if re.fullmatch(r"\.[A-Za-z0-9]{1,10}", ext) else "")


class _Files:
    """Stat-then-hash of media and static files, remembering hashes by stat, and each
    file's state once a build (a friends-only post's files are looked at for its
    warnings, then for its sealing)."""

    def __init__(self, known: dict[str, FileState]) -> None:
        self.known, self.now = known, {}  # type: ignore[var-annotated]

    def state(self, key: str, path: Path | str, st: os.stat_result | None = None) -> FileState:
        if key in self.now:
            return self.now[key]
        st = st or os.stat(path)  # (the caller may have its stat already)
        old = self.known.get(key)
        if old and old.mtime_ns == st.st_mtime_ns and old.size == st.st_size:
            self.now[key] = old
        else:
            self.now[key] = FileState(st.st_mtime_ns, st.st_size,
                                      sha256_hex(Path(path).read_bytes()))
        return self.now[key]


def _static_files(root: Path) -> dict[str, Path]:
    """name -> file of the theme's static/, the site's overriding the built-in's."""
    found: dict[str, Path] = {}
    for base in (Path(str(BUILTIN_THEME)) / "static", root / TEMPLATES_DIR / "static"):
        if base.is_dir():
            for p in sorted(base.rglob("*")):
                if p.is_file() and not p.name.startswith("."):
                    found[p.relative_to(base).as_posix()] = p
    return found


def build_site(root: Path, *, drafts: bool = False, jobs: int | None = None,
               progress: BuildProgress | None = None,
               unlock: Callable[[], "Identity"] | None = None,
               now: dt.datetime | None = None, ahead: ScanAhead | None = None) -> BuildReport:
    """Build the site at `root` into build/ (or, with drafts, a private preview folder):
    one build of a `Builder` session (see there for the arguments).

    Raises:
        ConfigError, SiteError: the site as a whole cannot be built.
        PassphraseError: a feed had to be signed and the key could not be unlocked.
    Post problems do not raise: they are in the report, and the rest is built.
    """
    with Builder(root, drafts=drafts, jobs=jobs, progress=progress, unlock=unlock,
                 one_off=True, ahead=ahead) as builder:
        return builder.build(now=now)


MENTIONS_DB = "mentions.db"  # site.mentions.DB_NAME, in the state folder


def _approved_mentions(root: Path) -> dict[str, tuple["MentionView", ...]]:
    """Post path -> its approved Webmentions (PROTOCOL.md §1.6); a site that never
    stored one imports none of their code (html.parser and all: 5 ms a build)."""
    if not (root / STATE_DIR / MENTIONS_DB).is_file():
        return {}
    from o2m_pub.site.mentions import approved_views
    return approved_views(root)


# --- the build session: what stays warm between builds --------------------------------

def _template_stamp(root: Path) -> str:
    """Names, sizes and times of every template (the theme's static/ aside): when it is
    unchanged, so are the templates' fingerprints and the compiled templates."""
    return digest_of(*sorted(
        (str(p), st.st_mtime_ns, st.st_size)
        for base in theme_dirs(root / TEMPLATES_DIR) if os.path.isdir(base)
        for p in Path(base).rglob("*")
        if "static" not in p.relative_to(base).parts[:1] and (st := p.stat())
        and p.is_file()))


def _friends_stamp(root: Path, config: SiteConfig) -> tuple:
    """What `load_friends` reads: the friends' files, groups, the public key, o2m.toml's
    groups. Equal stamps, equal friends."""
    def stamp(path: str) -> tuple:
        try:
            st = os.stat(path)
        except OSError:
            return ()
        return st.st_ino, st.st_mtime_ns, st.st_size

    keys = root / "keys"
    try:
        names = sorted(os.listdir(keys / "friends"))
    except OSError:
        names = []
    return (sorted(config.groups.items()), stamp(keys / "groups.json"),
            stamp(keys / "identity.pub.json"), stamp(keys / "card-state.json"),
            [(n, stamp(keys / "friends" / n)) for n in names])


class Builder:
    """A build session for one site. Each `build()` is a whole build with the same
    order of work, atomicity and crash safety as `o2m build` (the manifest on disk stays
    the authority); between builds the session keeps warm what is safe to keep:

    - the manifest's connection and its tables, parsed; reloaded when another process
      committed to it (SQLite's data_version) or the file was replaced or deleted, and
      dropped whenever a build fails midway;
    - the Jinja environment with its compiled templates, while no template changes;
    - the friends read from keys/, while their files and groups are unchanged;
    - the unlocked identity: `unlock` is called at most once per session;
    - the Markdown pipeline and every module imported.

    A session is used from one thread (SQLite's rule): `o2m watch` gives it its own.

    Args:
        drafts: include drafts, into the private preview folder (.o2m/preview/).
        jobs: worker processes for big builds (default: the cores).
        unlock: returns the owner's unlocked identity; called only when a friend's feed
            must be signed (PROTOCOL.md §3.4), never for a build that changes none.
        wait_for_lock: queue behind another build of the site instead of failing.
        one_off: one build and done (`build_site`): from the manifest's reading to
            `close`, what the process holds is frozen out of the garbage collector's
            walks (gc.freeze), which would otherwise go over the 10,000 records again
            and again; `close` unfreezes it, for a caller that lives on.
        ahead: the scan of content/ a caller started in a forked child before its own
            work (`o2m build`, before its imports), for the first build.
    """

    def __init__(self, root: Path, *, drafts: bool = False, jobs: int | None = None,
                 progress: BuildProgress | None = None,
                 unlock: Callable[[], "Identity"] | None = None,
                 wait_for_lock: bool = False, one_off: bool = False,
                 ahead: ScanAhead | None = None) -> None:
        self.root, self.drafts, self.progress, self.wait_for_lock = root, drafts, progress, \
            wait_for_lock
        self.one_off, self._frozen, self._ahead = one_off, False, ahead
        self.jobs = jobs or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                             else os.cpu_count() or 1)
        self.state_dir = root / STATE_DIR
        self.db_path, self.out_dir = build_paths(root, drafts)
        self._unlock = unlock
        self._identity: Identity | None = None
        self._manifest: Manifest | None = None
        self._db_file: tuple[int, int] | None = None
        self._data_version: int | None = None
        self._snapshot: ManifestSnapshot | None = None
        self._env: tuple[str, jinja2.Environment] | None = None
        self._friends: tuple[tuple, Friends] | None = None

    def __enter__(self) -> "Builder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the manifest (the next build opens it again)."""
        if self._manifest is not None:
            self._manifest.close()
        self._manifest = self._snapshot = None
        if self._frozen:  # the garbage collector walks all again (see `one_off`)
            gc.unfreeze()
            self._frozen = False

    def unlock(self, sign_pk: bytes | None = None) -> "Identity":
        """The identity, unlocked once per session (only when a feed must be signed),
        and again if the site's key is no longer `sign_pk`'s (`o2m key import`)."""
        if self._identity is None or (sign_pk is not None and self._identity.sign_pk != sign_pk):
            if self._unlock is None:
                from o2m_pub.protocol.keyfile import (
                    PassphraseError,  # the crypto: if needed
                )
                raise PassphraseError("friends' feeds must be signed, and the key is locked",
                                      hint="run `o2m build` on a terminal, or set O2M_PASSPHRASE")
            self._identity = self._unlock()
        return self._identity

    def build(self, *, now: dt.datetime | None = None) -> BuildReport:
        """Build once more (`now`: the time heads are signed at; default the clock).

        Raises:
            ConfigError, SiteError: the site as a whole cannot be built.
            PassphraseError: a feed had to be signed and the key could not be unlocked.
        Post problems do not raise: they are in the report, and the rest is built.
        """
        started = time.perf_counter()
        with self._scan_ahead() as ahead:
            config = config_mod.load(self.root)
            report = BuildReport(out_dir=self.out_dir)
            with site_lock(self.state_dir, wait=self.wait_for_lock):
                try:
                    manifest, snapshot = self._manifest_state()
                    if ahead is not None:
                        ahead.check_state()  # (another build since the child's stats?)
                    build = _Build(self.root, config, manifest, self.out_dir, report,
                                   drafts=self.drafts, jobs=self.jobs, progress=self.progress,
                                   snapshot=snapshot, env=self._environment(manifest),
                                   friends=self._friends_of(config), unlock=self.unlock,
                                   now=now or dt.datetime.now(dt.timezone.utc), ahead=ahead)
                    build.run()
                except BaseException:
                    self.close()  # whatever it left in memory is not trusted again
                    raise
                self._snapshot = build.next_snapshot
        report.seconds = time.perf_counter() - started
        return report

    def _scan_ahead(self) -> contextlib.AbstractContextManager[ScanAhead | None]:
        """The scan of content/ in a forked child (`scan_ahead`): the caller's, for the
        first build, or one started now for a one-off build of a big site; else none,
        and the build scans when it gets there."""
        ahead, self._ahead = self._ahead, None
        if ahead is None and self.one_off:
            ahead = start_scan_ahead(self.root, self.db_path, self.out_dir)
        return ahead if ahead is not None else contextlib.nullcontext()

    def _manifest_state(self) -> tuple[Manifest, ManifestSnapshot]:
        """The open manifest and its tables, reloaded if anyone else changed them."""
        try:
            st = os.stat(self.db_path)
            on_disk: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            on_disk = None
        if self._manifest is not None and (
                on_disk != self._db_file or self._read_data_version() != self._data_version):
            self.close()  # another build committed, or .o2m/ was deleted or restored
        if self._manifest is None:
            self._manifest = Manifest(self.db_path)
            st = os.stat(self.db_path)
            self._db_file = (st.st_dev, st.st_ino)
        if self._snapshot is None:
            self._snapshot = ManifestSnapshot(self._manifest, freeze=self.one_off)
            self._frozen = self._frozen or self.one_off
        self._data_version = self._read_data_version()
        return self._manifest, self._snapshot

    def _read_data_version(self) -> int:
        # changes whenever another connection commits (never for our own commits)
        return self._manifest.db.execute("PRAGMA data_version").fetchone()[0]  # type: ignore[union-attr]

    def _environment(self, manifest: Manifest) -> tuple[str, jinja2.Environment]:
        stamp = _template_stamp(self.root)
        cache = manifest.path.parent / "templates"  # gone with a deleted .o2m/
        if self._env is None or self._env[0] != stamp or not cache.is_dir():
            self._env = (stamp, make_environment(self.root / TEMPLATES_DIR, cache))
        return self._env

    def _friends_of(self, config: SiteConfig) -> Friends:
        stamp = _friends_stamp(self.root, config)
        if self._friends is None or self._friends[0] != stamp:
            self._friends = (stamp, load_friends(self.root, config))
        return self._friends[1]


# --- one build ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _NoFeeds:
    """The feed plan of a build that writes no friend's feed (no friends, drafts, or a
    key that could not be unlocked): nothing to write, keep or record."""

    files: tuple[tuple[str, bytes], ...] = ()
    states: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    objects: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    changed: frozenset[str] = frozenset()
    max_seq: int = 0
    heads_written: int = 0


NO_FEEDS = _NoFeeds()
Feeds = Union["FeedPlan", _NoFeeds]


@dataclass
class _SitePlan:
    """What the write phases A-D publish of the public site."""

    static: dict[str, tuple[Path, FileState]]  # theme file name -> its file and state
    media: dict[str, tuple[str, FileState]]  # source path -> output path and state
    pages: list[Page]  # every page to consider (those unchanged are kept, not rendered)
    renderer: PageRenderer


class _Build:
    """One build's working state; `run` is the order of work in the module docstring,
    one method per phase."""

    def __init__(self, root: Path, config: SiteConfig, manifest: Manifest, out_dir: Path,
                 report: BuildReport, *, drafts: bool, jobs: int,
                 progress: BuildProgress | None, snapshot: ManifestSnapshot,
                 env: tuple[str, jinja2.Environment], friends: Friends,
                 unlock: Callable[[bytes], "Identity"], now: dt.datetime,
                 ahead: ScanAhead | None = None) -> None:
        self.root, self.config, self.manifest, self.out_dir = root, config, manifest, out_dir
        self.ahead = ahead  # the scan of content/, when a child does it meanwhile
        self.report, self.drafts, self.jobs, self.progress = report, drafts, jobs, progress
        self.media_paths = MediaPaths(root, root / CONTENT_DIR)
        self._unreadable: dict[str, str] = {}  # media file -> why it cannot be read
        self.friends, self.unlock, self.now = friends, unlock, now
        self.snapshot = self.next_snapshot = snapshot
        self.files = _Files(snapshot.files)
        self.outputs = Outputs(out_dir, snapshot.outputs,
                               before_first_write=lambda: manifest.set("in_progress", "1"))
        self.template_stamp, self.env = env
        self.rendered: set[str] = set()  # sources parsed and rendered by this build
        self.collided: set[str] = set()  # public posts left out: another has their permalink
        self.links = LinkWarnings(manifest.get(LINKS_KEY))  # links to no public page
        self.readable: list[PostRecord] = []  # every post some friend may read
        self.private: PrivateFeeds | None = None  # friends' feeds, when there are any
        self.views: Views | None = None
        self.fingerprints_memo: str | None = None  # template fingerprints to record
        self.markup = markup_options(config.raw_html)
        self.parse_options = parse_options(config)
        self.index_memo: dict[str, Any] = {}  # the index pages' fingerprint and paths
        self.mentions: dict[str, tuple[MentionView, ...]] = {}  # approved, by post path
        self.mention_memo: str | None = None  # their digests, to record when changed
        self.index_fp = ""
        self._lap_start = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.report.timings[phase] = now - self._lap_start
        self._lap_start = now

    def run(self) -> None:
        self.report.warnings += self.config.warnings  # o2m.toml's unknown keys
        check_default_audience(self.config, self.friends.audience_names)
        self.lap("load manifest")
        fingerprints = self.load_templates()
        self.lap("templates")
        current, source_changes = self.collect_sources()
        self.lap("sources")
        posts = self.select(current)
        for source in self.collided:  # a post that lost its permalink to another is not
            source_changes.pop(source, None)  # recorded: it never holds it (`resolve_collisions`)
        if self.ahead:  # the pages' sizes, when the child took them too
            self.outputs.sizes_ahead = self.ahead.page_sizes(self.manifest.path, self.out_dir)
        site = self.plan_site(posts, fingerprints)
        self.lap("plan")
        self.clean_up_a_killed_build()
        feeds = self.write_assets(site)  # A
        self.lap("media")
        self.write_pages(site)  # B, C, D
        self.lap("pages")
        self.write_feeds(posts, feeds)  # E
        self.lap("feeds")
        removed = self.remove_unused()  # F
        self.report.warnings += self.links.standing(self.outputs.new)
        self.commit(source_changes, removed, feeds)
        self.lap("clean up and commit")
        if self.outputs.writer:
            self.report.written = self.outputs.writer.written
            self.report.deleted = self.outputs.writer.deleted

    # -- reading and planning
    def load_templates(self) -> dict[str, str]:
        """render.template_fingerprints, remembered by the templates' sizes and times
        (parsing every template costs more than a whole no-change build should).

        Raises:
            SiteError: a template cannot be parsed (naming its file and line).
        """
        stamp = self.template_stamp
        cached = json.loads(self.manifest.get("template_fingerprints") or "{}")
        if cached.get("stamp") == stamp:
            return cached["fingerprints"]
        try:
            fingerprints = template_fingerprints(self.env)
        except jinja2.TemplateError as e:
            p = template_problem(e, self.root)
            raise SiteError(str(p), hint=p.hint) from None
        self.fingerprints_memo = json.dumps({"stamp": stamp, "fingerprints": fingerprints})
        return fingerprints

    def collect_sources(self) -> tuple[dict[str, SourceState], dict[str, SourceState | None]]:
        """Every post as it is now, parsing and rendering those whose file changed (their
        bodies go to the build cache at once); and the changes to record."""
        previous = self.snapshot.sources
        stats, warnings = self.ahead.result() if self.ahead else scan_sources(self.root)
        self.report.warnings += warnings
        current: dict[str, SourceState] = {}
        changes: dict[str, SourceState | None] = {s: None for s in previous if s not in stats}
        to_render: list[str] = []
        # another setting a post is parsed or rendered with ([site] raw_html, timezone,
        # default_audience) parses and renders every post again
        same_options = ((self.manifest.get(MARKUP_KEY) or "") == self.markup
                        and self.manifest.get(PARSE_KEY) == self.parse_options)
        for source, st in stats.items():
            old = previous.get(source) if same_options else None
            if old and old.mtime_ns == st.st_mtime_ns and old.size == st.st_size:
                current[source] = old
                continue
            if old and old.sha == sha_of_file(self.root / source):
                current[source] = changes[source] = replace(old, mtime_ns=st.st_mtime_ns,
                                                            size=st.st_size)
                continue
            to_render.append(source)

        bodies: list[tuple[str, str, str]] = []
        future = (self.now + FUTURE_WARNING).astimezone(dt.timezone.utc).isoformat()
        for source, sha, record, html, toc, problem, warnings in render_changed(
                to_render, self.root, self.config, self.jobs, self.progress):
            self.report.warnings += warnings
            if record is not None and record.utc > future:
                self.report.warnings.append(f"{source}:{record.lines.get('date', 1)}: dated "
                                            f"{record.date[:10]}, in the future; it is "
                                            "published now, with that date")
            if problem:
                self.report.problems.append(problem)
                if source in previous and same_options:  # keep the last good version
                    current[source] = previous[source]
                elif source in previous:  # parsed with other settings: not trusted, and
                    changes[source] = None  # forgotten, so the next build parses it again
                continue
            st = stats[source]  # the stat from before the read: a later edit is seen next time
            current[source] = changes[source] = SourceState(st.st_mtime_ns, st.st_size, sha, record)
            bodies.append((record.render_key, html, toc))
            if len(bodies) >= 256:
                self.manifest.put_bodies(bodies)
                bodies = []
        if bodies:
            self.manifest.put_bodies(bodies)
        self.rendered = set(to_render)
        return current, changes

    def select(self, current: dict[str, SourceState]) -> list[PostRecord]:
        """The public posts; `self.readable` gets every post some friend may read."""
        chosen, readable, rendered = [], self.readable, self.rendered
        known = self.friends.audience_names
        public_of: dict[tuple[str, ...], bool] = {}  # each audience checked once, not per post
        drafts = private = changed = 0
        for st in current.values():  # (a tight loop: 10,000 posts on the benchmark site)
            r = st.record
            if r.draft and not self.drafts:
                drafts += 1
                continue
            public = public_of.get(r.audience)
            if public is None:
                problem = check_audience(r, known)
                if problem is None:
                    public = public_of[r.audience] = r.is_public
                else:  # reported; the post goes to the names that are known, if any
                    self.report.problems.append(problem)
                    r = replace(r, audience=tuple(a for a in r.audience if a in known))
                    if not r.audience:
                        continue
                    public = r.is_public
            readable.append(r)
            if public:
                chosen.append(r)
            else:
                private += 1
                changed += r.source in rendered  # (the writer's view: private ones too)
        posts, collisions = resolve_collisions(chosen, self.held_its_permalink)
        self.report.problems += collisions
        self.collided = {p.path for p in collisions}  # (not recorded: see `run`)
        self.report.posts = len(posts)
        self.report.drafts += drafts
        self.report.private += private
        # changed: every post rendered again
        self.report.changed = changed + (sum(1 for p in posts if p.source in rendered)
                                         if rendered else 0)
        return posts

    def unpublished(self, source: str) -> PostRecord | None:
        """The record of a post that is built but not public (asked of the few a public
        post links to, for the warning)."""
        return next((r for r in self.readable if r.source == source and not r.is_public),
                    None)

    def held_its_permalink(self, record: PostRecord) -> bool:
        """Whether the post was public at this permalink in the last build (asked only
        of posts that claim one permalink together)."""
        st = self.snapshot.sources.get(record.source)
        return st is not None and st.record.path == record.path and st.record.is_public \
            and not st.record.draft

    def plan_site(self, posts: list[PostRecord], fingerprints: dict[str, str]) -> _SitePlan:
        """The theme's files, the media the posts refer to, and the pages to consider."""
        static = {name: (path, self.files.state(f"static/{name}", path))
                  for name, path in _static_files(self.root).items()}
        assets = {name: st.sha[:10] for name, (_, st) in static.items()}
        media = self.media_map(posts)
        # friends-only posts: the same warnings (their files are sealed, not published)
        self.media_map([r for r in self.readable if not r.is_public])
        card = self.own_card()  # the author's picture and bio, as the card gives them
        profile = {"avatar": card.avatar.path if card is not None and card.avatar else "",
                   "bio": (card.bio if card is not None else None) or ""}
        site_fp = digest_of(self.config.fingerprint, sorted(assets.items()),
                            sorted(profile.items()))
        link_targets = {p.source: p.path for p in posts}
        # approved Webmentions (PROTOCOL.md §1.6) shown on their posts' pages
        self.mentions = _approved_mentions(self.root) if self.config.webmention else {}
        pages = self.plan_pages(posts, fingerprints, site_fp, link_targets,
                                {src: out for src, (out, _) in media.items()})
        self.views = Views(self.manifest.body, self.config, media, link_targets)
        return _SitePlan(static, media, pages, PageRenderer(self.env, self.config, assets,
                                                               profile))

    def plan_pages(self, posts: list[PostRecord], fingerprints: dict[str, str], site_fp: str,
                   link_targets: dict[str, str], media: dict[str, str]) -> list[Page]:
        """The pages to consider. While the index fingerprint is the one recorded last
        time and its pages are intact, the index pages are kept without planning them,
        and only the pages of changed posts are planned: a one-post edit costs one page."""
        options = dict(fingerprints=fingerprints, site_fingerprint=site_fp)
        index_fp = index_fingerprint(posts, per_page=self.config.posts_per_page, media=media,
                                     **options)
        options["mentions"] = self.mentions
        mentioned = self.mentions_changed()
        memo = json.loads(self.manifest.get("index_pages") or "{}")
        self.index_memo = {"fp": index_fp, "paths": memo.get("paths", [])}
        self.index_fp = index_fp
        out = self.outputs
        if memo.get("fp") == index_fp and not out.damaged(memo["paths"]):
            for path in memo["paths"]:
                out.keep(path)
            page_paths = [p.path + "index.html" for p in posts]  # (one pass: 10,000 posts)
            damaged, rendered = out.damaged(page_paths), self.rendered
            changed = [i for i, (p, path) in enumerate(zip(posts, page_paths))
                       if p.source in rendered or path in damaged or p.path in mentioned]
            out.keep_all_recorded(page_paths)
            return post_pages(posts, changed, link_targets=link_targets, media=media, **options)
        pages = plan_pages(posts, per_page=self.config.posts_per_page,
                           link_targets=link_targets, media=media, **options)
        self.index_memo["paths"] = [p.path for p in pages[len(posts):]]  # the index pages
        return pages

    def mentions_changed(self) -> set[str]:
        """The posts whose approved mentions changed since the last build (their pages
        are planned again, as a changed post's are); the memo of each post's mentions
        is recorded at commit."""
        if self.mentions:
            from o2m_pub.site.mention_plan import views_digest
        now = {path: views_digest(views) for path, views in self.mentions.items()}
        before = json.loads(self.manifest.get("mention_digests") or "{}")
        if now != before:
            self.mention_memo = json.dumps(now, sort_keys=True)
        return {p for p in now.keys() | before.keys() if now.get(p) != before.get(p)}

    def media_map(self, posts: list[PostRecord]) -> dict[str, tuple[str, FileState]]:
        """source path of each referenced media file -> (output path, state)."""
        out: dict[str, tuple[str, FileState]] = {}
        for p in posts:
            for ref in p.media:
                if ref in out:
                    continue
                plain = self.media_paths.plain_stat(ref)
                problem = self.media_paths.problem(ref) if plain is None else None
                if not problem:
                    try:
                        st = self.files.state(ref, os.path.join(self.root, ref), plain)
                    except OSError as e:  # a file it may not read: left out, as a missing one
                        problem = self._unreadable.setdefault(ref, unreadable(ref, e))
                if problem:
                    self.report.warnings.append(f"{p.source}: {problem}")
                    continue
                out[ref] = (f"media/{st.sha[:16]}/{_media_name(ref)}", st)
        return out

    def media_state(self, ref: str) -> FileState | None:
        """The state of a file a post refers to; None when it cannot be published (said
        by `media_map`, which has looked at every post's files first)."""
        if ref in self._unreadable or self.media_paths.problem(ref):
            return None
        try:
            return self.files.state(ref, self.root / ref)
        except OSError as e:
            self._unreadable[ref] = unreadable(ref, e)
            return None

    # -- writing, phase by phase
    def clean_up_a_killed_build(self) -> None:
        """Remove the temporary files a build killed midway left in build/."""
        if self.outputs.old and self.manifest.get("in_progress") == "1":
            AtomicWriter(self.out_dir).remove_stale_temporaries()

    def write_assets(self, site: _SitePlan) -> Feeds:
        """Phase A: the theme's static files, media, the card, and friends' new objects
        and archive pages. They are content-addressed or versioned: no page or head
        refers to them yet."""
        out = self.outputs
        for name, (path, st) in site.static.items():
            out.emit(f"static/{name}", st.sha, path.read_bytes)
        for src, (path, st) in site.media.items():
            out.emit(path, st.sha, lambda s=src: (self.root / s).read_bytes())
        card = self.root / CARD_FILE
        if card.is_file():  # the owner's public card, where friends look for it (§2.4)
            out.emit(WELL_KNOWN_CARD, self.files.state(CARD_FILE, card).sha, card.read_bytes)
            self.write_avatar()
        rotations = self.root / ROTATIONS_FILE
        if rotations.is_file():  # the key rotations friends follow (§2.5)
            out.emit(WELL_KNOWN_ROTATIONS, self.files.state(ROTATIONS_FILE, rotations).sha,
                     rotations.read_bytes)
        feeds = self.plan_private_feeds()
        out.barrier()
        return feeds

    def write_avatar(self) -> None:
        """The card's picture (§2.4), at the path the card gives, from keys/avatar."""
        card = self.own_card()
        if card is None or card.avatar is None:
            return
        source = self.root / AVATAR_FILE
        state = self.files.state(AVATAR_FILE, source) if source.is_file() else None
        if state is None or state.sha != card.avatar.sha256:
            self.report.warnings.append(f"{AVATAR_FILE}: not the picture your card names; "
                                        "run `o2m card --renew --avatar FILE`")
            return
        self.outputs.emit(card.avatar.path, state.sha, source.read_bytes)

    def own_card(self):  # noqa: ANN201 - protocol.cards.Card | None
        """The owner's card, parsed once per build (None: none, or unreadable)."""
        if not hasattr(self, "_card") and not (self.root / "keys").is_dir():
            self._card = None  # no keys, no card (and no crypto to import)
        if not hasattr(self, "_card"):
            from o2m_pub.friends.identity import own_card
            from o2m_pub.protocol.cards import CardError
            try:
                self._card = own_card(self.root)
            except CardError:
                self._card = None
        return self._card

    def plan_private_feeds(self) -> Feeds:
        """Friends' feeds (PROTOCOL.md §3.4), planned; new objects and archive pages are
        written as they are sealed. After a key rotation (§2.5) every friend's feed is
        made anew for the new keys, and the old heads go in phase F."""
        old_feeds = {} if self.drafts else self.snapshot.feeds()
        if self.drafts or (not self.friends.readers and not old_feeds):
            return NO_FEEDS  # nothing private: not even the crypto is imported
        from o2m_pub.site.private_steps import (
            PrivateFeeds,  # the crypto: with friends only
        )
        self.private = PrivateFeeds(
            root=self.root, friends=self.friends, readable=self.readable,
            old_feeds=old_feeds,  # parsed once per Builder session (ManifestSnapshot)
            old_sealed=self.snapshot.sealed(), old_index_json=self.manifest.get("feed_index"),
            seq_floor=int(self.manifest.get("seq_floor") or 0), outputs=self.outputs,
            media_state=self.media_state, unlock=self.unlock, now=self.now,
            fresh=self.manifest.get("feed_author") not in (None, self.feed_author),
            site_url=self.config.url)
        plan = self.private.plan()
        self.report.warnings += self.private.warnings
        if plan is None:  # the key stayed locked: the public site still builds
            self.report.feed_error = self.private.error
            return NO_FEEDS
        self.report.heads = plan.heads_written
        self.report.notices = self.private.notices
        return plan

    def write_pages(self, site: _SitePlan) -> None:
        """Phase B: pages at new paths (nothing links to them yet); phase C: rewritten
        post pages; phase D: rewritten index pages. So a page a reader can reach never
        links to one that is not there yet (pages and tags link both ways)."""
        out = self.outputs
        todo = [p for p in site.pages if out.needs(p.path, p.digest)]
        for page in todo:  # a public post's links to posts with no public page
            if page.template == "post.html":
                self.links.written(page.path, self.views.broken_links(  # type: ignore[union-attr]
                    page.context["post"], self.root, self.unpublished))
        fresh = [p for p in todo if p.path not in out.old]
        rewritten = [p for p in todo if p.path in out.old]
        if self.progress:
            self.progress.start("writing pages", len(todo))
        for batch in (fresh, [p for p in rewritten if p.template == "post.html"],
                      [p for p in rewritten if p.template != "post.html"]):
            for result in render_pages(batch, views=self.views, renderer=site.renderer,
                                       outputs=out, env=self.env, root=self.root,
                                       db_path=self.manifest.path, jobs=self.jobs,
                                       progress=self.progress):
                self.record_page(result)
            out.barrier()
        # the pages left unchanged; one whose template failed has its last good version
        # if there is one, and is missing (and planned again next time) if not
        for page in site.pages:
            out.keep_if_recorded(page.path)

    def record_page(self, result: PageResult) -> None:
        """Record a rendered page; a template error fails that page alone and keeps its
        last good version (reported once per template line)."""
        path, state, problem, _ = result
        if state is not None:
            self.outputs.new[path] = state
            return
        if problem not in self.report.problems:
            self.report.problems.append(problem)
        if path in self.outputs.old:
            self.outputs.new[path] = self.outputs.old[path]._replace(digest="failed")

    def write_feeds(self, posts: list[PostRecord], feeds: Feeds) -> None:
        """Phase E: feed.json, atom.xml and the sitemap, then friends' heads, last: they
        announce what the pages above hold (§1.5)."""
        assert self.views is not None
        PublicFeeds(self.root, self.out_dir, self.config, self.outputs, self.views,
                    self.manifest, self.own_card(), self.drafts, self.now,
                    self.report.warnings).write(posts, self.index_fp)
        if feeds.max_seq:
            # recorded before any head is written: a build killed after writing a head
            # and before its commit must not hand out that number again (§3.4)
            self.manifest.set("seq_floor", str(max(feeds.max_seq,
                                                   int(self.manifest.get("seq_floor") or 0))))
        for path, data in feeds.files:  # friends' heads, last (§1.5)
            self.outputs.put(path, sha256_hex(data), data)
        self.outputs.barrier()

    @property
    def feed_author(self) -> str:
        """The key friends' feeds are signed with now (b64u), as the manifest records it."""
        from o2m_pub.protocol.canonical import b64u_encode
        return b64u_encode(self.friends.own_sign_pk)

    def remove_unused(self) -> list[str]:
        """Phase F: delete what this build did not produce (nothing links to it now).
        With no record of build/ (a new or deleted manifest), every file there it did
        not make (`Outputs.unrecorded`) leaves build/ too: a page an older build made
        public may be a friends-only post's now. Those are moved into the state folder,
        not deleted: a person may have put one there (a host's verification file)."""
        removed = self.outputs.removed()
        if not self.outputs.old and self.out_dir.is_dir():
            strays = self.outputs.unrecorded()
            if strays:
                kept = f"{STATE_DIR}/unrecorded-{self.now:%Y%m%dT%H%M%S}"
                self.outputs.set_aside(strays, self.root / kept)
                self.report.warnings.append(
                    f"{self.out_dir.name}/ held {len(strays):,} file"
                    f"{'s' if len(strays) != 1 else ''} that no build recorded "
                    f"({STATE_DIR}/{self.manifest.path.name} was new or deleted): removed, "
                    f"as this build does not make them, and kept in {kept}/: put back "
                    "any that is yours, then delete that folder")
        for path in removed:
            self.outputs.ensure_writer().delete(path)
        self.outputs.barrier()
        return removed

    def commit(self, source_changes: dict[str, SourceState | None], removed: list[str],
               feeds: Feeds) -> None:
        """Record this build in the manifest, in one transaction, after every output is
        in place; the session's next snapshot is this one with the same changes."""
        old, new = self.outputs.old, self.outputs.new
        output_changes: dict[str, OutputState | None] = {p: None for p in removed}
        # a kept output is the very state recorded (`Outputs.keep`): `is` spares 14,000 ==
        output_changes.update({p: o for p, o in new.items()
                               if (was := old.get(p)) is not o and was != o})
        file_changes = {k: v for k, v in self.files.now.items() if self.files.known.get(k) != v}
        file_changes.update({k: None for k in self.files.known if k not in self.files.now})
        previous = self.snapshot.sources
        dead_bodies = {previous[s].record.render_key for s in source_changes
                       if s in previous} - {
            st.record.render_key for st in source_changes.values() if st is not None}
        kv = {"in_progress": "0", "index_pages": json.dumps(self.index_memo)}
        if self.private is not None and feeds is not NO_FEEDS and self.friends.own_sign_pk \
                and self.manifest.get("feed_author") != self.feed_author:
            kv["feed_author"] = self.feed_author  # the key the feeds are now signed with
        feed_changes, sealed_changes, feed_index = (
            self.private.state_changes(feeds) if self.private is not None  # type: ignore[arg-type]
            and feeds is not NO_FEEDS else ({}, {}, None))
        if feed_index is not None:
            kv["feed_index"] = feed_index
        if self.fingerprints_memo:
            kv["template_fingerprints"] = self.fingerprints_memo
        if (self.manifest.get(MARKUP_KEY) or "") != self.markup:
            kv[MARKUP_KEY] = self.markup
        if self.manifest.get(PARSE_KEY) != self.parse_options:
            kv[PARSE_KEY] = self.parse_options
        if self.mention_memo is not None:
            kv["mention_digests"] = self.mention_memo
        if self.links.changed() is not None:
            kv[LINKS_KEY] = self.links.changed()  # type: ignore[assignment]
        if self.manifest.get("index_pages") == kv["index_pages"]:
            del kv["index_pages"]
        if (source_changes or output_changes or file_changes or self.outputs.writer
                or len(kv) > 1 or feed_changes or sealed_changes
                or self.manifest.get("in_progress") == "1"):  # a killed build's mark goes
            self.manifest.commit(sources=source_changes, outputs=output_changes,
                                 files=file_changes, kv=kv, dead_bodies=dead_bodies,
                                 feeds=feed_changes, sealed=sealed_changes)
            self.next_snapshot = self.snapshot.after(
                sources=source_changes, outputs=output_changes, files=file_changes,
                feeds={k: v and feeds.states[k] for k, v in feed_changes.items()},
                sealed={k: v and feeds.objects[k] for k, v in sealed_changes.items()})
        self.report.changed_paths = sorted(
            p for p, o in output_changes.items()
            if o is None or p not in old or old[p].sha != o.sha)
