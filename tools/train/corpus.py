#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
#
# The training corpus: the King James Bible from Debian's bible-kjv-text
# (public domain), extracted with the bible(1) program of bible-kjv.
#
#   corpus.py OUTDIR
#
# writes OUTDIR/train.txt and OUTDIR/heldout.txt: one verse per line, the
# reference ("Ge1:1 ") removed, a blank line between chapters.  Every 40th
# chapter (counting from the 8th) is held out whole, so held-out loss is
# measured on text the model never saw, not on neighbours of seen verses.
import os
import re
import subprocess
import sys

REF = re.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$")
HELDOUT_EVERY, HELDOUT_FIRST = 40, 7


def chapters():
    out = subprocess.run(["bible", "-f", "gen1:1-rev22:21"], stdin=subprocess.DEVNULL,
                         capture_output=True, check=True, text=True).stdout
    cur, verses = None, []
    for line in out.splitlines():
        m = REF.match(line)
        if not m:
            raise SystemExit("corpus.py: unexpected line from bible(1): %r" % line[:80])
        key = (m.group(1), m.group(2))
        if key != cur and verses:
            yield verses
            verses = []
        cur = key
        verses.append(m.group(4).strip())
    if verses:
        yield verses


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: corpus.py OUTDIR")
    os.makedirs(sys.argv[1], exist_ok=True)
    files = [open(os.path.join(sys.argv[1], n), "w") for n in ("train.txt", "heldout.txt")]
    n = [0, 0]
    for i, ch in enumerate(chapters()):
        held = i % HELDOUT_EVERY == HELDOUT_FIRST
        files[held].write("\n".join(ch) + "\n\n")
        n[held] += 1
    for f in files:
        f.close()
    if n[0] + n[1] != 1189:
        raise SystemExit("corpus.py: %d chapters, the KJV has 1189" % (n[0] + n[1]))
    print("corpus: %d chapters for training, %d held out" % tuple(n))


if __name__ == "__main__":
    main()
