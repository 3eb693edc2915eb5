"""The child process that reads a Webmention source's microformats (`webmention.read_mf2`):
a JSON job on stdin (``html``, ``url``, ``target``), mf2util's ``interpret_comment`` of
it as JSON on stdout (``null`` when there is none). It limits itself before parsing:
CPU seconds, address space, recursion; the parent adds a wall-clock timeout and takes
any failure as "no microformats". Never fetches anything (no author page, no
``rel=author`` lookups): mf2util is given no fetch function.
"""

from __future__ import annotations

import json
import sys

CPU_SECONDS = 6
ADDRESS_SPACE = 1 << 30


def _limit() -> None:
    import resource
    for limit, value in ((resource.RLIMIT_CPU, CPU_SECONDS),
                         (resource.RLIMIT_AS, ADDRESS_SPACE)):
        try:
            soft, hard = resource.getrlimit(limit)
            cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(limit, (cap, hard))
        except (ValueError, OSError):
            pass
    sys.setrecursionlimit(3000)


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def main() -> int:
    _limit()
    job = json.loads(sys.stdin.buffer.read())
    import mf2py
    import mf2util

    parsed = mf2py.parse(doc=job["html"], url=job["url"], html_parser="html.parser")
    comment = mf2util.interpret_comment(parsed, job["url"], [job["target"]])
    sys.stdout.write(json.dumps(_jsonable(comment) if comment else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
