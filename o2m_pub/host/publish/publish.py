"""`o2m publish`: copy `build/` to its host in the order that keeps readers safe.

The shell around publish_plan.py: it lists `build/` (taking each file's digest from the
build manifest when the file is the one the build wrote, hashing only the others),
loads the record of what the target last received (publish_record.py), plans, and
hands the batches in order to the target: a folder (publish_local.py) or an rclone
remote (publish_rclone.py). It holds the site's build lock throughout, so no build
changes `build/` under a publish. See docs/HOSTING.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import sqlite3
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from o2m_pub._files import TMP_PREFIX, site_lock
from o2m_pub._sqlite import connect_read_only
from o2m_pub.config import BUILD_DIR, MANIFEST, STATE_DIR, load
from o2m_pub.host.publish.folder import FolderTarget
from o2m_pub.host.publish.plan import (
    DEFAULT_GRACE,
    PHASES,
    CheckResult,
    FileInfo,
    PublishPlan,
    compare_listing,
    plan_publish,
    utc_text,
)
from o2m_pub.host.publish.rclone import RcloneTarget
from o2m_pub.host.publish.record import PublishRecord
from o2m_pub.host.publish.target import NoProgress, Progress, PublishError, Target
from o2m_pub.host.static_rules import hidden_segment

# rclone's remote names: letters, digits, _ - . + @ and spaces inside; or ":backend,...:"
_REMOTE = re.compile(r"^(?::[\w-]+(?:,[^:]*)?|[\w.+@][\w.+@ -]*(?<! )):")


@dataclass
class PublishReport:
    """What a publish did (or, with --dry-run, would do), for the summary and tests."""

    target: str
    plan: PublishPlan
    dry_run: bool
    grace: dt.timedelta
    sent: dict[str, tuple[int, int]] = field(default_factory=dict)  # phase -> files, bytes
    deleted: int = 0
    seconds: float = 0.0
    check: CheckResult | None = None
    hidden: list[str] = field(default_factory=list)  # dotfiles of build/ left out


def is_remote(spec: str) -> bool:
    """Whether a target names an rclone remote (`name:path`) rather than a folder."""
    if spec.startswith(("/", "./", "../", "~")):
        return False
    return bool(_REMOTE.match(spec))


def parse_target(spec: str, base: Path, state_dir: Path) -> Target:
    """A folder (relative to `base`) or an rclone remote, from the text naming it."""
    spec = spec.strip()
    if not spec:
        raise PublishError("the target is empty", hint="name a folder or an rclone remote")
    if is_remote(spec):
        remote = spec.rstrip("/") if not spec.endswith(":/") else spec
        return RcloneTarget(remote, state_dir)
    folder = Path(os.path.expanduser(spec))
    return FolderTarget(Path(os.path.abspath(base / folder)))


def _build_digests(state_dir: Path) -> dict[str, FileInfo]:
    """The digests the last build recorded for what it wrote (manifest.py `outputs`).

    Raises:
        PublishError: the last build stopped midway (its record of build/ is not whole).
    """
    path = state_dir / MANIFEST
    if not path.is_file():
        return {}
    try:
        db = connect_read_only(path)
        try:
            row = db.execute("SELECT value FROM kv WHERE key='in_progress'").fetchone()
            outputs = {p: FileInfo(h, z) for p, h, z in
                       db.execute("SELECT path, sha, size FROM outputs")}
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return {}  # no usable manifest: every file is hashed
    if row and row[0] == "1":
        raise PublishError("the last `o2m build` did not finish",
                           hint="run `o2m build` again, then publish")
    return outputs


def _sha256_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def scan_build(build_dir: Path, known: dict[str, FileInfo],
               hidden: list[str] | None = None) -> dict[str, FileInfo]:
    """Every regular file of build/ with its digest: from the manifest when its size is
    the one recorded (the build wrote it, and nothing else writes there), else hashed.
    Temporary files of a build and symlinks are left out: os.walk does not descend into
    a symlinked folder, and lstat shows a symlinked file as no regular file. Dotfiles
    and dot-folders are left out as `o2m serve` refuses them (`static_rules`), and
    their paths (a folder's with a trailing /) appended to `hidden`."""
    if not build_dir.is_dir():
        raise PublishError(f"{BUILD_DIR}/ does not exist: nothing to publish",
                           hint="run `o2m build` first")
    files: dict[str, FileInfo] = {}
    root = str(build_dir)
    for dirpath, dirnames, names in os.walk(root):
        rel = os.path.relpath(dirpath, root).replace(os.sep, "/")
        prefix = "" if rel == "." else rel + "/"
        for name in sorted(dirnames):
            if hidden_segment(name, first=not prefix):
                dirnames.remove(name)  # not walked into
                if hidden is not None:
                    hidden.append(prefix + name + "/")
        for name in names:
            if name.startswith(TMP_PREFIX):
                continue
            if hidden_segment(name, first=not prefix):
                if hidden is not None:
                    hidden.append(prefix + name)
                continue
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if not stat.S_ISREG(st.st_mode):
                continue
            path = prefix + name
            recorded = known.get(path)
            if recorded is not None and recorded.size == st.st_size:
                files[path] = recorded
            else:
                files[path] = FileInfo(_sha256_file(full), st.st_size)
    return files


def _refuse_overlap(target: Target, build_dir: Path) -> None:
    if isinstance(target, FolderTarget):
        t, b = Path(os.path.realpath(target.folder)), Path(os.path.realpath(build_dir))
        if t == b or t.is_relative_to(b) or b.is_relative_to(t):
            raise PublishError(f"{target.folder}: the target overlaps build/",
                               hint="publish to a folder outside the site (a web root, a share)")


def chosen_target(root: Path, spec: str | None, *, base: Path | None = None) -> Target:
    """The target `spec` names (relative to `base`, default the current folder), or
    o2m.toml's [publish] target (relative to the site); checked before anything is
    built or sent (`o2m publish` asks first, then builds).

    Raises:
        PublishError: no target given or configured, an empty one, or a folder that
            overlaps build/.
    """
    if spec is None:
        spec = load(root).publish_target
        base = root
        if spec is None:
            raise PublishError("no target given, and o2m.toml has no [publish] target",
                               hint='pass one (o2m publish /var/www/site, or o2m publish '
                               'host:www), or set target = "..." in a [publish] table')
    target = parse_target(spec, base or Path.cwd(), root / STATE_DIR)
    _refuse_overlap(target, root / BUILD_DIR)
    return target


def publish_site(root: Path, spec: str | None = None, *, base: Path | None = None,
                 dry_run: bool = False, grace: dt.timedelta = DEFAULT_GRACE,
                 check: bool = False, now: dt.datetime | None = None,
                 progress: Progress | None = None) -> PublishReport:
    """Publish the site at `root` to `spec` (default: o2m.toml's [publish] target).

    Args:
        root: the site folder.
        spec: a folder (relative to `base`, default the current folder) or `name:path`.
        dry_run: plan and report only; nothing is sent, deleted or recorded.
        grace: how long objects gone from build/ stay on the host.
        check: list the target first, and send again what it lacks.
        now: the time of this publish (for the grace period).
        progress: told what moves, for a display.

    Raises:
        PublishError: no target, build/ missing or mid-build, target unreachable, full,
            not writable, or the transfer failed; the host keeps a consistent site.
    """
    started = time.perf_counter()
    now = now or dt.datetime.now(dt.timezone.utc)
    progress = progress or NoProgress()
    state_dir = root / STATE_DIR
    target = chosen_target(root, spec, base=base)
    build_dir = root / BUILD_DIR
    with site_lock(state_dir, error=PublishError):  # no build rewrites build/ meanwhile
        hidden: list[str] = []
        local = scan_build(build_dir, _build_digests(state_dir), hidden)
        record = PublishRecord(state_dir, target.key)
        try:
            report = _publish(record, target, local, build_dir, dry_run=dry_run, grace=grace,
                              check=check, now=now, progress=progress)
        finally:
            record.close()
    report.hidden = hidden
    report.seconds = time.perf_counter() - started
    return report


def _publish(record: PublishRecord, target: Target, local: dict[str, FileInfo],
             build_dir: Path, *, dry_run: bool, grace: dt.timedelta, check: bool,
             now: dt.datetime, progress: Progress) -> PublishReport:
    sent = record.load()
    check_result = None
    if check or (target.lists_cheaply and sent):
        # A folder is listed every time (a walk costs milliseconds): a web root
        # emptied or replaced by hand is noticed. A remote is listed on request.
        check_result = compare_listing(sent, target.listing())
        for path in check_result.missing:
            del sent[path]
        if not dry_run:
            record.forget(check_result.missing)
        if not check:
            check_result = None
    plan = plan_publish(local, sent, now=now, grace=grace)
    report = PublishReport(str(target), plan, dry_run, grace, check=check_result,
                           sent={phase: (0, 0) for phase in PHASES})
    interrupted = record.interrupted()
    if dry_run or (plan.empty and not plan.newly_gone and not plan.returned
                   and not interrupted):
        return report
    now_text = utc_text(now)
    if not plan.empty or interrupted:
        target.prepare(interrupted=interrupted)
    record.begin(newly_gone=plan.newly_gone, returned=plan.returned, now=now_text)
    for batch in plan.batches:  # in order: objects, pages, heads (publish_plan.py)
        progress.batch(batch)
        target.send(build_dir, batch, record.sent, progress)
        files, size = report.sent[batch.phase]
        report.sent[batch.phase] = (files + len(batch.files), size + batch.bytes)
    if plan.deletions:
        target.delete(plan.deletions, record.forget)
        report.deleted = len(plan.deletions)
    record.finish()
    return report
