#!/usr/bin/env python3
"""Rebuilds data/sample/ from the full dataset: a small real sample for tests and the quick start.

Per class: evenly spaced files from the sorted listing, plus a few byte-identical duplicate pairs
so that the duplicate audit has something real to find. Deterministic: same input, same sample.

    python3 tools/make_sample.py ../shared/data/brain-tumor-mri/Training data/sample/Training
"""
import hashlib
import shutil
import sys
from collections import defaultdict
from pathlib import Path

EVENLY_SPACED_PER_CLASS = 34
DUPLICATE_PAIRS_PER_CLASS = 3


def main(source: Path, destination: Path) -> None:
    if destination.exists():
        shutil.rmtree(destination)
    for class_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        files = sorted(p for p in class_dir.iterdir() if p.is_file())
        step = len(files) / EVENLY_SPACED_PER_CLASS
        chosen = {files[int(i * step)] for i in range(EVENLY_SPACED_PER_CLASS)}
        by_digest = defaultdict(list)
        for f in files:
            by_digest[hashlib.sha256(f.read_bytes()).hexdigest()].append(f)
        pairs = [group[:2] for _, group in sorted(by_digest.items()) if len(group) >= 2]
        for pair in pairs[:DUPLICATE_PAIRS_PER_CLASS]:
            chosen.update(pair)
        out = destination / class_dir.name
        out.mkdir(parents=True)
        for f in sorted(chosen):
            shutil.copy2(f, out / f.name)
        print(f"{class_dir.name}: {len(chosen)} images")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
