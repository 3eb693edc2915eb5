"""`o2m build`: the imperative shell around parsing, planning and rendering.

Order of work (DESIGN.md property 7, PROTOCOL.md §1.5):
scan sources -> parse and render what changed (in parallel) -> plan the pages and the
friends' feeds -> write media, assets and encrypted objects; then archive pages and
pages at new paths; then rewritten post pages; then rewritten index pages; then feeds,
sitemap and friends' heads, each phase made durable before the next -> delete what
nothing refers to any more -> commit the manifest. A build killed at any point leaves
a readable site and whole feeds; the next one repairs the rest.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import posixpath
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Protocol

import jinja2

from o2m_pub import config as config_mod
from o2m_pub._files import site_lock
from o2m_pub.config import CARD_FILE, STATE_DIR, SiteConfig
from o2m_pub.errors import O2MError, PostError, Problem, SiteError
from o2m_pub.site.content import parse_post
from o2m_pub.site.manifest import FileState, Manifest, OutputState, SourceState
from o2m_pub.site.model import PostRecord, PostView
from o2m_pub.site.plan import (
    Page,
    index_fingerprint,
    index_pages,
    post_pages,
    resolve_collisions,
    sig_of,
)
from o2m_pub.site.plan import sha256_hex as _sha
from o2m_pub.site.private_steps import PrivateFeedSteps, _load_friends
from o2m_pub.site.render import (
    PAGE_TEMPLATES,
    PageRenderer,
    linker,
    make_environment,
    template_fingerprints,
    theme_dirs,
)
from o2m_pub.site.writer import AtomicWriter

if TYPE_CHECKING:
    from o2m_pub.protocol.keyfile import Identity

CONTENT_DIR = "content"
WELL_KNOWN_CARD = ".well-known/o2m-card.json"
TEMPLATES_DIR = "site_templates"
BUILD_DIR = "build"
FEED_VERSION = "feeds-1"
PARALLEL_THRESHOLD = 48  # fewer changed posts than this render in-process
# Suffixes of editors' backups and temporary files: vim (file~, .swp/.swx/.swo when
# the swap file is not a dotfile), emacs (file~), JetBrains safe write
# (file___jb_tmp___, file___jb_old___), Kate (.kate-swp), downloads (.part,
# .crdownload), and generic .tmp / .~tmp.
_LITTER_SUFFIXES = ("~", ".swp", ".swx", ".swo", ".tmp", "~tmp", ".part", ".crdownload",
                    "___jb_tmp___", "___jb_old___", ".kate-swp")
# Prefixes: dotfiles (vim's .file.swp, emacs's .#file lock, .DS_Store, gedit's
# .goutputstream-XXXXXX, our own .~o2m- temporaries), emacs's #file# autosave,
# Office's ~$file lock.
_LITTER_PREFIXES = (".", "#", "~$")


def is_editor_litter(name: str) -> bool:
    """Whether a file name is an editor's temporary, swap, backup or lock file, or a
    dotfile: never a source of the site (scan_sources skips them; `o2m watch` ignores them)."""
    if not name or name.startswith(_LITTER_PREFIXES) or name.endswith(_LITTER_SUFFIXES):
        return True
    # vim checks that it may write in a folder by creating and deleting "4913" (or
    # 5036, 5159, ...: 4913 + 123 k, the first name free)
    return name.isdigit() and int(name) >= 4913 and (int(name) - 4913) % 123 == 0


class Progress(Protocol):
    def start(self, label: str, total: int) -> None: ...
    def advance(self, n: int = 1) -> None: ...


@dataclass
class BuildReport:
    """What a build did, for the one-line summary and for tests."""

    out_dir: Path
    posts: int = 0  # public posts on the site
    changed: int = 0  # posts parsed and rendered again
    private: int = 0  # posts whose audience keeps them off the public site
    drafts: int = 0
    written: int = 0
    deleted: int = 0
    seconds: float = 0.0
    heads: int = 0  # friends' feed heads signed
    changed_paths: list[str] = field(default_factory=list)  # outputs written anew or removed
    feed_error: O2MError | None = None  # friends' feeds could not be signed this time
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # phase -> seconds


def _media_name(ref: str) -> str:
    """The file name a media file is published under: its own when that is a plain
    name, otherwise a safe one with the same extension (the hash names it anyway)."""
    name = posixpath.basename(ref)
    if re.fullmatch(r"[\w][\w.-]{0,120}", name):
        return name
    ext = posixpath.splitext(name)[1]
    return "file" + (ext if re.fullmatch(r"\.[A-Za-z0-9]{1,10}", ext) else "")


def _sha_of_file(path: Path) -> str | None:
    try:
        return _sha(path.read_bytes())
    except OSError:
        return None  # the renderer reports it, for that post alone


def scan_sources(root: Path) -> tuple[dict[str, os.stat_result], list[str]]:
    """Every post file under content/ with its stat; symlinks that leave content/ are
    refused (THREATS.md 38), as are dotfiles and editors' temporary files."""
    content = root / CONTENT_DIR
    real_content = os.path.realpath(content)
    found: dict[str, os.stat_result] = {}
    warnings: list[str] = []
    stack = [(str(content), CONTENT_DIR)]
    seen_dirs = {real_content}  # a symlinked folder is followed once, never in a loop
    while stack:
        folder, rel = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for e in entries:
            name = e.name
            if is_editor_litter(name):
                continue
            rel_path = f"{rel}/{name}"
            if e.is_symlink():
                real = os.path.realpath(e.path)
                if not (real + os.sep).startswith(real_content + os.sep):
                    warnings.append(f"{rel_path}: symlink to a file outside content/, skipped")
                    continue
            if e.is_dir():
                real = os.path.realpath(e.path)
                if real in seen_dirs:
                    warnings.append(f"{rel_path}: a folder already read (symlink loop?), skipped")
                    continue
                seen_dirs.add(real)
                stack.append((e.path, rel_path))
            elif name.endswith(".md") and e.is_file():
                found[rel_path] = e.stat()
    return found, warnings


