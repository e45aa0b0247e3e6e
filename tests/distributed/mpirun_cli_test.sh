#!/usr/bin/env bash
# `mpirun -np 2 brainmri train` end to end on the bundled sample: a clean run, a rank that
# throws, a rank that hangs, a rank that dies, and ranks started with different options. Each
# failing job must end on its own (well within `timeout`), non-zero, naming the failing rank.
# Then `brainmri cv` and `brainmri tune` over 3 folds, each interrupted and resumed.
#
# usage: mpirun_cli_test.sh BRAINMRI BRAINMRI_PREP SAMPLE_DIR MPIEXEC WORK_DIR
set -uo pipefail
brainmri=$1 prep=$2 sample=$3 mpiexec=$4 work=$5
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

rm -rf "$work" && mkdir -p "$work"
"$prep" --out "$work/data" --folds 5 --seed 1 "$sample/Training" >"$work/prep.log" 2>&1 || { cat "$work/prep.log"; exit 1; }
common=(--data "$work/data" --epochs 1 --threads-per-rank 1 --comm-timeout 5 --explanation-check false)

# run NAME EXPECTED_EXIT [mpiexec args...]: runs the job under a hard limit, keeps its output.
run() {
  local name=$1 expected=$2; shift 2
  local started=$SECONDS
  timeout 120 "$mpiexec" "$@" >"$work/$name.out" 2>&1
  local code=$?
  echo "$name: exit $code after $((SECONDS - started)) s"
  if [[ $code == 124 ]]; then fail "$name hung (killed by timeout)"; return; fi
  if [[ $expected == nonzero && $code == 0 ]] || [[ $expected != nonzero && $code != "$expected" ]]; then
    fail "$name: exit $code, expected $expected"; sed 's/^/    /' "$work/$name.out" >&2
  fi
}
expect_output() {  # expect_output NAME TEXT
  grep -qF -- "$2" "$work/$1.out" || { fail "$1: output lacks '$2'"; sed 's/^/    /' "$work/$1.out" >&2; }
}

common+=(--batch-size 8)
# Synchronized batch norm through the CLI (MobileNetV2 has batch norm; the baseline CNN has none).
run sync_bn 0 -n 2 "$brainmri" train "${common[@]}" --output "$work/sync_bn" --model mobilenet_v2 --width 0.35 --sync-bn
run clean 0 -n 2 "$brainmri" train "${common[@]}" --output "$work/clean"
[[ $(grep -c "Training baseline_cnn" "$work/clean.out") == 1 ]] || fail "clean: expected one console (rank 0's)"
expect_output clean "2 ranks (mpi), global batch 16"
grep -q '"ranks": 2' "$work/clean/validation/metrics.json" || fail "clean: metrics.json does not record 2 ranks"
[[ -f "$work/clean/model.pt" && -f "$work/clean/config.ini" ]] || fail "clean: rank 0 did not write the run's files"

# Determinism: the same seed and world size give the same metrics, bit for bit.
run clean_again 0 -n 2 "$brainmri" train "${common[@]}" --output "$work/clean_again"
metrics_of() { grep -o '"\(train_loss\|train_accuracy\|val_loss\|val_accuracy\|val_macro_f1\|val_macro_auc\)":[^,}]*' "$1/train_log.jsonl"; }
[[ "$(metrics_of "$work/clean")" == "$(metrics_of "$work/clean_again")" && -n "$(metrics_of "$work/clean")" ]] ||
  fail "two identical 2-rank runs gave different metrics"
python3 - "$work/clean/validation/metrics.json" "$work/clean_again/validation/metrics.json" <<'PY' ||
import json, sys
a, b = (json.load(open(path)) for path in sys.argv[1:])
for m in (a, b):
    m.pop("context")  # names the run directory
sys.exit(a != b)
PY
  fail "two identical 2-rank runs wrote different validation/metrics.json"

