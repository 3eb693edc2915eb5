"""The invitation vectors (PROTOCOL.md §2.7): the code against tests/vectors/
invitations.json, the file against an independent verifier (hashlib and libsodium's
low-level calls only), and the spec quoting the same values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

VECTORS = Path(__file__).parents[1] / "vectors"
sys.path.insert(0, str(VECTORS))

from make_invite_vectors import compute  # noqa: E402
from verify_invite_vectors import verify  # noqa: E402


def test_invitation_vectors_match_the_code():
    """The generator, run on today's code, writes exactly the stored vectors: a format
    change shows here first."""
    assert compute() == json.loads((VECTORS / "invitations.json").read_text())


def test_an_independent_verifier_computes_the_same_bytes():
    """Code that imports nothing of o2m derives the id and key, builds the invitation
    and the acceptance byte for byte, and opens the acceptance."""
    verify(json.loads((VECTORS / "invitations.json").read_text()))


def test_the_verifier_runs_on_its_own():
    """The verifier is a script a second implementation can run: no o2m on its path."""
    result = subprocess.run([sys.executable, "-I", str(VECTORS / "verify_invite_vectors.py")],
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr


def test_protocol_md_quotes_the_same_vectors():
    """§2.7's table quotes the file's values, so the spec and the code cannot drift."""
    protocol = (Path(__file__).parents[2] / "docs/PROTOCOL.md").read_text()
    expected = json.loads((VECTORS / "invitations.json").read_text())
    for key in ("invite_id", "invite_id_b64u", "box_key", "invitation_sha256",
                "acceptance_sha256"):
        assert expected[key] in protocol, key
    assert f"{expected['invitation_size']} bytes" in protocol
    assert f"{expected['acceptance_size']} bytes" in protocol
