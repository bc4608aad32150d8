#!/usr/bin/python3
# Layer by layer beside ONNX Runtime: each engine's own per-node times on the same model, input
# and threads (ONNX Runtime's profiler, `tessera profile`), the convolutions and matrix products
# matched by their weight and output shapes in execution order, the rest summed per operator.
#
#   /usr/bin/python3 bench/compare_layers_with_onnxruntime.py --model models/zoo/resnet50 \
#       [--threads 1] [--runs 50] [--json FILE]
#
# A zoo folder gives the model and its inputs (meta.json); times are the medians over --runs
# runs of each node. Both engines fuse differently (ONNX Runtime's NCHWc convolutions carry
# their Relu and Add, and it adds layout reorders), so only matched layers are compared one to
# one; the totals include everything each engine ran. ONNX Runtime records its NCHWc
# convolutions with the logical OIHW weight shape; a layer it records otherwise stays unmatched
# and is counted under "other".
import argparse
import collections
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MATCHED_OPS = {"Conv", "FusedConv", "Gemm", "MatMul", "FusedMatMul", "FusedGemm"}


def ort_layers(model, inputs, threads, runs, workdir):
    prefix = os.path.join(workdir, "ort_profile")
    command = ["node", os.path.join(ROOT, "scripts/ort_reference.mjs"), "--model", model, "--inputs",
               ",".join(inputs), "--bench", str(runs), "--warmup", "5", "--threads", str(threads),
               "--profile", prefix]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    files = glob.glob(prefix + "*.json")
    if len(files) != 1:
        sys.exit(f"error: expected one ONNX Runtime profile under {prefix}*, found {len(files)}")
    with open(files[0]) as f:
        events = json.load(f)
    durations = collections.defaultdict(list)
    info = {}
    order = []
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        name = e["name"][: -len("_kernel_time")]
        if name not in info:
            args = e.get("args", {})
            shapes = [list(d.values())[0] for d in args.get("input_type_shape", [])]
            outputs = [list(d.values())[0] for d in args.get("output_type_shape", [])]
            info[name] = (args.get("op_name", "?"), shapes, outputs)
            order.append(name)
        durations[name].append(e["dur"] / 1000.0)
    # The warm-up runs are profiled too: keep each node's last `runs` times.
    return [(name, info[name][0], info[name][1], info[name][2], statistics.median(durations[name][-runs:]))
            for name in order]


def tessera_layers(model, inputs, threads, runs, workdir):
    out = os.path.join(workdir, "tessera_profile.json")
    command = [os.path.join(ROOT, "build/tessera"), "profile", model, "--threads", str(threads), "--iters",
               str(runs), "--json", out]
    for name, file in inputs.items():
        command += ["-i", f"{name}={file}"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        profile = json.load(f)
    return [(l["name"], l["op"], l["input_shapes"], l["output_shapes"], l["time_ms"]) for l in profile["layers"]]


def key(op, input_shapes, output_shapes):
    """Weight shape and output shape (NCHWc outputs keep the logical NCHW shape in ORT's record)."""
    weight = tuple(input_shapes[1]) if len(input_shapes) > 1 else ()
    return (weight, tuple(output_shapes[0]) if output_shapes else ())


def padded_key(k):
    """The key with channel counts padded to ONNX Runtime's NCHWc blocks of 16 (24 channels are
    recorded as 32); counts of 4 or fewer (a stem's input, a depthwise filter) stay as they are."""
    weight, output = k
    pad = lambda c: c if c <= 4 else (c + 15) // 16 * 16
    weight = tuple(pad(d) if i < 2 else d for i, d in enumerate(weight))
    output = tuple(pad(d) if i == 1 else d for i, d in enumerate(output))
    return (weight, output)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="zoo folder (model.onnx + meta.json)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--json", help="write the matched table as JSON")
    args = parser.parse_args()
    with open(os.path.join(args.model, "meta.json")) as f:
        meta = json.load(f)
    model = os.path.join(args.model, meta["model"])
    inputs = {i["name"]: os.path.join(args.model, i["file"]) for i in meta["inputs"]}
    with tempfile.TemporaryDirectory() as workdir:
        ort = ort_layers(model, list(inputs.values()), args.threads, args.runs, workdir)
        tessera = tessera_layers(model, inputs, args.threads, args.runs, workdir)

    # Match in order: each Tessera Conv/MatMul/Gemm takes the first unused ORT node of a matched op
    # with the same weight and output shapes, exactly or after padding the channels to 16.
    used = set()
    rows = []
    for name, op, shapes, outputs, ms in tessera:
        if op not in MATCHED_OPS:
            continue
        want = key(op, shapes, outputs)
        for match in (lambda k: k == want, lambda k: padded_key(k) == padded_key(want)):
            found = False
            for i, (oname, oop, oshapes, ooutputs, oms) in enumerate(ort):
                if i not in used and oop in MATCHED_OPS and match(key(oop, oshapes, ooutputs)):
                    used.add(i)
                    rows.append({"layer": name, "op": op, "weight": list(want[0]), "output": list(want[1]),
                                 "tessera_ms": ms, "ort_ms": oms, "ort_node": oname})
                    found = True
                    break
            if found:
                break
    t_total = sum(l[4] for l in tessera)
    o_total = sum(l[4] for l in ort)
    t_matched = sum(r["tessera_ms"] for r in rows)
    o_matched = sum(r["ort_ms"] for r in rows)
    print(f"{'layer':44s} {'weight':>18s} {'output':>18s} {'Tessera ms':>10s} {'ORT ms':>8s} {'ratio':>6s}")
    for r in rows:
        print(f"{r['layer'][:44]:44s} {'x'.join(map(str, r['weight'])):>18s} {'x'.join(map(str, r['output'])):>18s} "
              f"{r['tessera_ms']:10.3f} {r['ort_ms']:8.3f} {r['tessera_ms'] / max(r['ort_ms'], 1e-9):6.2f}")
    print(f"matched layers: {len(rows)} of Tessera's "
          f"{sum(1 for l in tessera if l[1] in MATCHED_OPS)}; Tessera {t_matched:.3f} ms, "
          f"ONNX Runtime {o_matched:.3f} ms ({t_matched / max(o_matched, 1e-9):.2f})")
    others = collections.defaultdict(float)
    for i, (_, op, _, _, ms) in enumerate(ort):
        if i not in used:
            others["ORT " + op] += ms
    for _, op, _, _, ms in tessera:
        if op not in MATCHED_OPS:
            others["Tessera " + op] += ms
    matched_names = {r["layer"] for r in rows}
    for name, op, shapes, outputs, ms in tessera:
        if op in MATCHED_OPS and name not in matched_names:
            others[f"Tessera unmatched {op} {name} {'x'.join(map(str, key(op, shapes, outputs)[0]))}"] += ms
    for name, ms in sorted(others.items()):
        print(f"  other: {name:40s} {ms:8.3f} ms")
    print(f"sum of node times: Tessera {t_total:.3f} ms, ONNX Runtime {o_total:.3f} ms "
          f"({t_total / max(o_total, 1e-9):.2f}); "
          f"{args.threads} thread(s), medians of {args.runs} runs")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "runs": args.runs, "layers": rows, "tessera_total_ms": t_total,
                       "ort_total_ms": o_total}, f, indent=1)


if __name__ == "__main__":
    main()
