#!/usr/bin/env python3
"""Reference packer for the benchmark: the same job as brainmri-prep, written the usual Python way.

Pillow decodes, converts to grayscale and resizes (box filter = area averaging) to SIZE x SIZE;
NumPy quantizes and computes a DCT perceptual hash; hashlib hashes the decoded pixels; a
multiprocessing pool of WORKERS processes does all of that in parallel, and the main process
writes the images with h5py, one chunk per image, shuffle + gzip level 4 (the same filters and
level as brainmri-prep's default), into stratified shards.

    reference_packer.py ROOT OUT_DIR [--workers N] [--size 128] [--shards 2]
"""
import argparse
import hashlib
import os
import sys
from multiprocessing import Pool
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

SIZE = 128


def dct_matrix(n):
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


DCT32 = dct_matrix(32)


def perceptual_hash(gray_u8):
    small = np.asarray(Image.fromarray(gray_u8).resize((32, 32), Image.BILINEAR), dtype=np.float64)
    coefficients = DCT32 @ small @ DCT32.T
    block = coefficients[:8, :8].ravel()
    bits = block > block.mean()
    return int(np.packbits(bits).view(">u8")[0])


def process(job):
    path, label = job
    try:
        with Image.open(path) as image:
            image.load()
            decoded = np.asarray(image)
            content = hashlib.sha256(np.array(decoded.shape, np.int32).tobytes() + decoded.tobytes()).hexdigest()
            gray = image.convert("L").resize((SIZE, SIZE), Image.BOX)
        pixels = np.asarray(gray, dtype=np.uint8)
        return path, label, pixels, content, perceptual_hash(pixels), None
    except Exception as error:  # a rejected input, as brainmri-prep would list it
        return path, label, None, None, None, str(error)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("out")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--shards", type=int, default=2)
    args = parser.parse_args()
    global SIZE
    SIZE = args.size

    classes = sorted(p.name for p in Path(args.root).iterdir() if p.is_dir())
    jobs = [(str(f), c) for c, name in enumerate(classes) for f in sorted((Path(args.root) / name).iterdir())]
    shards = [[] for _ in range(args.shards)]
    for i, job in enumerate(sorted(jobs, key=lambda j: j[1])):  # stratified round robin
        shards[i % args.shards].append(job)

    os.makedirs(args.out, exist_ok=False)
    rejected = 0
    with Pool(args.workers) as pool:
        for index, members in enumerate(shards):
            path = os.path.join(args.out, f"shard-{index:05d}-of-{args.shards:05d}.h5")
            with h5py.File(path, "w") as f:
                images = f.create_dataset("images", shape=(len(members), SIZE, SIZE, 1), maxshape=(None, SIZE, SIZE, 1),
                                          dtype=np.uint8, chunks=(1, SIZE, SIZE, 1), shuffle=True,
                                          compression="gzip", compression_opts=4)
                labels, hashes, phashes = [], [], []
                row = 0
                for _, label, pixels, content, phash, error in pool.imap(process, members, chunksize=16):
                    if error:
                        rejected += 1
                        continue
                    images[row] = pixels[:, :, None]
                    labels.append(label)
                    hashes.append(content)
                    phashes.append(phash)
                    row += 1
                images.resize(row, axis=0)
                f["labels"] = np.array(labels, np.int32)
                f["content_hash"] = np.array(hashes, dtype="S64")
                f["phash"] = np.array(phashes, np.uint64)
    print(f"packed {sum(len(s) for s in shards) - rejected} images, rejected {rejected}", file=sys.stderr)


if __name__ == "__main__":
    main()
