"""The code against the test vectors that PROTOCOL.md quotes (fixed keys and nonces ->
exact bytes), so an accidental format change fails here first."""

from __future__ import annotations

import json
import sys
from pathlib import Path

VECTORS = Path(__file__).parents[1] / "vectors"
sys.path.insert(0, str(VECTORS))

from make_feed_vectors import compute  # noqa: E402


def test_feed_vectors_match_the_code():
    assert compute() == json.loads((VECTORS / "feeds.json").read_text())


def test_protocol_md_quotes_the_same_vectors():
    """§3.6 quotes every value of feeds.json: the derived secrets, the hashes, the head's
    body (and its length) and signature, and both padding tables."""
    protocol = (Path(__file__).parents[2] / "docs/PROTOCOL.md").read_text()
    expected = json.loads((VECTORS / "feeds.json").read_text())
    for key in ("feed_name", "head_key", "object_sha256", "head_sha256", "head_body",
                "head_signature"):
        assert expected[key] in protocol, key
    assert f"Its body (§3.4), {len(expected['head_body'].encode())} bytes:" in protocol
    for key in ("buckets", "padded_lengths"):
        row = ", ".join(f"{n} → {size}" for n, size in expected[key].items())
        assert f"| {row} |" in protocol, key