# --- rendering posts (runs in worker processes for big builds) ---------------------

_worker: dict[str, object] = {}


def _init_worker(root: str, tz_name: str, default_audience: tuple[str, ...]) -> None:
    import zoneinfo

    from o2m_pub.site.markup import (
        MarkdownRenderer,  # imported only when something must render
    )
    if "md" not in _worker:  # one pipeline per process: a Builder session reuses it
        _worker["md"] = MarkdownRenderer()
    _worker.update(root=root, tz=zoneinfo.ZoneInfo(tz_name), audience=default_audience)


RenderResult = tuple[str, str, "PostRecord | None", str, str, "Problem | None"]


def render_post(source: str) -> RenderResult:
    """Read, parse and render one post: (source, sha, record, html, toc, problem)."""
    try:
        data = Path(_worker["root"], source).read_bytes()  # type: ignore[arg-type]
    except OSError as e:  # unreadable: that post fails, the others build
        return source, "", None, "", "", Problem(source, 1, f"cannot read it: {e.strerror or e}",
                                                 hint="check the file's permissions")
    sha = _sha(data)
    try:
        post = parse_post(data, source, tz=_worker["tz"],  # type: ignore[arg-type]
                          default_audience=_worker["audience"])  # type: ignore[arg-type]
    except PostError as e:
        return source, sha, None, "", "", e.problem
    from o2m_pub.site.markup import MARKUP_VERSION, smarten
    key = _sha(f"{MARKUP_VERSION}\0{source}\0{post.body}".encode())[:32]
    rendered = _worker["md"].render(post.body, source)  # type: ignore[attr-defined]
    post = replace(post, title=post.title and smarten(post.title),
                   summary=post.summary and smarten(post.summary))
    record = PostRecord.from_source(post, summary=rendered.summary,
                                    word_count=rendered.word_count, render_key=key,
                                    media=rendered.media, links=rendered.links)
    return source, sha, record, rendered.html, rendered.toc, None


def _render_chunk(sources: list[str]) -> list[RenderResult]:
    return [render_post(s) for s in sources]


