"""What is on disk now, for a build to compare with its last state: the post files
under content/ with their stats (`scan_sources`), and the sizes of the pages and media
files the last build recorded (`recorded_pages`, `sizes_now`).

Light on imports on purpose: `scan_ahead`'s child runs these before the build's own
imports, on the second core, and every module it imports is CPU the edit pays for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

CONTENT_DIR = "content"
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
    # `sed -i` writes its result to "sed" and six random letters or digits, then renames
    if len(name) == 9 and name.startswith("sed") and name.isascii() and name[3:].isalnum():
        return True
    # vim checks that it may write in a folder by creating and deleting "4913" (or
    # 5036, 5159, ...: 4913 + 123 k, the first name free)
    # (ASCII digits only: "¹" is a digit to str.isdigit, not to int)
    return (name.isascii() and name.isdigit() and int(name) >= 4913
            and (int(name) - 4913) % 123 == 0)


def scan_sources(root: Path) -> tuple[dict[str, os.stat_result], list[str]]:
    """Every post file under content/ with its stat; symlinks that leave content/ are
    refused (THREATS.md 38), as are dotfiles and editors' temporary files. A file
    that vanishes between the listing and its stat is not a source."""
    content = root / CONTENT_DIR
    real_content = os.path.realpath(content)
    found: dict[str, os.stat_result] = {}
    warnings: list[str] = []
    # each folder with its real path: an entry that is no symlink is really at
    # real_folder/name, so only symlinks cost a realpath (a walk of lstats from /)
    stack = [(str(content), CONTENT_DIR, real_content)]
    seen_dirs = {real_content}  # a symlinked folder is followed once, never in a loop
    while stack:
        folder, rel, real_folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        # this folder's posts in order: the name of a plain file (nearly all of them,
        # stat-ed together below), or (name, stat) for a symlink's target
        posts: list = []
        for e in entries:
            name = e.name
            # a plain file named *.md: litter only by its prefix (no litter suffix, and
            # no number, ends in ".md")
            if name.endswith(".md") and not e.is_symlink() and e.is_file():
                if not name.startswith(_LITTER_PREFIXES):
                    posts.append(name)
                continue
            if is_editor_litter(name):
                continue
            rel_path = f"{rel}/{name}"
            symlink = e.is_symlink()
            if symlink:
                real = os.path.realpath(e.path)
                if not (real + os.sep).startswith(real_content + os.sep):
                    warnings.append(f"{rel_path}: symlink to a file outside content/, skipped")
                    continue
            if e.is_dir():
                real = os.path.realpath(e.path) if symlink else f"{real_folder}/{name}"
                if real in seen_dirs:
                    warnings.append(f"{rel_path}: a folder already read (symlink loop?), skipped")
                    continue
                seen_dirs.add(real)
                stack.append((e.path, rel_path, real))
            elif name.endswith(".md") and e.is_file():
                posts.append((name, e.stat()))
        if posts:
            found.update(_stat_posts(folder, rel, posts))
    return found, warnings


def _stat_posts(folder: str, rel: str, posts: list) -> Iterator[tuple[str, os.stat_result]]:
    """(path from content/'s parent, stat) of each of a folder's posts, in order: plain
    files by one `map(os.stat, ...)` (no Python frame per file), a file gone since the
    listing left out."""
    prefix, folder = rel + "/", folder + "/"
    if all(type(p) is str for p in posts):
        try:
            stats = list(map(os.stat, [folder + p for p in posts]))
            return zip([prefix + p for p in posts], stats)
        except FileNotFoundError:
            pass
    return _stat_each(folder, prefix, posts)


def _stat_each(folder: str, prefix: str, posts: list) -> Iterator[tuple[str, os.stat_result]]:
    for post in posts:
        if type(post) is not str:
            yield prefix + post[0], post[1]
            continue
        try:
            yield prefix + post, os.stat(folder + post)
        except FileNotFoundError:
            continue


def recorded_pages(manifest: Path) -> list[str]:
    """The HTML pages and the media files the last build recorded in build/ (the
    manifest's `outputs` table, see
    `manifest.Manifest`), read on a read-only connection of its own: `scan_ahead`'s
    child must not use a connection of its parent's, nor write.

    Raises:
        sqlite3.Error: no manifest there, or not one of this shape.
    """
    from o2m_pub._sqlite import connect_read_only

    db = connect_read_only(manifest)
    try:
        return [row[0] for row in db.execute(
            "SELECT path FROM outputs WHERE path LIKE '%.html' OR path LIKE 'media/%'")]
    finally:
        db.close()


def sizes_now(out_dir: Path, paths: list[str]) -> dict[str, int]:
    """The size of each of `paths` in `out_dir` now, -1 for one that is not there (as
    `outputs.Outputs.damaged` sees it); a path whose `stat` fails otherwise is left out
    (the build's own check then meets the error). Empty when `out_dir` cannot be
    opened. (A tight loop: every page of the site, in `scan_ahead`'s child.)"""
    try:
        folder = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return {}
    sizes, stat = {}, os.stat
    try:
        for path in paths:
            try:
                sizes[path] = stat(path, dir_fd=folder).st_size
            except (FileNotFoundError, NotADirectoryError):
                sizes[path] = -1
            except OSError:
                pass
    finally:
        os.close(folder)
    return sizes
