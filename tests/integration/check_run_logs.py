#!/usr/bin/env python3
"""Checks a run directory's logs against each other, with TensorBoard's own reader.

    check_run_logs.py RUN_DIR EPOCHS EVERY_STEPS [NAME=VALUE ...]

train_log.jsonl has EPOCHS records; metrics.csv holds the same values (to the last bit); the
TensorBoard event files, read by tensorboard's EventAccumulator (which also drops what an
interrupted process logged after the point its successor resumed from), hold one value per epoch
for each epoch scalar, equal to the log's (as float32), on increasing steps, and step scalars on
multiples of EVERY_STEPS. NAME=VALUE: hyperparameters the HParams plugin must find.
"""
import csv
import json
import math
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

run, epochs, every = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
log = [json.loads(line) for line in open(run / "train_log.jsonl") if line.strip()]
assert len(log) == epochs, f"{len(log)} records in train_log.jsonl, expected {epochs}"

rows = list(csv.DictReader(open(run / "metrics.csv", newline="")))
assert len(rows) == len(log), f"metrics.csv has {len(rows)} rows, train_log.jsonl {len(log)}"
for row, record in zip(rows, log):
    for key, value in record.items():
        cell = row[key]
        if isinstance(value, bool):
            assert cell == ("true" if value else "false"), (key, cell, value)
        elif value is None:
            assert cell == "", (key, cell)
        elif isinstance(value, str):
            assert cell == value, (key, cell, value)
        else:
            assert float(cell) == value, (key, cell, value)

events = EventAccumulator(str(run), size_guidance={"scalars": 0})
events.Reload()
tags = events.Tags()["scalars"]
pairs = {"loss/train": "train_loss", "accuracy/train": "train_accuracy", "learning_rate": "learning_rate",
         "images_per_second": "images_per_second", "loss/val": "val_loss", "accuracy/val": "val_accuracy",
         "macro_f1/val": "val_macro_f1", "macro_auc/val": "val_macro_auc"}
for tag, key in pairs.items():
    assert tag in tags, f"no {tag} in {tags}"
    scalars = events.Scalars(tag)
    steps = [s.step for s in scalars]
    assert steps == sorted(set(steps)), f"{tag}: steps not increasing once each: {steps}"
    assert len(scalars) == len(log), f"{tag}: {len(scalars)} values, {len(log)} epochs"
    for s, record in zip(scalars, log):
        assert math.isclose(s.value, record[key], rel_tol=1e-6, abs_tol=1e-6), (tag, s.step, s.value, record[key])
if every > 0:
    steps = [s.step for s in events.Scalars("step/loss")]
    assert steps and all(step % every == 0 for step in steps), steps
    assert steps == sorted(set(steps)), f"step/loss: steps not increasing once each: {steps}"
    assert steps[-1] <= events.Scalars("loss/train")[-1].step

wanted = dict(arg.split("=", 1) for arg in sys.argv[4:])
if wanted:
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    for name, text in wanted.items():
        value = hparams[name]
        got = value.number_value if value.WhichOneof("kind") == "number_value" else value.string_value
        assert str(got) == text or (isinstance(got, float) and math.isclose(got, float(text))), (name, got, text)
print(f"{run}: {len(log)} epochs, {len(tags)} scalar tags: logs agree")