run throws nonzero -n 2 "$brainmri" train "${common[@]}" --output "$work/throws" --inject-fault throw:1:2
expect_output throws "[rank 1/2] brainmri train: error: injected failure"

run hangs nonzero -n 2 "$brainmri" train "${common[@]}" --output "$work/hangs" --inject-fault hang:1:2
expect_output hangs "did not complete within 5.0 s (the communication timeout, comm-timeout); ranks that never arrived: 1"

run dies nonzero -n 2 "$brainmri" train "${common[@]}" --output "$work/dies" --inject-fault exit:1:2

run mismatch 2 -n 1 "$brainmri" train "${common[@]}" --output "$work/mismatch" --lr 0.001 : \
                -n 1 "$brainmri" train "${common[@]}" --output "$work/mismatch" --lr 0.002
expect_output mismatch "the configuration differs between ranks"
expect_output mismatch "rank 1: lr = 0.002"

# A set-up error on one rank only (its config file is missing): every rank stops, none hangs.
run one_rank_setup 2 -n 1 "$brainmri" train "${common[@]}" --output "$work/one_rank_setup" : \
                     -n 1 "$brainmri" train "${common[@]}" --output "$work/one_rank_setup" --config "$work/missing.ini"
expect_output one_rank_setup "[rank 1/2] brainmri train: cannot read --config"
expect_output one_rank_setup "1 rank(s) failed to start"

# brainmri cv: 3 folds shared by 2 ranks, each sample predicted exactly once out of fold.
"$prep" --out "$work/data3" --folds 3 --seed 1 "$sample/Training" >"$work/prep3.log" 2>&1 || { cat "$work/prep3.log"; exit 1; }
cv=(--data "$work/data3" --epochs 2 --batch-size 8 --threads-per-rank 1 --comm-timeout 20 --explanation-check false)
journal_count() { grep -c "\"state\":\"$2\"" "$1/journal.jsonl" || true; }
run cv 0 -n 2 "$brainmri" cv "${cv[@]}" --output "$work/cv"
python3 - "$work/cv/cv_summary.json" "$work/data3/manifest.json" <<'PY' || fail "cv: summary incomplete"
import json, sys
summary, manifest = (json.load(open(p)) for p in sys.argv[1:])
assert len(summary["folds"]) == 3 and not summary["failed"], summary
assert summary["out_of_fold"]["samples"] == 154, summary["out_of_fold"]
assert summary["accuracy"]["folds"] == 3 and summary["accuracy"]["std"] is not None
PY
[[ $(journal_count "$work/cv" finished) == 3 && $(journal_count "$work/cv" running) == 3 ]] || fail "cv: journal is not 3 runs, 3 results"
# The folds the CV validated on keep duplicate groups together and the classes balanced.
python3 - "$work/cv" "$work/data3/manifest.json" <<'PY' || fail "cv: folds split a duplicate group or unbalance the classes"
import collections, h5py, json, sys, pathlib
d, manifest = pathlib.Path(sys.argv[1]), json.load(open(sys.argv[2]))
fold_of = {}
for k in range(3):
    for sample in h5py.File(d / f"fold-{k}/validation/predictions.h5")["sample_ids"][:]:
        fold_of[int(sample)] = k
for group in manifest["duplicate_groups"]:
    assert len({fold_of[m] for m in group["members"] if m in fold_of}) <= 1, group
labels = {}
for k in range(3):
    f = h5py.File(d / f"fold-{k}/validation/predictions.h5")
    labels[k] = collections.Counter(int(l) for l in f["labels"][:])
for c in range(4):
    counts = [labels[k][c] for k in range(3)]
    assert max(counts) - min(counts) <= 3, (c, counts)
PY
# The same command again: nothing is rerun.
run cv_again 0 -n 2 "$brainmri" cv "${cv[@]}" --output "$work/cv"
[[ $(journal_count "$work/cv" running) == 3 ]] || fail "cv: the rerun started finished folds again"

