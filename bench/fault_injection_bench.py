#!/usr/bin/python3
"""Injections per second of `tessera inject` with golden-run reuse against full re-runs (every
injection runs the whole model), same faults (same seed), same threads, in one run: rounds
alternate between the two modes so machine noise hits both alike. Prints a Markdown table of
median rates over rounds and their ratio.

Usage: bench/fault_injection_bench.py [--models resnet18 lenet5 ...] [--sites activation weight accumulator any]
                                      [--n 200] [--rounds 3] [--threads 2]
Models: names from models/zoo (scripts/build_zoo.py) or models/trained (run on their test images).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def model_arguments(name):
    trained = os.path.join(ROOT, "models/trained", name + ".onnx")
    if os.path.exists(trained):
        return [trained, "--data", os.path.join(ROOT, "models/trained/test_images.npy"), "--samples", "10"]
    zoo = os.path.join(ROOT, "models/zoo", name, "model.onnx")
    if os.path.exists(zoo):
        return [zoo]
    sys.exit(f"no model {name} in models/trained or models/zoo")


def rate(model_args, site, n, threads, full_rerun):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [os.path.join(ROOT, "build/tessera"), "inject", *model_args, "--site", site, "--n", str(n),
                   "--seed", "1", "--threads", str(threads), "--no-progress", "--no-records", "--json", out.name]
        if full_rerun:
            command.append("--full-rerun")
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"failed: {' '.join(command)}\n{result.stdout}\n{result.stderr}")
        report = json.load(open(out.name))
        steps = report["steps"]
        return report["injections_per_second"], steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet18", "lenet5", "resnet14"])
    parser.add_argument("--sites", nargs="+", default=["activation", "weight", "accumulator", "any"])
    parser.add_argument("--n", type=int, default=200, help="injections per run (trained models run 10x as many)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rows = []
    for model in args.models:
        model_args = model_arguments(model)
        n = args.n * (10 if "--data" in model_args else 1)
        for site in args.sites:
            reuse, full = [], []
            for _ in range(args.rounds):
                reuse.append(rate(model_args, site, n, args.threads, False)[0])
                full.append(rate(model_args, site, n, args.threads, True)[0])
            r, f = statistics.median(reuse), statistics.median(full)
            rows.append((model, site, n, r, f, r / f))
            print(f"{model} {site}: reuse {r:.1f}/s, full re-run {f:.1f}/s, {r / f:.2f}x", file=sys.stderr)
    print(f"| model | site | injections | golden reuse (inj/s) | full re-run (inj/s) | speed-up |")
    print("|---|---|---|---|---|---|")
    for model, site, n, r, f, ratio in rows:
        print(f"| {model} | {site} | {n} | {r:.1f} | {f:.1f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
