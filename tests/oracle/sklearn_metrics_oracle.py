#!/usr/bin/env python3
"""Writes random classification cases and scikit-learn's answers for them as JSON.

The C++ test (tests/unit/test_metrics_oracle.cpp) computes the same metrics and requires equality
to 1e-12. Cases include heavy ties (quantized scores), classes absent from the truth, classes never
predicted, and tiny evaluation sets.

    sklearn_metrics_oracle.py OUT.json [--cases N] [--seed S]
Exit code 77 when scikit-learn is not installed (the test then skips).
"""
import argparse
import json
import sys
import warnings

try:
    import numpy as np
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss, classification_report, log_loss, roc_auc_score, roc_curve
except ImportError as error:
    print(f"scikit-learn oracle unavailable: {error}", file=sys.stderr)
    sys.exit(77)


def finite_or_none(values):
    return [None if not np.isfinite(v) else float(v) for v in values]


def make_case(rng, index):
    k = int(rng.integers(2, 7))
    n = int(rng.choice([1, 2, 5, 17, 60, 250]))
    present = k if index % 4 else int(rng.integers(1, k + 1))  # every 4th case: some classes absent
    truth = rng.integers(0, present, size=n)
    scores = rng.dirichlet(np.ones(k), size=n)
    style = index % 3
    if style == 1:
        scores = np.round(scores, 1)  # many ties
    elif style == 2:
        scores = np.round(scores * 4) / 4  # very coarse scores, ties everywhere
    return k, truth, scores


def answer(k, truth, scores, names):
    predicted = scores.argmax(axis=1)
    labels = list(range(k))
    expected = {
        "report_text_2": classification_report(truth, predicted, labels=labels, target_names=names, digits=2,
                                               zero_division=0),
        "report_text_4": classification_report(truth, predicted, labels=labels, target_names=names, digits=4,
                                               zero_division=0),
        "report": classification_report(truth, predicted, labels=labels, target_names=names, output_dict=True,
                                        zero_division=0),
    }
    curves, aucs = [], []
    for c in range(k):
        positive = (truth == c).astype(int)
        fpr, tpr, thresholds = roc_curve(positive, scores[:, c])
        curves.append({"fpr": finite_or_none(fpr), "tpr": finite_or_none(tpr), "thresholds": finite_or_none(thresholds)})
        aucs.append(float(roc_auc_score(positive, scores[:, c])) if 0 < positive.sum() < len(positive) else None)
    expected["roc"] = curves
    expected["auc_per_class"] = aucs
    defined = [a for a in aucs if a is not None]
    sums_to_one = np.allclose(scores.sum(axis=1), 1.0)
    if k >= 3 and len(set(truth.tolist())) == k and sums_to_one:
        expected["macro_auc"] = float(roc_auc_score(truth, scores, multi_class="ovr", average="macro"))
    else:  # sklearn refuses these inputs; its macro is the mean of the per-class binary AUCs
        expected["macro_auc"] = float(np.mean(defined)) if defined else None
    # label_binarize gives one column for two classes; micro-averaging needs one per class.
    flat = (truth[:, None] == np.arange(k)[None, :]).astype(int).ravel()
    expected["micro_auc"] = float(roc_auc_score(flat, scores.ravel())) if 0 < flat.sum() < len(flat) else None
    return expected


def reliability(outcome, score, n_bins, strategy):
    """calibration_curve's bins, with the counts and the ECE/MCE written here from their definition."""
    prob_true, prob_pred = calibration_curve(outcome, score, n_bins=n_bins, strategy=strategy)
    edges = np.linspace(0.0, 1.0, n_bins + 1) if strategy == "uniform" else np.percentile(score, np.linspace(0, 1, n_bins + 1) * 100)
    counts = np.bincount(np.searchsorted(edges[1:-1], score), minlength=n_bins)
    counts = counts[counts != 0]
    gaps = np.abs(prob_true - prob_pred)
    return {"frequency": prob_true.tolist(), "mean_score": prob_pred.tolist(), "count": counts.tolist(),
            "ece": float(np.sum(counts / len(score) * gaps)), "mce": float(gaps.max())}


def calibration(k, truth, scores):
    """Reliability (top-label and per class, both binnings), Brier score and NLL."""
    out = {}
    predicted = scores.argmax(axis=1)
    confidence = scores[np.arange(len(truth)), predicted]
    for strategy in ("uniform", "quantile"):
        for n_bins in (5, 10):
            key = f"{strategy}_{n_bins}"
            out[key] = {"top": reliability((predicted == truth).astype(int), confidence, n_bins, strategy),
                        "classes": [reliability((truth == c).astype(int), scores[:, c], n_bins, strategy)
                                    for c in range(k)]}
    # Brier (1950) over the classes: the sum of the binary one-vs-rest scores.
    out["brier"] = float(sum(brier_score_loss((truth == c).astype(int), scores[:, c], pos_label=1)
                             for c in range(k)))
    if np.allclose(scores.sum(axis=1), 1.0, atol=1e-12, rtol=0):  # log_loss renormalizes other rows
        out["nll"] = float(log_loss(truth, scores, labels=list(range(k))))
    return out


