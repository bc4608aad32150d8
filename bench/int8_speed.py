#!/usr/bin/python3
"""int8 against f32, in Tessera and in ONNX Runtime (onnxruntime-node), in one run: each model is
quantized with `tessera compress --method int8` to a standard QDQ ONNX file, then rounds alternate
Tessera f32, Tessera int8, ONNX Runtime f32 and ONNX Runtime int8 (the same QDQ file) on the same
input and thread count. Prints a Markdown table of medians (median over rounds of each round's
median) and the int8 speed-ups.

Calibration: zoo models (seeded random weights) calibrate on seeded random normal inputs, which
is all their random weights mean; the trained models calibrate on their first 200 test images.

Usage: bench/int8_speed.py [--models resnet50 resnet14] [--threads 1 2] [--iters 20] [--rounds 3]
Needs build/tessera, models/zoo (scripts/build_zoo.py), models/trained and third_party/npm.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_with_onnxruntime import ROOT, run  # noqa: E402


def model_files(name, work):
    """(float model, input name, input .npy, calibration .npy) for a zoo or trained model."""
    trained = os.path.join(ROOT, "models/trained", name + ".onnx")
    if os.path.exists(trained):
        images = np.load(os.path.join(ROOT, "models/trained/test_images.npy"))
        np.save(os.path.join(work, name + "_calib.npy"), images[:200])
        np.save(os.path.join(work, name + "_input.npy"), images[200:201])
        return trained, "input", os.path.join(work, name + "_input.npy"), os.path.join(work, name + "_calib.npy")
    folder = os.path.join(ROOT, "models/zoo", name)
    meta = json.load(open(os.path.join(folder, "meta.json")))
    (first,) = meta["inputs"]
    sample = np.load(os.path.join(folder, first["file"]))
    rng = np.random.default_rng(0)
    np.save(os.path.join(work, name + "_calib.npy"), rng.standard_normal((8,) + sample.shape[1:]).astype(np.float32))
    return (os.path.join(folder, meta["model"]), first["name"], os.path.join(folder, first["file"]),
            os.path.join(work, name + "_calib.npy"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "resnet14"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="tessera_int8_")
    print("| model | threads | Tessera f32 ms | Tessera int8 ms | int8 speed-up | ORT f32 ms | ORT int8 ms | "
          "ORT speed-up | Tessera int8 / ORT int8 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        float_model, input_name, input_file, calib = model_files(name, work)
        quantized = os.path.join(work, name + "_int8.onnx")
        subprocess.run(["build/tessera", "compress", float_model, "--calib", calib, "--batch", "1", "-o", quantized],
                       cwd=ROOT, check=True, capture_output=True)
        for threads in args.threads:
            times = {key: [] for key in ("tf", "ti", "of", "oi")}
            for _ in range(args.rounds):
                for key, model in (("tf", float_model), ("ti", quantized)):
                    times[key].append(run(["build/tessera", "bench", model, "--threads", str(threads), "--iters",
                                           str(args.iters), "--warmup", str(args.warmup), "-i",
                                           f"{input_name}={input_file}"])[0])
                for key, model in (("of", float_model), ("oi", quantized)):
                    times[key].append(run(["node", "scripts/ort_reference.mjs", "--model", model, "--inputs", input_file,
                                           "--bench", str(args.iters), "--warmup", str(args.warmup), "--threads",
                                           str(threads)])[0])
            m = {key: statistics.median(values) for key, values in times.items()}
            print(f"| {name} | {threads} | {m['tf']:.2f} | {m['ti']:.2f} | {m['tf'] / m['ti']:.2f}x | {m['of']:.2f} | "
                  f"{m['oi']:.2f} | {m['of'] / m['oi']:.2f}x | {m['ti'] / m['oi']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
