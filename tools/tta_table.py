#!/usr/bin/env python3
"""The effect of test-time augmentation on a cross-validation's out-of-fold predictions (results/tta/).

Each SETTING=DIR holds fold-K/predictions.h5 written by `brainmri evaluate --fold K --tta ...` with
each fold's own model; the folds are pooled (every image once) and compared with the first setting
on the same images: accuracy, macro-F1, macro AUC (scikit-learn), NLL, and McNemar's exact test
(statsmodels) on the images where the two settings disagree.

    python3 tools/tta_table.py none=eval/none flip=eval/flip flip+rot=eval/flip+rot
"""
import json
import pathlib
import sys

import h5py
import numpy as np
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score
from statsmodels.stats.contingency_tables import mcnemar


def pooled(directory: pathlib.Path):
    ids, labels, probabilities = [], [], []
    for fold in sorted(directory.glob("fold-*")):
        with h5py.File(fold / "predictions.h5") as f:
            ids.append(f["sample_ids"][:])
            labels.append(f["labels"][:])
            probabilities.append(f["probabilities"][:])
    ids = np.concatenate(ids)
    order = np.argsort(ids)
    return ids[order], np.concatenate(labels)[order], np.concatenate(probabilities)[order]


def main():
    settings = [arg.split("=", 1) for arg in sys.argv[1:]]
    rows = ["| test-time augmentation | views | accuracy | macro-F1 | macro AUC | NLL | vs " + settings[0][0] +
            ": accuracy (McNemar p) |", "|---|---|---|---|---|---|---|"]
    reference = None
    numbers = {}
    for name, directory in settings:
        ids, labels, p = pooled(pathlib.Path(directory))
        predicted = p.argmax(axis=1)
        correct = predicted == labels
        if reference is None:
            reference = (ids, correct)
        assert np.array_equal(ids, reference[0]), f"{name} predicts other images than {settings[0][0]}"
        only_this = int(np.sum(correct & ~reference[1]))
        only_reference = int(np.sum(~correct & reference[1]))
        p_value = 1.0 if only_this + only_reference == 0 else float(
            mcnemar([[0, only_this], [only_reference, 0]], exact=True).pvalue)
        views = {"none": 1, "flip": 2, "flip+rot": 6}.get(name, "?")
        row = {"images": int(len(ids)), "accuracy": float(accuracy_score(labels, predicted)),
               "macro_f1": float(f1_score(labels, predicted, average="macro")),
               "macro_auc": float(roc_auc_score(labels, p, multi_class="ovr", average="macro")),
               "nll": float(log_loss(labels, p, labels=list(range(p.shape[1])))),
               "only_this_correct": only_this, "only_reference_correct": only_reference, "mcnemar_p": p_value}
        numbers[name] = row
        versus = "—" if name == settings[0][0] else \
            f"{(row['accuracy'] - numbers[settings[0][0]]['accuracy']) * 100:+.2f} pt (p = {p_value:.3g})"
        rows.append(f"| {name} | {views} | {row['accuracy']:.4f} | {row['macro_f1']:.4f} | {row['macro_auc']:.4f} | "
                    f"{row['nll']:.4f} | {versus} |")
    print("\n".join(rows))
    print("\n" + json.dumps(numbers, indent=2))


if __name__ == "__main__":
    main()
