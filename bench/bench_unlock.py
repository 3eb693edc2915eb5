#!/usr/bin/env python3
"""How long unlocking keys/identity.secret takes with each set of Argon2id limits.

    python bench/bench_unlock.py [--repeat 3]

DESIGN.md asks for MODERATE-class limits that unlock in under a second; this measures
`keys.open_identity` (Argon2id + AEAD, i.e. what `load_identity` costs apart from one
small read) for the module defaults and libsodium's named limits, and prints the
median of --repeat runs. SENSITIVE is also the most a reader accepts from a header
(PROTOCOL.md §2.3), so its time is the worst a hostile key file can cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from nacl.pwhash import argon2id

from o2m_pub.protocol.keyfile import (
    DEFAULT_MEMLIMIT,
    DEFAULT_OPSLIMIT,
    Identity,
    open_identity,
    seal_identity,
)

LIMITS = [
    ("default", DEFAULT_OPSLIMIT, DEFAULT_MEMLIMIT),
    ("INTERACTIVE", argon2id.OPSLIMIT_INTERACTIVE, argon2id.MEMLIMIT_INTERACTIVE),
    ("MODERATE", argon2id.OPSLIMIT_MODERATE, argon2id.MEMLIMIT_MODERATE),
    ("SENSITIVE (reader cap)", argon2id.OPSLIMIT_SENSITIVE, argon2id.MEMLIMIT_SENSITIVE),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    identity, passphrase = Identity.generate(), b"benchmark passphrase"
    print(f"{'limits':<24} {'opslimit':>8} {'memlimit':>10} {'unlock (median)':>16}  runs")
    for name, ops, mem in LIMITS:
        sealed = seal_identity(identity, passphrase, salt=os.urandom(16), nonce=os.urandom(24),
                               opslimit=ops, memlimit=mem)
        runs = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            open_identity(sealed, passphrase)
            runs.append(time.perf_counter() - start)
        print(f"{name:<24} {ops:>8} {mem >> 20:>6} MiB {statistics.median(runs):>14.3f} s  "
              + " ".join(f"{r:.3f}" for r in runs))


if __name__ == "__main__":
    main()
