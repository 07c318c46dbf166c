#!/usr/bin/env python3
"""Shares of frames in a collapsed-stack file: the figures quoted in flamegraphs/README.md.

Usage: flamegraphs/share.py edge-bulk.folded.gz FRAME [FRAME ...]
  FRAME matches a stack frame that contains it (`malloc` matches `__libc_malloc`);
  prefix it with `=` to match a frame exactly.
Prints, per FRAME, the inclusive share (samples whose stack holds a matching frame) and the
self share (samples whose leaf frame matches), in percent of all samples in the file; then
the share of each thread (the first frame of every stack).
"""

import gzip
import sys
from collections import Counter


def matches(pattern: str, frame: str) -> bool:
    return frame == pattern[1:] if pattern.startswith("=") else pattern in frame


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    path, patterns = sys.argv[1], sys.argv[2:]
    opener = gzip.open if path.endswith(".gz") else open
    total, inclusive, own, threads = 0, Counter(), Counter(), Counter()
    with opener(path, "rt") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            n = int(count)
            frames = stack.split(";")
            total += n
            threads[frames[0]] += n
            for p in patterns:
                if any(matches(p, fr) for fr in frames):
                    inclusive[p] += n
                if matches(p, frames[-1]):
                    own[p] += n
    if total == 0:
        sys.exit(f"{path}: no samples")
    print(f"{'frame':<40} {'inclusive %':>12} {'self %':>8}")
    for p in patterns:
        print(f"{p:<40} {100 * inclusive[p] / total:>12.1f} {100 * own[p] / total:>8.1f}")
    print("threads: " + ", ".join(f"{t} {100 * n / total:.1f} %" for t, n in threads.most_common()))


if __name__ == "__main__":
    main()
