"""Where a post's render goes: CPU per post of each step, in one process.

    python bench/render_budget.py --site DIR/o2m [--posts 2000]

DIR is `bench/gen_site.py`'s output. The posts are read and rendered as a cold build's
workers render them (`sources.render_post`), without the code cache, twice (the first
pass warms the interpreter; the second is reported): the whole step, the Markdown
pipeline, each of its processors, the block parser and the serialiser, and Pygments
(the time inside `MarkdownRenderer.highlight`, which includes its lexers' first
compilation). CPU time (`time.process_time`), so other load on the machine matters
little.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

from o2m_pub.site import sources


def _timed(acc: dict[str, float], name: str, fn: Callable) -> Callable:
    def run(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        start = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[name] += time.process_time() - start
    return run


def _instrument(md, acc: dict[str, float]) -> None:  # noqa: ANN001 - a markdown.Markdown
    for kind, registry in (("pre", md.preprocessors), ("tree", md.treeprocessors),
                           ("post", md.postprocessors)):
        for item in registry._priority:  # noqa: SLF001 - the registry's names, in order
            processor = registry[item.name]
            processor.run = _timed(acc, f"{kind}:{item.name}", processor.run)
    md.parser.parseDocument = _timed(acc, "block parser", md.parser.parseDocument)
    md.serializer = _timed(acc, "serialiser", md.serializer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, required=True, help="gen_site.py's DIR/o2m")
    parser.add_argument("--posts", type=int, default=2000)
    args = parser.parse_args()
    root = args.site.resolve()
    posts = sorted(str(p.relative_to(root)) for p in (root / "content").rglob("*.md"))
    posts = posts[:args.posts]
    sources._init_worker(str(root), "UTC", ("public",), True)  # noqa: SLF001 - a worker's setup
    renderer = sources._worker["md"]  # noqa: SLF001
    renderer.code_cache = None  # a cold build's render: every block highlighted
    for source in posts:  # warm up: imports, lexers compiled once
        sources.render_post(source)
    from o2m_pub.site import markup
    markup.highlight.cache_clear()  # the timed pass highlights every block again

    acc: dict[str, float] = defaultdict(float)
    _instrument(renderer.md, acc)
    renderer.highlight = _timed(acc, "(Pygments, inside the fenced code step)",
                                renderer.highlight)
    renderer.render = _timed(acc, "Markdown pipeline", renderer.render)
    start = time.process_time()
    for source in posts:
        sources.render_post(source)
    total = time.process_time() - start

    n = len(posts)
    print(f"{n} posts of {root}: CPU per post, one process")
    print(f"  {'render_post, all of it':44s} {total / n * 1e6:7.0f} µs")
    outside = total - acc["Markdown pipeline"]
    print(f"  {'  reading, front matter, record, hash':44s} {outside / n * 1e6:7.0f} µs")
    for name, seconds in sorted(acc.items(), key=lambda kv: -kv[1]):
        print(f"  {'  ' + name:44s} {seconds / n * 1e6:7.0f} µs")


if __name__ == "__main__":
    main()
