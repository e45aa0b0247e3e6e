#!/usr/bin/env python3
"""Chooses the near-duplicate threshold from real data.

Reads the perceptual hashes, content hashes and labels of a dataset packed by brainmri-prep and
prints, for each Hamming-distance threshold, how many image pairs it matches, how many of those
pairs carry different labels (a proxy for false matches: copies of one image share a label, and
this dataset has no exact duplicate across classes), and the duplicate groups that union-find
builds from them (chaining makes groups grow much faster than pairs).

    python3 tools/analyze_near_duplicates.py /path/to/packed-dataset [max_bits]
"""
import glob
import os
import sys

import h5py
import numpy as np


def load(directory):
    phash, content, labels = [], [], []
    for shard in sorted(glob.glob(os.path.join(directory, "shard-*.h5"))):
        with h5py.File(shard, "r") as f:
            phash.append(f["phash"][:])
            content.append(f["content_hash"][:])
            labels.append(f["labels"][:])
    return np.concatenate(phash), np.concatenate(content), np.concatenate(labels)


def groups_at(threshold, distance, identical, labels):
    n = len(labels)
    parent = np.arange(n)

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    rows, cols = np.nonzero(np.triu((distance <= threshold) | identical, 1))
    for i, j in zip(rows, cols):
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    roots = np.array([find(i) for i in range(n)])
    ids, sizes = np.unique(roots, return_counts=True)
    multi = ids[sizes > 1]
    conflicts = sum(len(set(labels[roots == g])) > 1 for g in multi)
    return len(multi), int((sizes[sizes > 1] - 1).sum()), int(sizes.max()), conflicts


def main():
    directory = sys.argv[1]
    max_bits = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    phash, content, labels = load(directory)
    n = len(labels)
    bits = np.unpackbits(phash.astype(">u8").view(np.uint8).reshape(n, 8), axis=1).astype(np.uint8)
    distance = np.zeros((n, n), dtype=np.uint8)
    for b in range(64):  # column by column keeps memory at n*n bytes
        distance += bits[:, b][:, None] != bits[:, b][None, :]
    identical = content[:, None] == content[None, :]
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    cross_label = labels[:, None] != labels[None, :]
    print(f"{n} images; {int((identical & upper).sum())} byte-identical pairs (content hash)\n")
    print("| bits | pairs matched (not identical) | of which cross-label | groups | redundant images | largest group | groups with label conflict |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for t in range(max_bits + 1):
        matched = (distance <= t) & ~identical & upper
        pairs = int(matched.sum())
        crossing = int((matched & cross_label).sum())
        groups, redundant, largest, conflicts = groups_at(t, distance, identical, labels)
        share = f" ({100.0 * crossing / pairs:.1f}%)" if pairs else ""
        print(f"| {t} | {pairs} | {crossing}{share} | {groups} | {redundant} | {largest} | {conflicts} |")


if __name__ == "__main__":
    main()
