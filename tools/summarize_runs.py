#!/usr/bin/env python3
"""Print a Markdown table of the validation metrics of brainmri run directories.

The numbers in results/ tables come from here, read from each run's validation/metrics.json and
train_log.jsonl, so that no figure is typed by hand.

    python3 tools/summarize_runs.py results/train/baseline_cnn results/train/mobilenet_v2_finetune
"""
import json
import pathlib
import sys


def interval(ci):
    return f"{ci['estimate']:.4f} [{ci['low']:.4f}, {ci['high']:.4f}]"


def summarize(run: pathlib.Path):
    metrics = json.loads((run / "validation" / "metrics.json").read_text())
    epochs = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines() if line.strip()]
    per_stage = {}
    for record in epochs:
        per_stage.setdefault(record["stage"], []).append(record)
    stages = ", ".join(f"{name} {len(records)}" for name, records in per_stage.items())
    seconds = sum(r["seconds"] for r in epochs)
    auc = " / ".join(f"{metrics['per_class'][c]['auc']:.3f}" for c in metrics["class_names"])
    return (f"| `{run.name}` | {metrics['context']['model']} | {stages} | {interval(metrics['accuracy_95ci'])} | "
            f"{interval(metrics['macro_f1_95ci'])} | {interval(metrics['macro_auc_95ci'])} | {auc} | "
            f"{seconds / 60:.0f} min |")


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    runs = [pathlib.Path(a) for a in argv[1:]]
    class_names = json.loads((runs[0] / "validation" / "metrics.json").read_text())["class_names"]
    print("| run | model | epochs per stage | accuracy [95% CI] | macro-F1 [95% CI] | macro AUC [95% CI] | "
          f"AUC {' / '.join(class_names)} | training time |")
    print("|---|---|---|---|---|---|---|---|")
    for run in runs:
        print(summarize(run))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
