#!/usr/bin/env python3
"""The Python PyTorch reference for bench/train_step: the same two networks as brainmri's C++
models (python/brainmri_models.py: Keras padding, ReLU6, batch-norm settings, head), the same
random data, loss and Adam step, in an ordinary eager training loop.

    reference_train_step.py --model mobilenet_v2 --batch 32 --steps 20 --warmup 3 --threads 2
"""
import argparse
import json
import pathlib
import sys
import time

import torch
import torch.nn.functional as F


# The networks are python/brainmri_models.py's plain-PyTorch twins of the C++ models (the same
# layers and names; tests/unit/test_export.cpp checks that they give the C++ logits exactly).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "python"))
import brainmri_models  # noqa: E402


def MobileNetV2():  # noqa: N802  (bench/gpu/reference_train.py calls these as classes)
    return brainmri_models.MobileNetV2({})  # width 1.0, 128x128x1, 4 classes: ModelOptions' defaults


def BaselineCnn():  # noqa: N802
    return brainmri_models.BaselineCnn({})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--channels-last", type=int, default=0)
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
        torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    model = MobileNetV2() if args.model == "mobilenet_v2" else BaselineCnn()
    model.train()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = torch.rand(args.batch, 1, 128, 128)
    if args.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 4, (args.batch,))

    def step():
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - start
    print(json.dumps({"implementation": "Python PyTorch " + torch.__version__ + (" channels_last" if args.channels_last else ""), "model": args.model, "batch": args.batch,
                      "steps": args.steps, "threads": torch.get_num_threads(),
                      "images_per_second": args.batch * args.steps / seconds}))


if __name__ == "__main__":
    main()