def _chunked(items: list, jobs: int) -> list[list]:
    size = max(8, min(64, len(items) // (jobs * 8) or 1))
    return [items[i:i + size] for i in range(0, len(items), size)]


def _pool(jobs: int, **kwargs):  # noqa: ANN003, ANN202 - a ProcessPoolExecutor
    """Worker processes by fork: they start at once and share what is already loaded.
    (Imported here: a small rebuild never needs them.)"""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context
    return ProcessPoolExecutor(jobs, mp_context=get_context("fork"), **kwargs)


def render_changed(sources: list[str], root: Path, config: SiteConfig, jobs: int,
                   progress: Progress | None) -> Iterator[RenderResult]:
    """Render changed posts, across `jobs` processes when there are many."""
    if not sources:
        return
    init = (str(root), config.timezone, config.default_audience)
    if progress:
        progress.start("rendering posts", len(sources))
    if jobs <= 1 or len(sources) < PARALLEL_THRESHOLD:
        _init_worker(*init)
        for s in sources:
            yield render_post(s)
            if progress:
                progress.advance()
        return
    with _pool(jobs, initializer=_init_worker, initargs=init) as pool:
        for results in pool.map(_render_chunk, _chunked(sources, jobs)):
            yield from results
            if progress:
                progress.advance(len(results))


# --- the build -----------------------------------------------------------------------

def check_audience(record: PostRecord, known: frozenset[str] | set[str]) -> Problem | None:
    """Every audience name must be public, friends, a group of the config or a friend."""
    for name in record.audience:
        if name not in known:
            return Problem(record.source, record.lines.get("audience", 1),
                           f"unknown audience {name!r}",
                           hint="use public, friends, a group from o2m.toml or a friend's name")
    return None


class _Files:
    """Stat-then-hash of media and static files, remembering hashes by stat."""

    def __init__(self, known: dict[str, FileState]) -> None:
        self.known, self.now = known, {}  # type: ignore[var-annotated]

    def state(self, key: str, path: Path) -> FileState:
        st = path.stat()
        old = self.known.get(key)
        if old and old.mtime_ns == st.st_mtime_ns and old.size == st.st_size:
            self.now[key] = old
        else:
            self.now[key] = FileState(st.st_mtime_ns, st.st_size, _sha(path.read_bytes()))
        return self.now[key]


def _static_files(root: Path) -> dict[str, Path]:
    """name -> file of the theme's static/, the site's overriding the built-in's."""
    from o2m_pub.site.render import BUILTIN_THEME
    found: dict[str, Path] = {}
    for base in (Path(str(BUILTIN_THEME)) / "static", root / TEMPLATES_DIR / "static"):
        if base.is_dir():
            for p in sorted(base.rglob("*")):
                if p.is_file() and not p.name.startswith("."):
                    found[p.relative_to(base).as_posix()] = p
    return found


def build_site(root: Path, *, drafts: bool = False, jobs: int | None = None,
               progress: Progress | None = None,
               unlock: Callable[[], "Identity"] | None = None,
               now: dt.datetime | None = None) -> BuildReport:
    """Build the site at `root` into build/ (or, with drafts, a private preview folder):
    one build of a `Builder` session (see there for the arguments).

    Raises:
        ConfigError, SiteError: the site as a whole cannot be built.
        PassphraseError: a feed had to be signed and the key could not be unlocked.
    Post problems do not raise: they are in the report, and the rest is built.
    """
    with Builder(root, drafts=drafts, jobs=jobs, progress=progress, unlock=unlock) as builder:
        return builder.build(now=now)


# --- the build session: what stays warm between builds --------------------------------

def _apply(old: dict, changes: dict) -> dict:
    """`old` with `changes` applied as Manifest.commit applies them (None deletes)."""
    new = dict(old)
    for key, value in changes.items():
        if value is None:
            new.pop(key, None)
        else:
            new[key] = value
    return new


class _Snapshot:
    """The manifest's tables as the last build committed them, parsed. A one-off build
    reads them once; a `Builder` keeps them and applies each build's own commit, so a
    rebuild does not parse 10,000 records again. Never mutated: each build makes a new one."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.sources = manifest.sources()
        self.outputs = manifest.outputs()
        self.files = manifest.files()
        self._feeds: dict | None = None
        self._sealed: dict | None = None

    def feeds(self) -> dict:
        """Reader -> private.FeedState (the crypto is imported only when there are some)."""
        if self._feeds is None:
            raw = self.manifest.feed_states()
            if raw:
                from o2m_pub.friends.private_feeds import FeedState
                self._feeds = {k: FeedState.from_json(v) for k, v in raw.items()}
            else:
                self._feeds = {}
        return self._feeds

    def sealed(self) -> dict[str, dict]:
        if self._sealed is None:
            self._sealed = {k: json.loads(v) for k, v in self.manifest.sealed().items()}
        return self._sealed

    def after(self, *, sources: dict, outputs: dict, files: dict, feeds: dict,
              sealed: dict) -> "_Snapshot":
        """The snapshot once these changes (the arguments of Manifest.commit, with the
        feeds' states and sealed objects as objects, not JSON) are in."""
        new = object.__new__(_Snapshot)
        new.manifest = self.manifest
        new.sources = _apply(self.sources, sources)
        new.outputs = _apply(self.outputs, outputs)
        new.files = _apply(self.files, files)
        new._feeds = new._sealed = None  # loaded from the database when next needed
        if self._feeds is not None:
            new._feeds = _apply(self._feeds, feeds)
        if self._sealed is not None:
            new._sealed = _apply(self._sealed, sealed)
        return new


def _template_stamp(root: Path) -> str:
    """Names, sizes and times of every template (the theme's static/ aside): when it is
    unchanged, so are the templates' fingerprints and the compiled templates."""
    return sig_of(*sorted(
        (str(p), st.st_mtime_ns, st.st_size)
        for base in theme_dirs(root / TEMPLATES_DIR) if os.path.isdir(base)
        for p in Path(base).rglob("*")
        if "static" not in p.relative_to(base).parts[:1] and (st := p.stat())
        and p.is_file()))


def _friends_stamp(root: Path, config: SiteConfig) -> tuple:
    """What `_load_friends` reads: the friends' files, groups, the public key, o2m.toml's
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
            stamp(keys / "identity.pub.json"),
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
    """

    def __init__(self, root: Path, *, drafts: bool = False, jobs: int | None = None,
                 progress: Progress | None = None,
                 unlock: Callable[[], "Identity"] | None = None,
                 wait_for_lock: bool = False) -> None:
        self.root, self.drafts, self.progress, self.wait_for_lock = root, drafts, progress, \
            wait_for_lock
        self.jobs = jobs or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                             else os.cpu_count() or 1)
        self.state_dir = root / STATE_DIR
        self.out_dir = self.state_dir / "preview" if drafts else root / BUILD_DIR
        self.db_path = self.state_dir / ("preview.db" if drafts else "build.db")
        self._unlock = unlock
        self._identity: Identity | None = None
        self._manifest: Manifest | None = None
        self._db_file: tuple[int, int] | None = None
        self._data_version: int | None = None
        self._snapshot: _Snapshot | None = None
        self._env: tuple[str, jinja2.Environment] | None = None
        self._friends: tuple[tuple, object] | None = None

    def __enter__(self) -> "Builder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the manifest (the next build opens it again)."""
        if self._manifest is not None:
            self._manifest.close()
        self._manifest = self._snapshot = None

    def unlock(self, sign_pk: bytes | None = None) -> "Identity":
        """The identity, unlocked once per session (only when a feed must be signed),
        and again if the site's key is no longer `sign_pk`'s (`o2m key import`)."""
        if self._identity is None or (sign_pk is not None and self._identity.sign_pk != sign_pk):
            if self._unlock is None:
                from o2m_pub.protocol.keyfile import PassphraseError
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
        config = config_mod.load(self.root)
        report = BuildReport(out_dir=self.out_dir)
        with site_lock(self.state_dir, wait=self.wait_for_lock):
            try:
                manifest, snapshot = self._manifest_state()
                build = _Build(self.root, config, manifest, self.out_dir, report, self.drafts,
                               self.jobs, self.progress, snapshot=snapshot,
                               env=self._environment(manifest),
                               friends=self._friends_of(config))
                build.unlock = self.unlock
                build.now = now or dt.datetime.now(dt.timezone.utc)
                build.run()
            except BaseException:
                self.close()  # whatever it left in memory is not trusted again
                raise
            self._snapshot = build.next_snapshot
        report.seconds = time.perf_counter() - started
        return report

    def _manifest_state(self) -> tuple[Manifest, _Snapshot]:
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
            self._snapshot = _Snapshot(self._manifest)
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

    def _friends_of(self, config: SiteConfig):  # noqa: ANN202 - build_feeds._Friends
        stamp = _friends_stamp(self.root, config)
        if self._friends is None or self._friends[0] != stamp:
            self._friends = (stamp, _load_friends(self.root, config))
        return self._friends[1]


class _Build(PrivateFeedSteps):
    """One build's working state; `run` is the order of work in the module docstring."""

    def __init__(self, root: Path, config: SiteConfig, manifest: Manifest, out_dir: Path,
                 report: BuildReport, drafts: bool, jobs: int, progress: Progress | None, *,
                 snapshot: _Snapshot, env: tuple[str, jinja2.Environment], friends) -> None:  # noqa: ANN001
        self.root, self.config, self.manifest, self.out_dir = root, config, manifest, out_dir
        self.report, self.drafts, self.jobs, self.progress = report, drafts, jobs, progress
        self.out_str = str(out_dir)
        self.real_content = os.path.realpath(root / CONTENT_DIR) + os.sep
        self.friends = friends
        self.unlock: Callable[[bytes], Identity]  # set by Builder.build
        self.now = dt.datetime.now(dt.timezone.utc)
        self.snapshot = self.next_snapshot = snapshot
        self.old_outputs = snapshot.outputs
        self.files = _Files(snapshot.files)
        self.new_outputs: dict[str, OutputState] = {}
        self.writer: AtomicWriter | None = None
        self._lap_start = time.perf_counter()
        self.template_stamp, self.env = env

    # -- phase 0: what changed
    def collect_sources(self) -> tuple[dict[str, SourceState], dict[str, SourceState | None]]:
        self.previous = previous = self.snapshot.sources
        stats, warnings = scan_sources(self.root)
        self.report.warnings += warnings
        current: dict[str, SourceState] = {}
        changes: dict[str, SourceState | None] = {s: None for s in previous if s not in stats}
        to_render: list[str] = []
        for source, st in stats.items():
            old = previous.get(source)
            if old and old.mtime_ns == st.st_mtime_ns and old.size == st.st_size:
                current[source] = old
                continue
            if old and old.sha == _sha_of_file(self.root / source):
                current[source] = changes[source] = replace(old, mtime_ns=st.st_mtime_ns,
                                                            size=st.st_size)
                continue
            to_render.append(source)

        bodies: list[tuple[str, str, str]] = []
        for source, sha, record, html, toc, problem in render_changed(
                to_render, self.root, self.config, self.jobs, self.progress):
            if problem:
                self.report.problems.append(problem)
                if source in previous:  # keep the last good version (and its pages)
                    current[source] = previous[source]
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

    # -- phase 1: what gets published
    def select(self, current: dict[str, SourceState]) -> list[PostRecord]:
        """The public posts; `self.readable` gets every post some friend may read."""
        chosen = []
        self.readable: list[PostRecord] = []
        known = self.friends.audience_names
        for st in current.values():
            r = st.record
            if r.draft and not self.drafts:
                self.report.drafts += 1
                continue
            problem = check_audience(r, known)
            if problem:  # reported; the post goes to the names that are known, if any
                self.report.problems.append(problem)
                r = replace(r, audience=tuple(a for a in r.audience if a in known))
                if not r.audience:
                    continue
            self.readable.append(r)
            if not r.is_public:
                self.report.private += 1
                continue
            chosen.append(r)
        posts, collisions = resolve_collisions(chosen)
        self.report.problems += collisions
        self.report.posts = len(posts)
        self.report.changed = sum(1 for p in posts if p.source in self.rendered)
        return posts

    def template_fingerprints(self) -> dict[str, str]:
        """render.template_fingerprints, remembered by the templates' sizes and times
        (parsing every template costs more than a whole no-change build should)."""
        stamp = self.template_stamp
        cached = json.loads(self.manifest.get("template_fingerprints") or "{}")
        if cached.get("stamp") == stamp:
            self.fingerprints_memo = None
            return cached["fingerprints"]
        fingerprints = template_fingerprints(self.env)
        self.fingerprints_memo = json.dumps({"stamp": stamp, "fingerprints": fingerprints})
        return fingerprints

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.report.timings[phase] = now - self._lap_start
        self._lap_start = now

    def run(self) -> None:
        self.lap("load manifest")
        try:
            fingerprints = self.template_fingerprints()
        except jinja2.TemplateError as e:
            p = _template_problem(e, self.root)
            raise SiteError(str(p), hint=p.hint) from None
        self.lap("templates")
        current, source_changes = self.collect_sources()
        self.lap("sources")
        posts = self.select(current)

        static_paths = _static_files(self.root)
        static = {name: self.files.state(f"static/{name}", path)
                  for name, path in static_paths.items()}
        assets = {name: st.sha[:10] for name, st in static.items()}
        media = self.media_map(posts)
        site_fp = sig_of(self.config.fingerprint, sorted(assets.items()))
        link_targets = {p.source: p.path for p in posts}
        pages = self.plan(posts, fingerprints, site_fp, link_targets,
                          {src: out for src, (out, _) in media.items()})
        renderer = PageRenderer(self.env, self.config, assets)
        self.views = _Views(self.manifest, self.config, media, link_targets)
        self.lap("plan")

        if self.old_outputs and self.manifest.get("in_progress") == "1":
            AtomicWriter(self.out_dir).remove_stale_temporaries()

        # phase A: media, static files, the card, and friends' new objects and archive
        # pages (content-addressed or versioned; no page or head refers to them yet)
        for name, st in static.items():
            self.emit(f"static/{name}", st.sha, lambda p=static_paths[name]: p.read_bytes())
        for src, (out, st) in media.items():
            self.emit(out, st.sha, lambda s=src: (self.root / s).read_bytes())
        card = self.root / CARD_FILE
        if card.is_file():  # the owner's public card, where friends look for it (§2.4)
            self.emit(WELL_KNOWN_CARD, self.files.state(CARD_FILE, card).sha, card.read_bytes)
        feeds = self.plan_private_feeds()
        self.barrier()
        self.lap("media")
        # phase B: pages at new paths (nothing links to them yet); phase C: rewritten
        # post pages; phase D: rewritten index pages. So a page a reader can reach never
        # links to one that is not there yet (pages and tags link both ways).
        todo = [p for p in pages if self.needs(p.path, p.sig)]
        fresh = [p for p in todo if p.path not in self.old_outputs]
        rewritten = [p for p in todo if p.path in self.old_outputs]
        if self.progress:
            self.progress.start("writing pages", len(todo))
        for batch in (fresh, [p for p in rewritten if p.template == "post.html"],
                      [p for p in rewritten if p.template != "post.html"]):
            self.emit_pages(renderer, batch)
            self.barrier()
        for page in pages:
            self.keep(page.path)
        self.lap("pages")
        # phase E: feeds and sitemap, last: they announce what the pages above hold
        self.emit_feeds(posts)
        if feeds.max_seq:
            # recorded before any head is written: a build killed after writing a head
            # and before its commit must not hand out that number again (§3.4)
            self.manifest.set("seq_floor", str(max(feeds.max_seq,
                                                   int(self.manifest.get("seq_floor") or 0))))
        for path, data in feeds.files:  # friends' heads, last (§1.5)
            self.put(path, _sha(data), data)
        self.barrier()
        self.lap("feeds")
        # phase F: remove what nothing produces any more
        removed = [p for p in self.old_outputs if p not in self.new_outputs]
        for path in removed:
            self.ensure_writer().delete(path)
        self.barrier()

        output_changes: dict[str, OutputState | None] = {p: None for p in removed}
        output_changes.update({p: o for p, o in self.new_outputs.items()
                               if self.old_outputs.get(p) != o})
        file_changes = {k: v for k, v in self.files.now.items() if self.files.known.get(k) != v}
        file_changes.update({k: None for k in self.files.known if k not in self.files.now})
        dead_bodies = {self.previous[s].record.render_key for s in source_changes
                       if s in self.previous} - {
            st.record.render_key for st in source_changes.values() if st is not None}
        kv = {"in_progress": "0", "index_pages": json.dumps(self.index_memo)}
        feed_changes, sealed_changes, feed_index = self.private_state_changes(feeds)
        if feed_index is not None:
            kv["feed_index"] = feed_index
        if self.fingerprints_memo:
            kv["template_fingerprints"] = self.fingerprints_memo
        if self.manifest.get("index_pages") == kv["index_pages"]:
            del kv["index_pages"]
        if (source_changes or output_changes or file_changes or self.writer or len(kv) > 1
                or feed_changes or sealed_changes):
            self.manifest.commit(sources=source_changes, outputs=output_changes,
                                 files=file_changes, kv=kv, dead_bodies=dead_bodies,
                                 feeds=feed_changes, sealed=sealed_changes)
            self.next_snapshot = self.snapshot.after(
                sources=source_changes, outputs=output_changes, files=file_changes,
                feeds={k: v and feeds.states[k] for k, v in feed_changes.items()},
                sealed={k: v and feeds.objects[k] for k, v in sealed_changes.items()})
        self.report.changed_paths = sorted(
            p for p, o in output_changes.items()
            if o is None or p not in self.old_outputs or self.old_outputs[p].sha != o.sha)
        self.lap("clean up and commit")
        if self.writer:
            self.report.written, self.report.deleted = self.writer.written, self.writer.deleted

    def plan(self, posts: list[PostRecord], fingerprints: dict[str, str], site_fp: str,
             link_targets: dict[str, str], media: dict[str, str]) -> list[Page]:
        """The pages to consider. While the index fingerprint is the one recorded last
        time and its pages are intact, the index pages are kept without planning them,
        and only the pages of changed posts are planned: a one-post edit costs one page."""
        options = dict(fingerprints=fingerprints, site_fingerprint=site_fp)
        index_fp = index_fingerprint(posts, per_page=self.config.posts_per_page, media=media,
                                     **options)
        memo = json.loads(self.manifest.get("index_pages") or "{}")
        self.index_memo = {"fp": index_fp, "paths": memo.get("paths", [])}
        self.index_fp = index_fp
        if memo.get("fp") == index_fp and not self.damaged(memo["paths"]):
            for path in memo["paths"]:
                self.keep(path)
            damaged = self.damaged([f"{p.path}index.html" for p in posts])
            changed = [i for i, p in enumerate(posts) if p.source in self.rendered
                       or f"{p.path}index.html" in damaged]
            for p in posts:
                self.keep_if_recorded(f"{p.path}index.html")
            return post_pages(posts, changed, link_targets=link_targets, media=media, **options)
        pages = index_pages(posts, per_page=self.config.posts_per_page, media=media, **options)
        self.index_memo["paths"] = [p.path for p in pages]
        return post_pages(posts, link_targets=link_targets, media=media, **options) + pages

    # -- helpers
    def media_map(self, posts: list[PostRecord]) -> dict[str, tuple[str, FileState]]:
        """source path of each referenced media file -> (output path, state)."""
        out: dict[str, tuple[str, FileState]] = {}
        for p in posts:
            for ref in p.media:
                if ref in out:
                    continue
                problem = self.media_problem(ref)
                if problem:
                    self.report.warnings.append(f"{p.source}: {problem}")
                    continue
                st = self.files.state(ref, self.root / ref)
                out[ref] = (f"media/{st.sha[:16]}/{_media_name(ref)}", st)
        return out

    def media_problem(self, ref: str) -> str | None:
        """Why a file a post refers to cannot be published, or None: it must be a file
        inside content/, symlinks resolved (THREATS.md 38)."""
        real = os.path.realpath(self.root / ref)
        if not real.startswith(self.real_content):
            return f"{ref} is outside content/, not published"
        if not os.path.isfile(real):
            return f"links to {ref}, which does not exist"
        return None

    def ensure_writer(self) -> AtomicWriter:
        if self.writer is None:
            self.manifest.set("in_progress", "1")
            self.writer = AtomicWriter(self.out_dir)
        return self.writer

    def barrier(self) -> None:
        if self.writer:
            self.writer.barrier()

    def needs(self, path: str, sig: str) -> bool:
        """Whether to render `path`: its signature changed, or the file is not intact."""
        old = self.old_outputs.get(path)
        return (old is None or old.sig != sig
                or _size(os.path.join(self.out_str, path)) != old.size)

    def keep(self, path: str) -> None:
        if path not in self.new_outputs:
            self.new_outputs[path] = self.old_outputs[path]

    def damaged(self, paths: list[str]) -> set[str]:
        """Those of `paths` that the last build did not write, or that are no longer
        there at the size it wrote (a tight loop: it runs over every page)."""
        old, out, stat = self.old_outputs, self.out_str + "/", os.stat
        bad = set()
        for path in paths:
            state = old.get(path)
            try:
                if state is None or stat(out + path).st_size != state.size:
                    bad.add(path)
            except FileNotFoundError:
                bad.add(path)
        return bad

    def keep_if_recorded(self, path: str) -> None:
        if path in self.old_outputs:
            self.keep(path)

    def emit(self, path: str, sig: str, make: Callable[[], bytes]) -> None:
        """Write `path` unless the last build wrote the same signature and it is intact."""
        if self.needs(path, sig):
            self.put(path, sig, make())
        else:
            self.keep(path)

    def put(self, path: str, sig: str, data: bytes) -> None:
        self.new_outputs[path], _ = self.write_if_changed(path, sig, data)

    def write_if_changed(self, path: str, sig: str, data: bytes) -> tuple[OutputState, bool]:
        """Write unless the file already holds exactly these bytes; say whether it wrote."""
        sha = _sha(data)
        old = self.old_outputs.get(path)
        if old and old.sha == sha and _size(os.path.join(self.out_str, path)) == len(data):
            return OutputState(sig, sha, len(data)), False
        self.ensure_writer().write(path, data)
        return OutputState(sig, sha, len(data)), True

    def render_page(self, renderer: PageRenderer, page: Page) -> PageResult:
        """Render and write one page (in this process or a worker)."""
        try:
            html = self.views.render(renderer, page)
        except jinja2.TemplateError as e:
            return page.path, None, _template_problem(e, self.root), False
        state, wrote = self.write_if_changed(page.path, page.sig, html.encode())
        return page.path, state, None, wrote

    def apply(self, result: PageResult) -> None:
        """Record a rendered page; a template error fails that page alone and keeps its
        last good version (reported once per template line)."""
        path, state, problem, _ = result
        if state is not None:
            self.new_outputs[path] = state
            return
        if problem not in self.report.problems:
            self.report.problems.append(problem)
        if path in self.old_outputs:
            self.new_outputs[path] = replace(self.old_outputs[path], sig="failed")

    def emit_pages(self, renderer: PageRenderer, batch: list[Page]) -> None:
        """Render a batch of pages, across worker processes when it is large. Workers are
        forked now, so they share the plan and the views already in memory."""
        if self.jobs <= 1 or len(batch) < PAGE_PARALLEL_THRESHOLD:
            for page in batch:
                self.apply(self.render_page(renderer, page))
                if self.progress:
                    self.progress.advance()
            return
        writer = self.ensure_writer()
        for name in PAGE_TEMPLATES:  # compile once, before the fork
            self.env.get_template(name)
        _page_job.update(build=self, renderer=renderer, batch=batch)
        with _pool(self.jobs, initializer=_init_page_worker) as pool:
            for results in pool.map(_render_pages, _chunked(list(range(len(batch))), self.jobs)):
                for result in results:
                    self.apply(result)
                    writer.written += result[3]  # the workers' writes, counted here
                if self.progress:
                    self.progress.advance(len(results))
        writer.mark_dirty()
        _page_job.clear()

    def emit_feeds(self, posts: list[PostRecord]) -> None:
        newest = posts[::-1][:self.config.feed_items]
        feed_sig = sig_of(FEED_VERSION, self.config.fingerprint,
                          *(p.digest for p in newest), *(
                              self.views.media.get(m, ("",))[0] for p in newest for m in p.media))
        def feed(kind: str) -> bytes:
            from o2m_pub.site import syndication  # imported only when a feed is written
            if kind == "sitemap":
                return syndication.sitemap([(self.config.url, None)] + [
                    (self.config.url + p.path, p.updated or p.date) for p in posts])
            entries = [syndication.FeedEntry(p, self.config.url + p.path,
                                             self.views.absolute_html(p)) for p in newest]
            make = syndication.json_feed if kind == "json" else syndication.atom
            return make(self.config, entries)

        self.emit("feed.json", feed_sig, lambda: feed("json"))
        self.emit("atom.xml", feed_sig, lambda: feed("atom"))
        # the index fingerprint covers every post's path and dates, and the site's URL
        self.emit("sitemap.xml", sig_of(FEED_VERSION, self.index_fp), lambda: feed("sitemap"))


PageResult = tuple[str, "OutputState | None", "Problem | None", bool]  # path, state, problem, wrote
PAGE_PARALLEL_THRESHOLD = 400
_page_job: dict[str, object] = {}


def _init_page_worker() -> None:
    build: _Build = _page_job["build"]  # type: ignore[assignment]
    build.views.bodies = Manifest.body_reader(build.manifest.path)  # no shared connection


def _render_pages(indexes: list[int]) -> list[PageResult]:
    build: _Build = _page_job["build"]  # type: ignore[assignment]
    batch: list[Page] = _page_job["batch"]  # type: ignore[assignment]
    return [build.render_page(_page_job["renderer"], batch[i]) for i in indexes]  # type: ignore[arg-type]


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return -1


class _Views:
    """Turns records into what templates and feeds see, resolving body markers."""

    def __init__(self, manifest: Manifest, config: SiteConfig,
                 media: dict[str, tuple[str, FileState]], link_targets: dict[str, str]) -> None:
        self.config, self.media, self.targets = config, media, link_targets
        self.bodies: Callable[[str], tuple[str, str] | None] = manifest.body
        self.tz = config.tz

    def _body(self, record: PostRecord) -> tuple[str, str]:
        body = self.bodies(record.render_key)
        if body is None:  # cache lost (deleted .o2m/ partly): the build redoes it next time
            raise SiteError(f"{record.source}: rendered body missing from the build cache",
                            hint="delete .o2m/build.db; the next build renders everything again")
        return body

    @staticmethod
    def _resolve_markers(html: str, resolve: Callable[[str, str, str], str]) -> str:
        from o2m_pub.site.markup import resolve_markers
        return resolve_markers(html, resolve)

    def _resolver(self, link: Callable[[str], str]) -> Callable[[str, str, str], str]:
        def resolve(kind: str, path: str, fragment: str) -> str:
            if kind == "MEDIA":
                target = self.media.get(path)
                return link(target[0]) + fragment if target else "#missing"
            target_path = self.targets.get(path)
            return link(target_path) + fragment if target_path is not None else "#missing"
        return resolve

    def view(self, record: PostRecord, link: Callable[[str], str]) -> PostView:
        resolve = self._resolver(link)
        cache: list[tuple[str, str]] = []

        def body() -> tuple[str, str]:
            if not cache:
                html, toc = self._body(record)
                cache.append((self._resolve_markers(html, resolve), toc))
            return cache[0]

        return PostView(record, url=self.config.url + record.path, tz=self.tz, body=body)

    def absolute_html(self, record: PostRecord) -> str:
        def link(path: str) -> str:
            return self.config.url + path
        return self._resolve_markers(self._body(record)[0], self._resolver(link))

    def render(self, renderer: PageRenderer, page: Page) -> str:
        root = self.config.base_path if page.template == "404.html" else None
        link = linker(page.page_dir, root=root)
        ctx = dict(page.context)
        for key in ("post", "newer", "older"):
            if ctx.get(key) is not None:
                ctx[key] = self.view(ctx[key], link)
        if "posts" in ctx:
            ctx["posts"] = [self.view(p, link) for p in ctx["posts"]]
        if "year_posts" in ctx:
            months: dict[str, list[PostView]] = defaultdict(list)
            for p in ctx.pop("year_posts"):
                v = self.view(p, link)
                months[v.date.strftime("%B")].append(v)
            ctx["months"] = [{"name": m, "posts": ps} for m, ps in months.items()]
        canonical = None if root is not None else self.config.url + page.page_dir
        return renderer.render(page.template, page.page_dir, canonical, root=root, **ctx)


def _template_problem(e: jinja2.TemplateError, root: Path) -> Problem:
    """A template error as a Problem naming the template file and line."""
    if isinstance(e, jinja2.TemplateSyntaxError):
        filename, line = e.filename or e.name or TEMPLATES_DIR, e.lineno
    else:
        filename, line = _template_frame(e)
    return Problem(_template_display_name(filename, root), line or 1,
                   f"template error: {e.message or e}",
                   hint="fix the template; pages it failed on keep their last good version")


def _template_frame(e: BaseException) -> tuple[str, int | None]:
    """The innermost template file and line in a runtime error's traceback (Jinja
    maps its compiled code back to template lines)."""
    tb, found = e.__traceback__, (TEMPLATES_DIR, None)
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".html"):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _template_display_name(filename: str, root: Path) -> str:
    from o2m_pub.site.render import BUILTIN_THEME
    path = Path(filename)
    for base, label in ((root, ""), (Path(str(BUILTIN_THEME)), "(built-in theme) ")):
        try:
            return label + path.resolve().relative_to(base.resolve()).as_posix()
        except (ValueError, OSError):
            continue
    return filename
