"""Friends' posts rendered once, at fetch time, in a worker process with hard limits.

Python-Markdown takes quadratic time on some inputs (runs of `[`, `![`, `[a](`, `[^`,
raw `<a `: 16 KB of `[` takes minutes), and nh3 on some HTML (100,000 nested `<div>`
take 90 s); no size cap that leaves real posts alone bounds that, and no complexity rule
covers every shape (THREATS.md 49, security review finding 1). So no parser ever runs
on a friend's text while a person waits: `o2m fetch` renders each new post once, after
its update is stored, and keeps the sanitised HTML in the store (`posts.rendered`),
which the desk and `o2m show` only read.

The rendering runs in a child process (`python -m o2m_pub.reader.render`, one at a
time, reused from post to post), under limits no input can talk its way past:

- CPU time: the child arms an ITIMER_PROF timer of `cpu_seconds` before each post; the
  kernel ends it with SIGPROF when the post has cost that much CPU. Such a post is
  marked too complex, for good: the reader shows it as its escaped text (a linear
  step, no parser) with a note ("too complex to render").
- memory: the child's address space is capped (RLIMIT_AS); a post that needs more is
  marked the same way.
- wall-clock time: a child that makes no progress for `wall_seconds` (a machine
  swapping, a stopped process) is killed, and the post is left for the next fetch: a
  busy machine is no reason to give up on a post for ever.
- each friend gets at most `budget_seconds` of rendering per fetch; what is left is
  rendered by the next fetch, newest posts first.

Posts the store had before it kept rendered HTML (schema 1) are rendered the same way,
by the next fetch of their friend; until then the reader shows their escaped text with
a note. A post of over 512 KiB of Markdown (or 1 MiB of HTML) is not rendered at all.
A rendering counts towards its friend's quota (`store.save_rendered`).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from o2m_pub.reader.sanitize import MAX_MARKDOWN_CHARS, render_post, sanitize_html

if TYPE_CHECKING:
    from o2m_pub.reader.model import StoredPost
    from o2m_pub.reader.store import ReaderStore

CPU_SECONDS = 5.0  # per post: a 500 KB post of real prose renders in 0.8 s
WALL_SECONDS = 30.0  # per post: past this the child is stuck, not busy
BUDGET_SECONDS = 60.0  # per friend and fetch
MEMORY_BYTES = 1 << 30  # the child's address space
MAX_HTML_CHARS = 1 << 20  # a public post's content_html (post_limits.MAX_CONTENT_HTML)
_LENGTH = 8  # bytes of the big-endian length before each message on the pipes


@dataclass(frozen=True)
class Rendered:
    """A post as the reader shows it: sanitised HTML (safe to insert unescaped) and the
    attachment names it shows inline; or, too big or too complex to render, none: it
    is then shown as its escaped text (a linear step, no parser)."""

    html: str
    images: tuple[str, ...] = ()
    too_complex: bool = False


TOO_COMPLEX = Rendered("", (), True)  # what is stored for a post past the limits


# ---------------------------------------------------------------- the parent's side


class RenderWorker:
    """The child process that renders, started when first needed and again after it
    was ended for a post; `close` ends it. Not thread-safe (the fetch renders on its
    main thread, after the downloads)."""

    def __init__(self, cpu_seconds: float = CPU_SECONDS, wall_seconds: float = WALL_SECONDS,
                 cwd: str | None = None, memory_bytes: int = MEMORY_BYTES) -> None:
        self.cpu_seconds, self.wall_seconds, self.cwd = cpu_seconds, wall_seconds, cwd
        self.memory_bytes = memory_bytes
        self.proc: subprocess.Popen | None = None
        self.started = 0  # children started, for the tests

    def __enter__(self) -> "RenderWorker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.proc is not None:
            proc, self.proc = self.proc, None
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()

    def render(self, job: dict[str, Any]) -> dict[str, Any] | None:
        """The child's answer for one job: {"html", "images"}, or {"error"} when it
        ran out of CPU time or memory (or failed); None when it made no progress
        within the wall-clock limit (it is killed; try again later)."""
        proc = self._child()
        try:
            _write(proc.stdin.fileno(), json.dumps(job).encode(), self._deadline())
            answer = _read(proc.stdout.fileno(), self._deadline())
        except TimeoutError:
            self.close()
            return None
        except (OSError, EOFError):  # it died: SIGPROF (CPU time) or worse
            self.close()
            return {"error": "the renderer stopped"}
        return json.loads(answer)

    def _deadline(self) -> float:
        return time.monotonic() + self.wall_seconds

    def _child(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            self.close()
            # -P: nothing from the working folder shadows a module; the state folder
            # (0700, ours) as that folder all the same
            self.proc = subprocess.Popen(
                [sys.executable, "-P", "-m", "o2m_pub.reader.render",
                 str(self.cpu_seconds), str(self.memory_bytes)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                cwd=self.cwd, close_fds=True)
            self.started += 1
        return self.proc


def _write(fd: int, data: bytes, deadline: float | None) -> None:
    view = memoryview(len(data).to_bytes(_LENGTH, "big") + data)
    while view:
        _wait(fd, deadline, write=True)
        view = view[os.write(fd, view[:1 << 16]):]


def _read(fd: int, deadline: float | None) -> bytes:
    size = int.from_bytes(_read_exactly(fd, _LENGTH, deadline), "big")
    return _read_exactly(fd, size, deadline)


def _read_exactly(fd: int, n: int, deadline: float | None) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        _wait(fd, deadline, write=False)
        chunk = os.read(fd, min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError("the renderer stopped")
        buf += chunk
    return bytes(buf)


def _wait(fd: int, deadline: float | None, *, write: bool) -> None:
    """Until `fd` is ready, or raise TimeoutError at `deadline` (None: no deadline)."""
    remaining = None if deadline is None else deadline - time.monotonic()
    if remaining is not None and remaining <= 0:
        raise TimeoutError
    ready = select.select([], [fd], [], remaining) if write else \
        select.select([fd], [], [], remaining)
    if not any(ready):
        raise TimeoutError


def too_big(markdown_chars: int | None, html_chars: int) -> bool:
    """Whether a post is too big to be worth a parser's time: no real post is half a
    megabyte of Markdown (PROTOCOL.md allows one; it is shown as its text)."""
    if markdown_chars is not None:
        return markdown_chars > MAX_MARKDOWN_CHARS
    return html_chars > MAX_HTML_CHARS


def render_one(post: "StoredPost", attachment_urls: dict[str, str],
               worker: RenderWorker) -> Rendered | None:
    """One stored post rendered (its Markdown) or sanitised (a public post's HTML);
    None when it is to be tried again later; TOO_COMPLEX past the limits."""
    if post.markdown is not None:
        job = {"markdown": post.markdown, "attachments": attachment_urls}
    else:
        job = {"html": post.html or ""}
    if too_big(len(post.markdown) if post.markdown is not None else None,
               len(post.html or "")):
        return TOO_COMPLEX
    answer = worker.render(job)
    if answer is None:
        return None
    if "error" in answer:
        return TOO_COMPLEX
    return Rendered(answer["html"], tuple(answer["images"]))


@dataclass
class RenderSummary:
    """What one fetch's rendering did, per friend."""

    rendered: dict[str, int]
    as_text: dict[str, int]  # too complex: stored as their text
    left: dict[str, int]  # still to render (the friend's budget ran out, or a stall)


def render_pending(store: "ReaderStore", friends: Iterable[str], *,
                   cpu_seconds: float = CPU_SECONDS, wall_seconds: float = WALL_SECONDS,
                   budget_seconds: float = BUDGET_SECONDS,
                   quota: int | None = None) -> RenderSummary:
    """Render the posts of `friends` that the store holds no rendering of, newest
    first, each friend for at most `budget_seconds`, and store each result (a
    rendering that would take its friend past `quota` bytes is not kept: that post is
    shown as its text). A post too big to render is never read whole here.

    Raises:
        StoreError: the store cannot be written.
    """
    from o2m_pub.reader.timeline import attachments, inline_urls

    summary = RenderSummary({}, {}, {})
    with RenderWorker(cpu_seconds, wall_seconds, cwd=str(store.state_dir)) as worker:
        for friend in friends:
            stop_at = time.monotonic() + budget_seconds
            done = text = 0
            for short_id in store.unrendered(friend):
                if time.monotonic() >= stop_at:
                    break
                facts = store.post_facts(short_id)
                if facts is None:
                    continue
                if too_big(facts.markdown_chars, facts.html_chars):
                    post, result = facts, TOO_COMPLEX
                else:
                    post = store.post(short_id)
                    if post is None or post.short_id != short_id:
                        continue
                    result = render_one(post, inline_urls(post, attachments(post, store)),
                                        worker)
                    if result is None:
                        continue
                as_text = store.save_rendered(post, result.html, result.images,
                                              result.too_complex, quota)
                if as_text is not None:
                    done += 1
                    text += as_text
            summary.rendered[friend] = done
            summary.as_text[friend] = text
            summary.left[friend] = len(store.unrendered(friend))
    return summary


# ---------------------------------------------------------------- the child's side


def _serve(cpu_seconds: float, memory_bytes: int) -> None:
    """The child: read a job, render it within `cpu_seconds` of CPU time (SIGPROF's
    default action ends the process), answer, and again, until stdin closes."""
    import resource

    try:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    except (ValueError, OSError):
        pass  # a lower hard limit already: keep it
    signal.signal(signal.SIGPROF, signal.SIG_DFL)
    stdin, stdout = sys.stdin.fileno(), os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print cannot garble answers
    render_post("warm up")  # imports Markdown and nh3 before the first clock starts
    while True:
        try:
            job = json.loads(_read(stdin, None))
        except EOFError:
            return
        signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
        try:
            if "markdown" in job:
                safe = render_post(job["markdown"], job.get("attachments") or {})
            else:
                safe = sanitize_html(job["html"])
            answer: dict[str, Any] = {"html": safe.html, "images": list(safe.images)}
        except MemoryError:
            answer = {"error": "out of memory"}
        except Exception as e:  # a bug: this post is shown as text, the next one rendered
            answer = {"error": f"{type(e).__name__}"}
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
        _write(stdout, json.dumps(answer).encode(), None)


if __name__ == "__main__":
    _serve(float(sys.argv[1]), int(sys.argv[2]))
