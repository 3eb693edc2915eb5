"""The invitation vectors (PROTOCOL.md §2.7): the code against tests/vectors/
invitations.json, the file against an independent verifier (hashlib and libsodium's
low-level calls only), and the spec quoting the same values."""

from __future__ import annotations

import base64
import hashlib
import json
import re
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


def _table_row(section: str, label: str) -> str:
    """The value in backquotes of §2.7's table row whose first cell is `label`."""
    row = re.search(rf"^\| {re.escape(label)} \| `([^`]+)` \|$", section, re.MULTILINE)
    assert row is not None, label
    return row[1]


def test_each_table_row_of_the_spec_states_the_vectors_values():
    """§2.7's table, row by row: each size beside the digest it belongs to, and the
    acceptance's first 48 bytes (magic, invite_id, nonce) as the vectors have them,
    checked against the SHA-256 the table gives too."""
    protocol = (Path(__file__).parents[2] / "docs/PROTOCOL.md").read_text()
    section = protocol[protocol.index("### 2.7 Invitations"):protocol.index("## 3. ")]
    expected = json.loads((VECTORS / "invitations.json").read_text())
    acceptance = bytes.fromhex(expected["acceptance_hex"])
    assert (len(acceptance), hashlib.sha256(acceptance).hexdigest()) == \
        (expected["acceptance_size"], expected["acceptance_sha256"])
    first = bytes.fromhex(_table_row(section, "acceptance, first 48 bytes"))
    assert (len(first), first) == (48, acceptance[:48])
    assert first[:8] == b"O2MACPT1" and first[8:24].hex() == expected["invite_id"]
    assert first[24:] == bytes([0x0D]) * 24  # the nonce the text gives: 24 bytes of 0d
    size = expected["acceptance_size"]
    assert _table_row(section, f"acceptance, {size} bytes: SHA-256") == \
        expected["acceptance_sha256"]
    size = expected["invitation_size"]
    assert _table_row(section, f"invitation, {size} bytes: SHA-256") == \
        expected["invitation_sha256"]
    text = expected["invitation_text"][len("o2m1i:"):]
    invitation = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    assert (len(invitation), hashlib.sha256(invitation).hexdigest()) == \
        (size, expected["invitation_sha256"])
