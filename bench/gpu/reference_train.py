#!/usr/bin/env python3
"""The Python PyTorch reference of bench/gpu: a training loop as a careful PyTorch user writes it
on a GPU — torchvision's mobilenet_v2 (width 1.0, 4 classes; the repository's layer-for-layer
Keras port from bench/train_step when torchvision is missing) or the paper's baseline CNN, random
128x128 data already on the GPU, channels-last, bf16 autocast, Adam (fused) — eager, or with
torch.compile.

    reference_train.py --model mobilenet_v2 --batch 256 --steps 50 --warmup 10 [--compile 1]
Prints one JSON line.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train_step"))
import reference_train_step as keras_port  # noqa: E402  (the same networks as brainmri's)


def build(name):
    if name == "mobilenet_v2":
        try:
            import torchvision
            net = torchvision.models.mobilenet_v2(num_classes=4)
            # torchvision's stem takes 3 channels; the slices are grayscale, replicated as in brainmri.
            return torch.nn.Sequential(_Expand(), net), "torchvision mobilenet_v2"
        except ImportError:
            return keras_port.MobileNetV2(), "mobilenet_v2 (Keras port; torchvision not installed)"
    return keras_port.BaselineCnn(), "baseline_cnn"


class _Expand(torch.nn.Module):
    def forward(self, x):
        return x.expand(-1, 3, -1, -1) * 2 - 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--compile", type=int, default=0)
    args = parser.parse_args()
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    model, label = build(args.model)
    model = model.to(device).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    images = torch.rand(args.batch, 1, 128, 128, device=device).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 4, (args.batch,), device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(images)
        F.cross_entropy(logits.float(), labels).backward()
        optimizer.step()

    if args.compile:
        step = torch.compile(step)
    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    print(json.dumps({"implementation": f"Python PyTorch {torch.__version__} {label}, eager bf16 channels_last"
                      + (" + torch.compile" if args.compile else ""),
                      "model": args.model, "batch": args.batch, "steps": args.steps,
                      "images_per_second": args.batch * args.steps / seconds}))


if __name__ == "__main__":
    main()
