"""`o2m watch` (and `o2m serve --watch`): rebuild the site whenever one of its sources
changes, so that saving a file is publishing it (DESIGN.md, "Who uses it and how").

Pure core: `event_matters` decides which file-system events can change what the build
publishes. Editors' swap, backup, lock and temporary files (vim, emacs, VS Code, gedit,
JetBrains atomic saves), dotfiles, build/ and .o2m/ never trigger a build; an atomic
save that renames a temporary file onto a real post does.

Shell: `SiteWatcher`. watchdog's threads report events; after a quiet spell (the
debounce) one builder thread runs an incremental build on a warm `build.Builder`
session. A burst of saves gives one build; changes that arrive during a build give
exactly one more build after it. The watcher never prints: each build's outcome goes
to the `on_build` callback, from the builder thread.

Use (what `o2m watch` and `o2m serve --watch` do; the server's open pages reload
when the manifest changes, whichever process built)::

    watcher = SiteWatcher(root, on_build, unlock=unlock, debounce=0.1)
    watcher.start()          # builds once at once, then on every relevant change
    ...
    watcher.stop()           # waits for a build in progress, then returns
"""

from __future__ import annotations

import gc
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from o2m_pub.config import CONFIG_NAME
from o2m_pub.site.build import Builder, BuildReport, is_editor_litter

if TYPE_CHECKING:
    from o2m_pub.protocol.keyfile import Identity

WATCHED_DIRS = ("content", "site_templates", "keys")  # each watched recursively
KEYS_FILES = frozenset({"keys/groups.json", "keys/card.json", "keys/identity.pub.json"})
# PROTOCOL.md §4: what `o2m fetch`, `o2m react` and `o2m thread hide` change for the next
# build (the links of the owner's threads, the owner's reactions), in the state folder
STATE_FILES = frozenset({".o2m/conversations.json", ".o2m/reactions.json"})
DEFAULT_DEBOUNCE = 0.1  # seconds of quiet after the last event before a build starts
MAX_DELAY = 2.0  # a stream of events that never goes quiet still builds this often

# Events that cannot change a file's bytes (reading a post opens and closes it; a
# folder's mtime changes whenever anything inside it does, litter included).
_IGNORED_EVENTS = frozenset({"opened", "closed_no_write"})


def path_matters(rel: str) -> bool:
    """Whether a change at `rel` (relative to the site root, "/"-separated) can change
    what the build publishes: o2m.toml, anything in content/ or site_templates/, and
    in keys/ the friends, groups and the owner's card and public key (not keys/tls/,
    not the secret key, which the build never reads)."""
    if rel in STATE_FILES:
        return True
    parts = rel.split("/")
    if not rel or any(is_editor_litter(p) for p in parts):
        return False
    if rel == CONFIG_NAME:
        return True
    top = parts[0]
    if top in ("content", "site_templates"):
        return True
    if top != "keys" or len(parts) == 1:
        return False
    if parts[1] == "friends":
        return len(parts) == 2 or (len(parts) == 3 and parts[2].endswith(".json"))
    return rel in KEYS_FILES


def event_matters(event_type: str, is_directory: bool, src: str | None,
                  dest: str | None = None) -> bool:
    """Whether one watchdog event calls for a build. `src` and `dest` are relative to
    the site root (None when outside it); a move matters if either end does, so an
    atomic save (temporary file renamed onto the post) triggers, and so does renaming
    a post away (it is deleted from the site)."""
    if event_type in _IGNORED_EVENTS or (is_directory and event_type in ("modified", "attrib")):
        return False
    return any(p is not None and path_matters(p) for p in (src, dest))


# --- the shell ---------------------------------------------------------------------------

def _settle_memory() -> None:
    """Collect garbage now, between builds, and freeze what survives. A warm session
    holds 10,000 post records; without this, a full collection lands in the middle of
    every other build (about 35 ms on the 10,000-post benchmark site), and with it the
    next build's collections skip the long-lived objects. (Unfreezing first lets a
    replaced template environment, which has cycles, still be collected.)"""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