# Killed midway (rank 1 dies in the second epoch of its first fold), then resumed: the same
# results as the uninterrupted run above.
run cv_killed nonzero -n 2 "$brainmri" cv "${cv[@]}" --output "$work/cv_resumed" --inject-fault exit:1:16
run cv_resumed 0 -n 2 "$brainmri" cv "${cv[@]}" --output "$work/cv_resumed"
[[ $(journal_count "$work/cv_resumed" interrupted) -ge 1 ]] || fail "cv: no fold was recorded as interrupted"
expect_output cv_resumed "Resumed train from"
python3 - "$work/cv/cv_summary.json" "$work/cv_resumed/cv_summary.json" <<'PY' || fail "cv: resumed results differ from uninterrupted ones"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
strip = lambda s: ({f["fold"]: (f["accuracy"], f["macro_f1"], f["macro_auc"]) for f in s["folds"]}, s["out_of_fold"])
assert strip(a) == strip(b), (strip(a), strip(b))
PY

# brainmri tune: a 3-fold x 6-trial ASHA search on 2 ranks (one job per rank): 6 trials on the
# 1-epoch rung, the best 2 go on to 3 epochs from their checkpoints.
tune=(--data "$work/data3" --epochs 3 --min-epochs 1 --reduction-factor 3 --trials 6 --algorithm asha
      --batch-size 8 --filters "8,16,32" --threads-per-rank 1 --comm-timeout 20 --ranks-per-job 1 --explanation-check false
      --search 'lr: loguniform 1e-4 1e-2' --search 'dropout: uniform 0.2 0.6' --search 'dense-units: choice 32 64')
run tune 0 -n 2 "$brainmri" tune "${tune[@]}" --output "$work/tune"
python3 - "$work/tune" <<'PY' || fail "tune: trials table or best config incomplete"
import csv, json, sys, pathlib
d = pathlib.Path(sys.argv[1])
rows = list(csv.DictReader(open(d / "trials.csv")))
assert len(rows) == 6, rows
assert sorted(r["state"] for r in rows) == ["completed"] * 2 + ["stopped"] * 4, rows
assert all(r["fold_0"] and r["fold_1"] and r["fold_2"] for r in rows), rows
summary = json.load(open(d / "trials.json"))
assert summary["rung_epochs"] == [1, 3] and summary["best_trial"] is not None, summary
best = [r for r in rows if r["rank"] == "1"][0]
assert best["state"] == "completed" and int(best["trial"]) == summary["best_trial"]
config = (d / "best_config.ini").read_text()
assert "epochs = 3" in config and f"lr = {best['lr']}" in config, config
# Every job's single result is in the journal; promoted trials continued from their checkpoints.
records = [json.loads(l) for l in open(d / "journal.jsonl")]
finished = [r["job"] for r in records if r["state"] == "finished"]
assert len(finished) == len(set(finished)) == 6 * 3 + 2 * 3, len(finished)
log = [json.loads(l) for l in open(d / "trials" / ("trial-%04d" % int(best["trial"])) / "fold-0" / "train_log.jsonl")]
assert [r["epoch"] for r in log] == [1, 2, 3], log
PY
[[ $(journal_count "$work/tune" running) == 24 ]] || fail "tune: expected 24 job starts"
# The search's own report: its figures (where PLplot draws them) and tables.
[[ -s $work/tune/report/index.html && -s $work/tune/report/search_report.md ]] || fail "tune: no search report"
if ! grep -q "No figures" "$work/tune/report/index.html"; then
  for figure in search_history search_parallel_coordinates search_rungs search_importance; do
    [[ -s $work/tune/report/$figure.png ]] || fail "tune: the search report has no $figure.png"
  done
fi
# The best trial's config runs as it is, given the data (it names no path of the machine it ran on).
grep -q "^data = " "$work/tune/best_config.ini" && fail "tune: best_config.ini names the dataset path"
run tune_best 0 -n 2 "$brainmri" cv --config "$work/tune/best_config.ini" --data "$work/data3" --output "$work/tune_best_cv" --epochs 1 \
    --threads-per-rank 1 --explanation-check false

