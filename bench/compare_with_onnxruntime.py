#!/usr/bin/python3
"""Times Tessera and ONNX Runtime (onnxruntime-node) on the same models, same inputs, same thread
counts, in one run: rounds alternate between the two engines so machine noise hits both alike.
Prints a Markdown table of median latencies (median over rounds of each round's median) and the
ratio Tessera / ONNX Runtime (below 1 means Tessera is faster).

Usage: bench/compare_with_onnxruntime.py [--models resnet50 mobilenet_v2] [--threads 1 2]
                                         [--iters 20] [--warmup 3] [--rounds 3] [--channels-last]
Needs build/tessera, models/zoo (scripts/build_zoo.py) and third_party/npm (scripts/setup.sh).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(command):
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{result.stdout}\n{result.stderr}")
    match = re.search(r"median ([0-9.]+) ms\s+p90 ([0-9.]+) ms", result.stdout)
    if not match:
        sys.exit(f"no 'median ... p90 ...' line from: {' '.join(command)}\n{result.stdout}")
    return float(match.group(1)), float(match.group(2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "mobilenet_v2"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--zoo", default="models/zoo")
    parser.add_argument("--tessera", default="build/tessera",
                        help="the tessera binary (another build's, to compare two versions beside the peer)")
    parser.add_argument("--channels-last", action="store_true",
                        help="run Tessera with --channels-last (CNNs on NHWC activations)")
    args = parser.parse_args()

    rows = []
    for model in args.models:
        folder = os.path.join(args.zoo, model)
        meta = json.load(open(os.path.join(ROOT, folder, "meta.json")))
        model_path = os.path.join(folder, meta["model"])
        inputs = [(i["name"], os.path.join(folder, i["file"])) for i in meta["inputs"]]
        for threads in args.threads:
            tessera_medians, ort_medians, tessera_p90, ort_p90 = [], [], [], []
            for _ in range(args.rounds):
                tessera = [args.tessera, "bench", model_path, "--threads", str(threads),
                           "--iters", str(args.iters), "--warmup", str(args.warmup)]
                for name, path in inputs:
                    tessera += ["-i", f"{name}={path}"]
                if args.channels_last:
                    tessera.append("--channels-last")
                median, p90 = run(tessera)
                tessera_medians.append(median)
                tessera_p90.append(p90)
                ort = ["node", "scripts/ort_reference.mjs", "--model", model_path,
                       "--inputs", ",".join(p for _, p in inputs), "--bench", str(args.iters),
                       "--warmup", str(args.warmup), "--threads", str(threads)]
                median, p90 = run(ort)
                ort_medians.append(median)
                ort_p90.append(p90)
            t, o = statistics.median(tessera_medians), statistics.median(ort_medians)
            rows.append((model, threads, t, statistics.median(tessera_p90), o, statistics.median(ort_p90), t / o))
            print(f"{model} threads={threads}: tessera {t:.2f} ms, onnxruntime {o:.2f} ms, ratio {t / o:.2f}",
                  file=sys.stderr, flush=True)

    print("| model | threads | Tessera median (p90) ms | ONNX Runtime median (p90) ms | Tessera / ORT |")
    print("|---|---|---|---|---|")
    for model, threads, t, tp, o, op, ratio in rows:
        print(f"| {model} | {threads} | {t:.2f} ({tp:.2f}) | {o:.2f} ({op:.2f}) | {ratio:.2f} |")


if __name__ == "__main__":
    main()
