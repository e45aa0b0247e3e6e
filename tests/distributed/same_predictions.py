#!/usr/bin/env python3
"""Exits non-zero, naming the dataset, unless two predictions.h5 files hold exactly the same arrays.

    same_predictions.py A/predictions.h5 B/predictions.h5
Used by the preemption and Slurm tests: an interrupted and resumed run must equal an
uninterrupted one bit for bit.
"""
import sys

import h5py
import numpy as np

a, b = (h5py.File(path, "r") for path in sys.argv[1:3])
if set(a) != set(b):
    sys.exit(f"different datasets: {sorted(a)} vs {sorted(b)}")
for name in a:
    if not np.array_equal(a[name][()], b[name][()]):
        sys.exit(f"{name} differs")