# Killed with SIGKILL midway (mpirun and every rank at once), then the same command again: no
# finished job runs again, and the trials table equals the uninterrupted search's.
setsid "$mpiexec" -n 2 "$brainmri" tune "${tune[@]}" --output "$work/tune_killed" >"$work/tune_killed.out" 2>&1 &
victim=$!
for _ in $(seq 600); do
  [[ -f $work/tune_killed/journal.jsonl && $(journal_count "$work/tune_killed" finished) -ge 9 ]] && break
  sleep 0.1
done
kill -KILL -- "-$victim" 2>/dev/null
wait "$victim" 2>/dev/null
finished_before=$(journal_count "$work/tune_killed" finished)
echo "tune_killed: SIGKILL after $finished_before finished jobs"
((finished_before >= 9 && finished_before < 24)) || fail "tune_killed: killed after $finished_before of 24 jobs, not midway"
run tune_resumed 0 -n 2 "$brainmri" tune "${tune[@]}" --output "$work/tune_killed"
python3 - "$work/tune" "$work/tune_killed" <<'PY' || fail "tune: the resumed search differs from the uninterrupted one"
import csv, json, sys, pathlib, collections
uninterrupted, resumed = (pathlib.Path(p) for p in sys.argv[1:])
table = lambda d: [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(open(d / "trials.csv"))]
assert table(uninterrupted) == table(resumed), (table(uninterrupted), table(resumed))
records = [json.loads(l) for l in open(resumed / "journal.jsonl")]
finished = collections.Counter(r["job"] for r in records if r["state"] == "finished")
assert set(finished.values()) == {1} and len(finished) == 24, finished  # no finished job repeated
PY
# A different search in the same directory is refused rather than mixed into its journal.
run tune_other 2 -n 2 "$brainmri" tune "${tune[@]}" --output "$work/tune" --seed 5
expect_output tune_other "holds another search"

