"""The protocol: the pure, byte-exact core that docs/PROTOCOL.md specifies.

Everything an independent implementation must reproduce lives here, one module per
part of the spec: `canonical` (§2.1 encodings), `keyfile` (§2.2 fingerprints, §2.3 the
sealed key file), `cards` (§2.4), `rotation` (§2.5), `invite` (§2.7: invitations and
acceptances), `feeds` (§3: objects, heads, pages, and the reader's acceptance rules),
`attachments` (§3.3: attachment names, which one a post's reference means, media types),
`post_limits` (§1.4, §3.3: the lengths and sizes a reader takes, which the writer keeps)
and `conversation` (§4: post references, reply and reaction statements, links, notices, the
thread tree).

No file, clock or network I/O: times, keys and nonces are passed in, bytes go in and
checked values (or an error) come out. This part imports nothing of o2m but `errors`;
`tests/test_architecture.py` keeps it so.
"""
