#!/usr/bin/env python3
"""The leakage study's table, from the cross-validations themselves (results/leakage/).

Reads each run's cv_summary.json (accuracy, macro-F1, macro AUC across folds, with the logit-scale
t-intervals brainmri writes) and out_of_fold/predictions.h5, and the packed dataset's manifest.json
(the audit's duplicate groups: exact and near copies). Every image has one out-of-fold prediction
under every rule, so the rules are compared on the same images:

- inflation: a rule's pooled out-of-fold accuracy minus the leakage-free (group) one, with McNemar's
  exact test on the images where the two disagree (statsmodels);
- the images that *can* leak under a rule: those with a copy (same duplicate group) in another fold,
  i.e. among the images their fold model trained on. Their accuracy under that rule against the
  same images' accuracy under group folds is where the leak shows.

    python3 tools/leakage_table.py DATASET group=runs/leakage/group random=runs/leakage/random ...
Prints Markdown; --json FILE also writes the numbers.
"""
import argparse
import json
import pathlib

import h5py
import numpy as np
from statsmodels.stats.contingency_tables import mcnemar


def out_of_fold(run: pathlib.Path):
    """Sample id -> (fold index, label, predicted class) from the folds' validation predictions."""
    summary = json.loads((run / "cv_summary.json").read_text())
    rows = {}
    for fold in summary["folds"]:
        with h5py.File(run / fold["fold"] / "validation" / "predictions.h5") as f:
            for sample, label, p in zip(f["sample_ids"][:], f["labels"][:], f["probabilities"][:]):
                rows[int(sample)] = (fold["fold"], int(label), int(np.argmax(p)))
    return summary, rows


def interval(block):
    return f"{block['mean']:.4f} [{block['ci95_low']:.4f}, {block['ci95_high']:.4f}]"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", type=pathlib.Path)
    parser.add_argument("runs", nargs="+", help="NAME=RUN_DIRECTORY; the first is the leakage-free reference")
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    manifest = json.loads((args.dataset / "manifest.json").read_text())
    group_of = {}
    for index, group in enumerate(manifest["duplicate_groups"]):
        for member in group["members"]:
            group_of[member] = index
    members = {index: g["members"] for index, g in enumerate(manifest["duplicate_groups"])}

    runs = []
    for spec in args.runs:
        name, path = spec.split("=", 1)
        summary, rows = out_of_fold(pathlib.Path(path))
        runs.append((name, summary, rows))
    reference_name, _, reference = runs[0]
    samples = sorted(reference)
    for name, _, rows in runs:
        assert sorted(rows) == samples, f"{name} does not predict the same images as {reference_name}"

    def correct(rows, ids):
        return np.array([rows[i][2] == rows[i][1] for i in ids])

    table = ["| folds by | accuracy across folds [95% CI] | macro-F1 across folds [95% CI] | macro AUC across folds "
             "[95% CI] | pooled out-of-fold accuracy | inflation vs group (McNemar p) | images with a copy in "
             "their training folds | their accuracy: this rule / group folds |",
             "|---|---|---|---|---|---|---|---|"]
    numbers = {}
    reference_correct = correct(reference, samples)
    for name, summary, rows in runs:
        this_correct = correct(rows, samples)
        only_this = int(np.sum(this_correct & ~reference_correct))
        only_reference = int(np.sum(~this_correct & reference_correct))
        p_value = 1.0 if only_this + only_reference == 0 else float(
            mcnemar([[0, only_this], [only_reference, 0]], exact=True).pvalue)
        # Images whose duplicate group has a member in another fold under this rule.
        leaky = [i for i in samples if i in group_of and
                 any(rows[m][0] != rows[i][0] for m in members[group_of[i]] if m in rows)]
        leaky_accuracy = float(np.mean(correct(rows, leaky))) if leaky else float("nan")
        leaky_reference = float(np.mean(correct(reference, leaky))) if leaky else float("nan")
        pooled = float(np.mean(this_correct))
        inflation = pooled - float(np.mean(reference_correct))
        numbers[name] = {"accuracy": summary["accuracy"], "macro_f1": summary["macro_f1"],
                         "macro_auc": summary["macro_auc"], "pooled_accuracy": pooled, "inflation": inflation,
                         "only_this_correct": only_this, "only_reference_correct": only_reference,
                         "mcnemar_p": p_value, "images_with_copy_in_training": len(leaky),
                         "their_accuracy": leaky_accuracy, "their_accuracy_under_reference": leaky_reference}
        versus = "—" if name == reference_name else f"{inflation * 100:+.2f} pt (p = {p_value:.3g})"
        their = "—" if not leaky else f"{leaky_accuracy:.4f} / {leaky_reference:.4f}"
        table.append(f"| {name} | {interval(summary['accuracy'])} | {interval(summary['macro_f1'])} | "
                     f"{interval(summary['macro_auc'])} | {pooled:.4f} | {versus} | {len(leaky)} | {their} |")
    print("\n".join(table))
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")


if __name__ == "__main__":
    main()
