#!/usr/bin/env python3
"""Throughput and latency of brainmri serve under concurrent clients, batched inference against
the same server classifying one image per model call (--max-batch 1, the reference), in one run.

    python3 bench/serve/load.py --model RUN/model.pt [--images DIR] [--requests 300] [--clients 16]

Each configuration: a fresh server on a free loopback port, 10 warm-up requests, then
--requests POSTs of real slices (multipart, as the page sends them) from --clients threads, each
request on its own connection. Prints images/s, median and 95th-percentile latency, the mean batch
size the server reports, and the ratio batched / one-at-a-time, with and without the explanation.
"""
import argparse
import concurrent.futures
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid


def multipart(path):
    boundary = uuid.uuid4().hex
    with open(path, "rb") as f:
        data = f.read()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{os.path.basename(path)}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def start(brainmri, model, max_batch, torch_threads):
    command = [brainmri, "serve", "--model", model, "--port", "0", "--quiet", "--threads", "16",
               "--max-batch", str(max_batch)]
    if torch_threads:
        command += ["--torch-threads", str(torch_threads)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    match = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", line)
    if not match:
        sys.exit(f"brainmri serve did not start: {line}{process.stderr.read()}")
    return process, int(match.group(1))


def run(port, bodies, requests, clients, explain):
    url = f"http://127.0.0.1:{port}/api/predict" + ("" if explain else "?explain=false")

    def one(i):
        body, content_type = bodies[i % len(bodies)]
        started = time.perf_counter()
        request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
        with urllib.request.urlopen(request, timeout=300) as response:
            answer = json.load(response)
        return time.perf_counter() - started, answer["batch_size"]

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(10)))  # warm-up
        started = time.perf_counter()
        results = list(pool.map(one, range(requests)))
        elapsed = time.perf_counter() - started
    latencies = sorted(r[0] for r in results)
    return {"images_per_second": requests / elapsed,
            "median_ms": 1000 * statistics.median(latencies),
            "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
            "mean_batch": statistics.mean(r[1] for r in results)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brainmri", default="build/release/bin/brainmri")
    parser.add_argument("--model", required=True)
    parser.add_argument("--images", default="data/sample/Training", help="a directory of slices (searched recursively)")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--torch-threads", type=int, default=0)
    args = parser.parse_args()

    files = sorted(os.path.join(d, f) for d, _, names in os.walk(args.images) for f in names
                   if f.lower().endswith((".jpg", ".jpeg", ".png")))[:64]
    bodies = [multipart(f) for f in files]
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs; model {args.model}; {len(files)} distinct slices, "
          f"{args.requests} requests from {args.clients} clients")
    rows = []
    for explain in (True, False):
        measured = {}
        for max_batch in (args.max_batch, 1):
            process, port = start(args.brainmri, args.model, max_batch, args.torch_threads)
            try:
                measured[max_batch] = run(port, bodies, args.requests, args.clients, explain)
            finally:
                process.terminate()
                process.wait(timeout=60)
        batched, single = measured[args.max_batch], measured[1]
        rows.append((explain, batched, single))
    print(f"\n| explanation | --max-batch | images/s | median ms | p95 ms | mean batch | ratio |")
    print("|---|---|---|---|---|---|---|")
    for explain, batched, single in rows:
        ratio = batched["images_per_second"] / single["images_per_second"]
        for name, m, r in ((args.max_batch, batched, f"{ratio:.2f}x"), (1, single, "1 (reference)")):
            print(f"| {'HiResCAM' if explain else 'none'} | {name} | {m['images_per_second']:.1f} | {m['median_ms']:.0f} | "
                  f"{m['p95_ms']:.0f} | {m['mean_batch']:.1f} | {r} |")


if __name__ == "__main__":
    main()
