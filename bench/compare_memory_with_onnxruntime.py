#!/usr/bin/python3
"""Compares the memory Tessera and ONNX Runtime (onnxruntime-node) need to run the same models on
the same inputs (issue 3: peak activation memory at or under ONNX Runtime's); prints Markdown.

Three measures, each for Tessera and for ONNX Runtime in three configurations: its defaults (CPU
arena and memory pattern on), memory pattern without the arena, and neither (every tensor its own
malloc, freed after its last reader):
  planned   the activation arena a planner lays out before running: Tessera's arena (`tessera
            info`), ONNX Runtime's memory-pattern block (the single allocation of its size that
            ORT makes at the start of every run after the first when the pattern is on and the
            arena off; found by the heap probe). Graph outputs and kernel scratch are outside both.
  heap      peak malloc'd bytes above the level before the first run, over --runs runs, counted
            by an LD_PRELOAD library (bench/heap_probe_preload.cpp): activations, kernel scratch,
            outputs, whatever the engine allocates to run. Tessera's arena is allocated when the
            plan is made, before the runs, so its size is added.
  rss       peak resident memory (VmHWM, reset before the runs) minus VmRSS before the first run.
            Tessera's arena is not touched before the first run, so it is counted as it is used.
Both probes run with MALLOC_MMAP_THRESHOLD_=65536 so that freed blocks go back to the system
and later allocations show up in RSS instead of reusing pages freed while loading the model.
The Node binding copies every output into a JavaScript buffer while ORT's own output is alive;
that copy (the outputs' bytes) is subtracted from ORT's heap and RSS figures, so they stand for
ORT itself. Each probe runs --repeats times in fresh processes; the table gives the median and
the notes the spread.

Usage: bench/compare_memory_with_onnxruntime.py [--models resnet50 ...] [--threads 1]
                                                [--runs 3] [--repeats 3] [--build build-mem]
Needs BUILD/tessera, BUILD/bench/tessera_memory_probe and BUILD/bench/libheap_probe_preload.so,
models/zoo (scripts/build_zoo.py) and third_party/npm (scripts/setup.sh).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ["resnet50", "mobilenet_v2", "resnet18", "vgg11", "bert_tiny", "gpt2_tiny"]
ORT_CONFIGS = [("default", 1, 1), ("pattern, no arena", 0, 1), ("neither", 0, 0)]
HEAP_LINE = re.compile(r"heap-probe: baseline (\d+) peak-above-baseline (-?\d+) live-above-baseline (-?\d+) large ([\d,]*)")
DTYPE_BYTES = {"float32": 4, "float16": 2, "int64": 8, "int32": 4, "int8": 1, "uint8": 1, "bool": 1}


def run_probe(command, preload):
    environment = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", LD_PRELOAD=preload)
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=environment)
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{result.stdout}\n{result.stderr}")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    reports = [HEAP_LINE.search(line) for line in result.stderr.splitlines()]
    reports = [r for r in reports if r]
    if not reports:
        sys.exit(f"no heap-probe lines (is the LD_PRELOAD library built?) from: {' '.join(command)}\n{result.stderr}")
    summary["heap_peak"] = int(reports[-1].group(2))  # the peak since the reset, over all runs
    summary["large_per_run"] = [[int(s) for s in r.group(4).split(",") if s] for r in reports]
    return summary


def pattern_block(summary, model):
    """ORT's memory-pattern block: the first large allocation of every run after the first, the
    same size in each (checked), and absent from the first run, which only records the pattern."""
    later = summary["large_per_run"][1:]
    if not later or not all(run and run[0] == later[0][0] for run in later):
        sys.exit(f"{model}: no memory-pattern block of one size in runs 2..: {summary['large_per_run']}")
    return later[0][0]


def mb(n):
    return f"{n / 1e6:.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--build", default="build-mem")
    parser.add_argument("--zoo", default="models/zoo")
    args = parser.parse_args()
    if args.runs < 2:
        sys.exit("--runs must be at least 2: ORT uses its memory pattern from the second run on")
    preload = os.path.join(ROOT, args.build, "bench", "libheap_probe_preload.so")

    rows = []
    for model in args.models:
        folder = os.path.join(args.zoo, model)
        meta = json.load(open(os.path.join(ROOT, folder, "meta.json")))
        model_path = os.path.join(folder, meta["model"])
        inputs = [(i["name"], os.path.join(folder, i["file"])) for i in meta["inputs"]]
        output_bytes = 0
        for output in meta["outputs"]:
            count = 1
            for d in output["shape"]:
                count *= d
            output_bytes += count * DTYPE_BYTES[output["dtype"]]

        tessera_command = [os.path.join(args.build, "bench", "tessera_memory_probe"), model_path,
                           "--threads", str(args.threads), "--runs", str(args.runs)]
        for name, path in inputs:
            tessera_command += ["-i", f"{name}={path}"]
        samples = {"tessera": []}
        for _ in range(args.repeats):
            t = run_probe(tessera_command, preload)
            samples["tessera"].append({"planned": t["arena_bytes"], "heap": t["arena_bytes"] + t["heap_peak"],
                                       "rss": t["rss_peak_during_runs"] - t["rss_before_runs"]})
        for label, arena, pattern in ORT_CONFIGS:
            samples[label] = []
            for _ in range(args.repeats):
                o = run_probe(["node", "--expose-gc", "bench/ort_memory_probe.mjs", "--model", model_path,
                               "--inputs", ",".join(p for _, p in inputs), "--threads", str(args.threads),
                               "--runs", str(args.runs), "--arena", str(arena), "--pattern", str(pattern)], preload)
                samples[label].append({
                    "planned": pattern_block(o, model) if (arena, pattern) == (0, 1) else None,
                    "heap": o["heap_peak"] - output_bytes,
                    "rss": o["rss_peak_during_runs"] - o["rss_before_runs"] - output_bytes})
        row = {"model": model}
        for engine, values in samples.items():
            for measure in ("planned", "heap", "rss"):
                numbers = [v[measure] for v in values if v[measure] is not None]
                if numbers:
                    row[(engine, measure)] = (statistics.median(numbers), max(numbers) - min(numbers))
        rows.append(row)
        print(f"{model}: tessera planned {mb(row[('tessera', 'planned')][0])} MB, "
              f"onnxruntime planned {mb(row[('pattern, no arena', 'planned')][0])} MB", file=sys.stderr, flush=True)

    print(f"Planned activation arena, MB (threads {args.threads}):\n")
    print("| model | Tessera | ONNX Runtime memory pattern | Tessera / ORT |")
    print("|---|---|---|---|")
    for row in rows:
        t, o = row[("tessera", "planned")][0], row[("pattern, no arena", "planned")][0]
        print(f"| {row['model']} | {mb(t)} | {mb(o)} | {t / o:.2f} |")
    for measure, title in (("heap", "Peak heap above the level before the first run"),
                           ("rss", "Peak RSS above the level before the first run")):
        print(f"\n{title}, MB, over {args.runs} runs (threads {args.threads}; ORT without the binding's "
              f"output copy):\n")
        print("| model | Tessera | ORT default (arena + pattern) | ORT pattern, no arena | ORT neither | "
              "Tessera / lowest ORT |")
        print("|---|---|---|---|---|---|")
        for row in rows:
            t = row[("tessera", measure)][0]
            ort = [row[(label, measure)][0] for label, _, _ in ORT_CONFIGS]
            print(f"| {row['model']} | {mb(t)} | " + " | ".join(mb(o) for o in ort) + f" | {t / min(ort):.2f} |")
    print(f"\nSpread (max - min) over {args.repeats} repeats, largest of any model and engine:")
    for measure in ("planned", "heap", "rss"):
        spreads = [(value[1], row["model"], key[0]) for row in rows for key, value in row.items()
                   if key != "model" and key[1] == measure]
        spread, model, engine = max(spreads)
        print(f"- {measure}: {mb(spread)} MB ({model}, {engine})")


if __name__ == "__main__":
    main()