@dataclass(frozen=True)
class BuildResult:
    """One build's outcome, as `SiteWatcher` hands it to `on_build`.

    Attributes:
        number: 1 for the build at start, then 2, 3, ...
        sources: the changed site-relative paths that caused it (empty for the first).
        report: the build's report (posts' problems and a feed error are in it); None
            when the site as a whole could not be built.
        error: why not: an `O2MError` (a bad o2m.toml or template, a locked key, a
            full disk) or, for a bug, any other exception.
        seconds: how long the build took.
    """

    number: int
    sources: tuple[str, ...]
    report: BuildReport | None
    error: BaseException | None
    seconds: float

    @property
    def ok(self) -> bool:
        """Built with no problem at all."""
        return (self.error is None and self.report is not None and not self.report.problems
                and self.report.feed_error is None)

    @property
    def changed_paths(self) -> tuple[str, ...]:
        """Output paths (relative to build/) written anew or removed: what a live
        reload should refresh."""
        return tuple(self.report.changed_paths) if self.report is not None else ()


class SiteWatcher:
    """Watches a site's sources and rebuilds it on a warm `Builder` session.

    Args:
        root: the site folder (where o2m.toml is).
        on_build: called after every build with its `BuildResult`, on the builder
            thread (a Twisted server hops to the reactor with reactor.callFromThread).
            It should not raise; if it does, the exception is kept in
            `callback_errors` and watching goes on.
        unlock: returns the owner's unlocked identity; called at most once per watcher
            (the session keeps the identity), and only when a friend's feed must be
            signed. Unlock before `start()` to ask for the passphrase up front.
        debounce: seconds without a new event before a build starts.
        drafts, jobs: as for `o2m build`.
    """

    def __init__(self, root: Path, on_build: Callable[[BuildResult], None], *,
                 unlock: Callable[[], "Identity"] | None = None,
                 debounce: float = DEFAULT_DEBOUNCE, drafts: bool = False,
                 jobs: int | None = None) -> None:
        self.root = Path(root)
        self.on_build = on_build
        self.debounce = debounce
        self.callback_errors: list[BaseException] = []
        self._root_str = str(self.root)
        self._builder = Builder(self.root, drafts=drafts, jobs=jobs, unlock=unlock,
                                wait_for_lock=True)
        self._cond = threading.Condition()
        self._changed: set[str] = set()
        self._pending = False
        self._first_event = self._last_event = 0.0
        self._stopping = False
        self._idle = False  # the builder thread waits, with nothing pending
        self._builds = 0
        self._observer = None
        self._scheduled: dict[str, tuple] = {}  # path -> ((dev, inode), its watch)
        self._thread: threading.Thread | None = None

    # -- the public API
    def start(self) -> None:
        """Start watching; the first build starts at once (not debounced)."""
        from watchdog.observers import Observer
        if self._thread is not None:
            raise RuntimeError("SiteWatcher.start() called twice")
        self._observer = Observer()
        self._schedule_watches()
        self._observer.start()
        with self._cond:
            self._pending = True
            self._first_event = self._last_event = -float("inf")  # no quiet to wait for
        self._thread = threading.Thread(target=self._run, name="o2m-watch-builder",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop watching. A build in progress is finished first (so build/ and the
        manifest are left as a whole build leaves them); pending changes are dropped."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def pending_changes(self) -> tuple[str, ...]:
        """The changed paths noted since the last build started, sorted: what the next
        build will be for (a test's way to know its saves were seen, without sleeping)."""
        with self._cond:
            return tuple(sorted(self._changed))

    def idle(self) -> bool:
        """Whether the builder thread waits for a change with none noted: no build runs
        and none is due (a test's way to see that no other build follows, without
        sleeping)."""
        with self._cond:
            return self._idle

    # -- watchdog's side (observer threads)
    def dispatch(self, event) -> None:  # noqa: ANN001 - watchdog's FileSystemEvent
        """watchdog's handler entry point: note the event if it matters."""
        src = self._relative(event.src_path)
        dest = self._relative(getattr(event, "dest_path", "") or "")
        if event_matters(event.event_type, event.is_directory, src, dest):
            self._note(next(p for p in (dest, src) if p is not None and path_matters(p)))

    def _relative(self, path: str | bytes) -> str | None:
        path = os.fsdecode(path)
        if not path.startswith(self._root_str + os.sep):
            return None
        return path[len(self._root_str) + 1:].replace(os.sep, "/")

    def _note(self, rel: str) -> None:
        now = time.monotonic()
        with self._cond:
            if not self._pending:
                self._first_event = now
            self._pending = True
            self._idle = False
            self._last_event = now
            if rel:
                self._changed.add(rel)
            self._cond.notify_all()

    def _schedule_watches(self) -> None:
        """Watch o2m.toml's folder (not recursively: that is where content/,
        site_templates/ and keys/ appear if they are made later) and each of those
        folders that exists (recursively)."""
        from watchdog.events import (
            DirCreatedEvent,
            DirDeletedEvent,
            DirMovedEvent,
            FileAttribEvent,
            FileClosedEvent,
            FileCreatedEvent,
            FileDeletedEvent,
            FileModifiedEvent,
            FileMovedEvent,
        )
        kinds = [FileCreatedEvent, FileDeletedEvent, FileModifiedEvent, FileMovedEvent,
                 FileClosedEvent, FileAttribEvent, DirCreatedEvent, DirDeletedEvent,
                 DirMovedEvent]  # no opened/closed-no-write: the build reads the posts
        wanted = [(self._root_str, False)] + [
            (str(self.root / d), True) for d in WATCHED_DIRS if (self.root / d).is_dir()]
        if (self.root / ".o2m").is_dir():  # its two files of STATE_FILES, not recursively
            wanted.append((str(self.root / ".o2m"), False))
        for path, recursive in wanted:
            st = os.stat(path)
            folder = (st.st_dev, st.st_ino)
            old = self._scheduled.get(path)
            if old is not None and old[0] == folder:
                continue
            if old is not None:  # deleted and made again (a git checkout): a new watch
                self._observer.unschedule(old[1])  # type: ignore[union-attr]
            watch = self._observer.schedule(self, path, recursive=recursive,  # type: ignore[union-attr]
                                            event_filter=kinds)
            self._scheduled[path] = (folder, watch)

    # -- the builder thread
    def _next_batch(self) -> tuple[str, ...] | None:
        """Wait for changes and then for quiet; the paths to build for, or None to stop."""
        with self._cond:
            while not self._pending and not self._stopping:
                self._idle = True
                self._cond.wait()
            self._idle = False
            while not self._stopping:
                now = time.monotonic()
                wait = min(self._last_event + self.debounce, self._first_event + MAX_DELAY) - now
                if wait <= 0:
                    break
                self._cond.wait(wait)
            if self._stopping:
                return None
            batch = tuple(sorted(self._changed))
            self._changed.clear()
            self._pending = False
            return batch

    def _run(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                result = self._build(batch)
                self._builds += 1
                try:
                    self.on_build(result)
                except Exception as e:  # noqa: BLE001 - the callback's; watching goes on
                    self.callback_errors.append(e)
                _settle_memory()
        finally:
            self._builder.close()  # on this thread: SQLite's connection was made here

    def _build(self, sources: tuple[str, ...]) -> BuildResult:
        started = time.perf_counter()
        number = self._builds + 1
        try:
            self._schedule_watches()  # a watched folder may have been made since
            report = self._builder.build()
        except Exception as e:  # noqa: BLE001 - reported to the callback; the watch goes on
            return BuildResult(number, sources, None, e, time.perf_counter() - started)
        return BuildResult(number, sources, report, None, report.seconds)