def temperature_scaling(truth, scores):
    """Temperature scaling from its definition: softmax(log p / T), T minimizing the mean NLL
    (scipy's bounded scalar minimizer on log T), and the scaling at a fixed T to check the formula."""
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax
    logits = np.log(np.maximum(scores, 1e-12))

    def nll(log_t):
        return float(-log_softmax(logits / np.exp(log_t), axis=1)[np.arange(len(truth)), truth].mean())

    fit = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded",
                          options={"xatol": 1e-10})
    return {"temperature": float(np.exp(fit.x)), "nll": float(fit.fun),
            "scaled_at_1_7": np.exp(log_softmax(logits / 1.7, axis=1)).ravel().tolist()}


def delong_from_the_paper(positive, a, b):
    """DeLong's test of AUC(a) - AUC(b), written from Sun & Xu (2014): midranks, structural components."""
    from scipy.stats import norm, rankdata
    m, n = int(positive.sum()), int((1 - positive).sum())
    if m < 2 or n < 2:
        return None
    v10, v01, aucs = [], [], []
    for scores in (a, b):
        x, y = scores[positive == 1], scores[positive == 0]
        tx, ty, tz = rankdata(x), rankdata(y), rankdata(np.concatenate([x, y]))
        aucs.append((tz[:m].sum() - m * (m + 1) / 2) / (m * n))
        v10.append((tz[:m] - tx) / n)
        v01.append(1 - (tz[m:] - ty) / m)
    s10, s01 = np.cov(np.array(v10)), np.cov(np.array(v01))
    variance = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    difference = aucs[0] - aucs[1]
    if variance <= 0:
        return {"auc_a": aucs[0], "auc_b": aucs[1], "difference": difference, "p_value": 1.0 if difference == 0 else None}
    z = difference / np.sqrt(variance)
    return {"auc_a": aucs[0], "auc_b": aucs[1], "difference": difference, "standard_error": float(np.sqrt(variance)),
            "z": float(z), "p_value": float(2 * norm.sf(abs(z)))}


def significance(rng, k, truth, scores):
    """A second model's scores for the same images, then DeLong per class, McNemar and Holm."""
    other = 0.5 * scores + 0.5 * rng.dirichlet(np.ones(k), size=len(truth))
    if len(truth) % 2:
        other = np.round(other, 1)  # ties between and within the models
    out = {"probabilities_b": other.ravel().tolist(), "delong": []}
    for c in range(k):
        positive = (truth == c).astype(int)
        test = delong_from_the_paper(positive, scores[:, c], other[:, c])
        if test is not None and 0 < positive.sum() < len(positive):
            test["sklearn_auc_a"] = float(roc_auc_score(positive, scores[:, c]))
            test["sklearn_auc_b"] = float(roc_auc_score(positive, other[:, c]))
        out["delong"].append(test)
    try:
        from statsmodels.stats.contingency_tables import mcnemar
        from statsmodels.stats.multitest import multipletests
    except ImportError:
        return out
    a_right, b_right = scores.argmax(axis=1) == truth, other.argmax(axis=1) == truth
    table = [[int(np.sum(a_right & b_right)), int(np.sum(a_right & ~b_right))],
             [int(np.sum(~a_right & b_right)), int(np.sum(~a_right & ~b_right))]]
    out["mcnemar_p"] = float(mcnemar(table, exact=True).pvalue)
    p_values = [t["p_value"] for t in out["delong"] if t is not None and t.get("p_value") is not None]
    if p_values:
        out["holm_input"] = p_values
        out["holm"] = multipletests(p_values, method="holm")[1].tolist()
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    warnings.simplefilter("ignore")
    cases = []
    for index in range(args.cases):
        k, truth, scores = make_case(rng, index)
        names = [f"class_{c}" if c % 2 else f"c{c}" for c in range(k)]
        cases.append({"class_count": k, "names": names, "truth": truth.tolist(),
                      "probabilities": scores.ravel().tolist(), "expected": answer(k, truth, scores, names),
                      "calibration": calibration(k, truth, scores),
                      "temperature": temperature_scaling(truth, scores),
                      "significance": significance(rng, k, truth, scores)})
    with open(args.out, "w") as f:
        json.dump({"cases": cases}, f)


if __name__ == "__main__":
    main()
