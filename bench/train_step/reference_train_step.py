#!/usr/bin/env python3
"""The Python PyTorch reference for bench/train_step: the same two networks as brainmri's C++
models (layer for layer: Keras padding, ReLU6, batch-norm settings, head), the same random data,
loss and Adam step, in an ordinary eager training loop.

    reference_train_step.py --model mobilenet_v2 --batch 32 --steps 20 --warmup 3 --threads 2
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def make_divisible(v, divisor=8):
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def keras_pad(x):
    return F.pad(x, (x.shape[3] % 2, 1, x.shape[2] % 2, 1))


def bn(c):
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.001)


class Block(nn.Module):
    def __init__(self, cin, expansion, cout, stride, first):
        super().__init__()
        hidden = cin * expansion
        self.expand = None if first else nn.Sequential(nn.Conv2d(cin, hidden, 1, bias=False), bn(hidden))
        self.stride = stride
        self.depthwise = nn.Conv2d(hidden, hidden, 3, stride, 1 if stride == 1 else 0, groups=hidden, bias=False)
        self.depthwise_bn = bn(hidden)
        self.project = nn.Sequential(nn.Conv2d(hidden, cout, 1, bias=False), bn(cout))
        self.residual = cin == cout and stride == 1

    def forward(self, x):
        y = x if self.expand is None else torch.clamp(self.expand(x), 0, 6)
        if self.stride == 2:
            y = keras_pad(y)
        y = torch.clamp(self.depthwise_bn(self.depthwise(y)), 0, 6)
        y = self.project(y)
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    SPECS = [(1, 16, 1), (6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1), (6, 32, 1), (6, 64, 2), (6, 64, 1),
             (6, 64, 1), (6, 64, 1), (6, 96, 1), (6, 96, 1), (6, 96, 1), (6, 160, 2), (6, 160, 1), (6, 160, 1),
             (6, 320, 1)]

    def __init__(self, alpha=1.0, classes=4):
        super().__init__()
        c = make_divisible(32 * alpha)
        self.conv1 = nn.Conv2d(3, c, 3, 2, 0, bias=False)
        self.bn1 = bn(c)
        blocks = []
        for i, (e, out, s) in enumerate(self.SPECS):
            o = make_divisible(int(out * alpha))
            blocks.append(Block(c, e, o, s, i == 0))
            c = o
        self.blocks = nn.Sequential(*blocks)
        last = make_divisible(1280 * alpha) if alpha > 1 else 1280
        self.conv_last = nn.Conv2d(c, last, 1, bias=False)
        self.bn_last = bn(last)
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(last, 128), nn.ReLU(), nn.Linear(128, classes))

    def forward(self, images):
        x = images.expand(-1, 3, -1, -1) * 2 - 1
        x = torch.clamp(self.bn1(self.conv1(keras_pad(x))), 0, 6)
        x = self.blocks(x)
        x = torch.clamp(self.bn_last(self.conv_last(x)), 0, 6)
        return self.head(x.mean((2, 3)))


class BaselineCnn(nn.Module):
    def __init__(self, classes=4):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(1, 32, 3, padding=1), nn.Conv2d(32, 64, 3, padding=1),
                                    nn.Conv2d(64, 128, 3, padding=1)])
        self.dropout = nn.Dropout(0.5)
        self.dense = nn.Linear(128 * 16 * 16, 128)
        self.logits = nn.Linear(128, classes)

    def forward(self, x):
        for conv in self.convs:
            x = F.max_pool2d(F.relu(conv(x)), 2)
        return self.logits(F.relu(self.dense(self.dropout(x.flatten(1)))))


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