# A held-out test split: 6 images per class of the sample become Testing, packed out of the folds.
# Every fold model and their ensemble are tested on it; --final trains on all folds and exports.
for class_dir in "$sample"/Training/*/; do
  class=$(basename "$class_dir")
  mkdir -p "$work/kaggle/Training/$class" "$work/kaggle/Testing/$class"
  index=0
  for image in "$class_dir"*; do
    if ((index++ < 6)); then ln -s "$image" "$work/kaggle/Testing/$class/"; else ln -s "$image" "$work/kaggle/Training/$class/"; fi
  done
done
"$prep" --out "$work/data_test" --folds 3 --seed 1 --holdout-split Testing "$work/kaggle/Training" "$work/kaggle/Testing" \
  >"$work/prep_test.log" 2>&1 || { cat "$work/prep_test.log"; exit 1; }
run cv_final 0 -n 2 "$brainmri" cv "${cv[@]:2}" --data "$work/data_test" --output "$work/cv_final" --final
expect_output cv_final "ensemble of the fold models"
python3 - "$work/cv_final" "$work/data_test" <<'PY' || fail "cv --final: held-out test, ensemble or export incomplete"
import json, sys, pathlib
import h5py, numpy as np, torch
d, data = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
s = json.load(open(d / "cv_summary.json"))
manifest = json.load(open(data / "manifest.json"))
held_out = [i for i, f in enumerate(manifest["folds"]["fold_of_sample"]) if f == -1]
assert s["test"]["split"] == "Testing" and s["test"]["samples"] == len(held_out) == 24, s["test"]
assert all("test" in f for f in s["folds"]) and s["test"]["fold_models"]["accuracy"]["folds"] == 3
assert s["out_of_fold"]["samples"] + 24 <= 154  # no test image is predicted out of fold
assert s["final"]["test"]["samples"] == 24
for part in ("test_ensemble/metrics.json", "final/model.pt", "final/test/predictions.h5", "fold-0/test/metrics.json"):
    assert (d / part).exists(), part
# The ensemble is the mean of the fold models' probabilities.
probs = [h5py.File(d / f"fold-{k}/test/predictions.h5")["probabilities"][:] for k in range(3)]
ensemble = h5py.File(d / "test_ensemble/predictions.h5")["probabilities"][:]
assert np.allclose(np.mean(probs, axis=0), ensemble, atol=1e-9)
# The TorchScript export loads in Python and reproduces the final model's test predictions.
final = h5py.File(d / "final/test/predictions.h5")
ids = final["sample_ids"][:]
images = []
for shard in sorted(data.glob("shard-*.h5")):
    with h5py.File(shard) as f:
        images += [(i, img) for i, img in zip(f["sample_ids"][:], f["images"][:]) if i in set(ids)]
by_id = dict(images)
x = torch.tensor(np.stack([by_id[i] for i in ids]), dtype=torch.float32).permute(0, 3, 1, 2) / 255.0
with torch.no_grad():
    exported = torch.softmax(torch.jit.load(str(d / "final/model.torchscript.pt"))(x), dim=1).numpy()
assert np.allclose(exported, final["probabilities"][:], atol=1e-4), np.abs(exported - final["probabilities"][:]).max()
PY

# brainmri predict on image files: the same probabilities as the final model gave the packed
# pixels of those images (one decode/preprocess path), for the checkpoint and its TorchScript
# export; a corrupt and a missing file are reported while the others are classified.
printf 'not an image' >"$work/corrupt.jpg"
mapfile -t test_images < <(find "$work/kaggle/Testing" -name '*.jpg' | sort | head -3)
for model in model.pt model.torchscript.pt; do
  overlays=()  # Grad-CAM needs the checkpoint's activations; an export has none
  [[ $model == model.pt ]] && overlays=(--gradcam "$work/predict_gradcam")
  "$brainmri" predict --model "$work/cv_final/final/$model" --json "${test_images[@]}" "$work/corrupt.jpg" \
    "$work/missing.png" "${overlays[@]}" >"$work/predict_$model.json" 2>"$work/predict_$model.err"
  code=$?
  [[ $code == 1 ]] || fail "predict ($model): exit $code, expected 1 for the bad files"
  python3 - "$work/predict_$model.json" "$work/cv_final/final/test/predictions.h5" "$work/data_test" "$model" <<'PY' ||
import glob, json, os, sys
import h5py, numpy as np
out, predictions, data, model = sys.argv[1:]
results = json.load(open(out))["results"]
assert len(results) == 5 and "error" in results[3] and "error" in results[4], results
by_path = {}
for shard in glob.glob(os.path.join(data, "shard-*.h5")):
    with h5py.File(shard) as f:
        for sample, path in zip(f["sample_ids"][:], f["source_paths"][:]):
            by_path[os.path.basename(path.decode() if isinstance(path, bytes) else path)] = int(sample)
p = h5py.File(predictions)
row_of = {int(s): i for i, s in enumerate(p["sample_ids"][:])}
classes = json.load(open(out))["classes"]
for r in results[:3]:
    expected = p["probabilities"][row_of[by_path[os.path.basename(r["file"])]]]
    got = np.array([r["probabilities"][c] for c in classes])
    assert np.allclose(got, expected, atol=1e-5), (r["file"], got, expected)
    if model == "model.pt":
        assert os.path.getsize(r["gradcam"]) > 1000, r
PY
    fail "predict ($model): probabilities differ from the packed pixels' or bad files not reported"
done
grep -q "could not be classified" "$work/predict_model.pt.err" || fail "predict: no failure summary on stderr"

if ((failures)); then echo "$failures check(s) failed" >&2; exit 1; fi
echo "all mpirun CLI checks passed"
