"""The manifest's posts and outputs in one blob, for a build to read in one call.

A fresh `o2m build` reads the state of every post and every output before it knows
what changed: 10,000 posts and 14,000 pages on the benchmark site, about 60 ms as
SQLite rows (80,000 values fetched one by one, 10,000 small JSON documents). The same
state as columns in one `marshal` blob loads in a few milliseconds. The rows stay the
authority: the blob is an image of them that `manifest.Manifest` writes in the same
transaction as the rows, and reads only when its header says it is that image (this
format, the record's shape, the stamp the manifest recorded beside it, the number of
rows); anything else (absent, another version's, stale, damaged) is read from the rows.

Pure: bytes in, columns out; the manifest does the SQL.
"""

from __future__ import annotations

import json
import marshal

MAGIC = "o2m-planning"
FORMAT = 1
_MARSHAL_VERSION = 4
# what a posts' column holds, in order (the manifest's `sources` columns, the plan's
# fields parsed, and the record's JSON as stored)
SOURCE_COLUMNS = ("source", "mtime_ns", "size", "sha", "digest", "list_digest", "utc",
                  "path", "draft", "audience", "media", "record")
OUTPUT_COLUMNS = ("path", "digest", "sha", "size")


class BlobError(ValueError):
    """The blob is not the image this manifest expects (another version's, stale, or
    damaged): the build reads the rows instead."""


def encode(stamp: str, n_fields: int, sources: list[tuple], outputs: list[tuple]) -> bytes:
    """The blob of `sources` rows (source, mtime_ns, size, sha, digest, list_digest,
    plan, record) and `outputs` rows (path, sig, sha, size).

    Args:
        stamp: what the manifest records beside the blob (a blob with another stamp is
            stale).
        n_fields: the number of a record's fields (a blob of another shape is another
            version's).

    Raises:
        BlobError: a row's plan cannot be read (the rows then stay the only copy).
    """
    try:
        plans = json.loads("[" + ",".join(r[6] for r in sources) + "]")
    except ValueError:
        raise BlobError("a plan cannot be read") from None
    if any(type(p) is not list or len(p) != 6 or p[5] != n_fields for p in plans):
        raise BlobError("a plan of another shape")
    columns: list[tuple] = [tuple(r[i] for r in sources) for i in range(6)]
    columns += [tuple(p[0] for p in plans), tuple(p[1] for p in plans),
                tuple(p[2] for p in plans), tuple(tuple(p[3]) for p in plans),
                tuple(tuple(p[4]) for p in plans), tuple(r[7] for r in sources)]
    out_columns = [tuple(r[i] for r in outputs) for i in range(4)]
    header = (MAGIC, FORMAT, stamp, n_fields, len(sources), len(outputs))
    return marshal.dumps((header, tuple(columns), tuple(out_columns)), _MARSHAL_VERSION)


def decode(data: bytes, stamp: str, n_fields: int) -> tuple[list[tuple], list[tuple]]:
    """The posts' and outputs' columns (`SOURCE_COLUMNS`, `OUTPUT_COLUMNS`), each a
    tuple of one value per row, from a blob `encode` made with this stamp and shape.

    Raises:
        BlobError: anything else.
    """
    try:
        header, columns, out_columns = marshal.loads(data)
        magic, version, its_stamp, its_fields, n_sources, n_outputs = header
    except (EOFError, ValueError, TypeError):
        raise BlobError("damaged") from None
    if (magic, version, its_fields) != (MAGIC, FORMAT, n_fields):
        raise BlobError("another version's")
    if its_stamp != stamp:
        raise BlobError("stale")
    if (type(columns) is not tuple or len(columns) != len(SOURCE_COLUMNS)
            or type(out_columns) is not tuple or len(out_columns) != len(OUTPUT_COLUMNS)
            or any(type(c) is not tuple or len(c) != n_sources for c in columns)
            or any(type(c) is not tuple or len(c) != n_outputs for c in out_columns)):
        raise BlobError("damaged")
    return list(columns), list(out_columns)
