#!/usr/bin/python3
"""Accuracy, size and latency of every compression method on the trained Fashion-MNIST models, and
an HTML page with the accuracy-latency frontier.

For each model and method: `tessera compress` writes the compressed model (calibrated on the
first 200 training images where the method calibrates), `tessera run` classifies the test split
(the full 10,000 images from Debian's dataset-fashion-mnist, or the 1,000 committed in
models/trained when it is absent), `tessera bench` times one image (batch 1, --threads), and the
size is the model file's. Writes JSON and a self-contained HTML page (SVG: latency vs accuracy per
model, the Pareto frontier drawn, and the table).

Usage: bench/compression_report.py [--models lenet5 resnet14 mlp] [--threads 1] [--iters 30]
                                   [--json docs/compression_report.json] [--html docs/compression_report.html]
"""
import argparse
import gzip
import html
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASET = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530  # the training set's (docs/TRAINED_MODELS.md)

# (label, tessera compress arguments); None is the f32 model itself.
METHODS = [
    ("f32", None),
    ("int8 minmax", "--method int8 --calibration minmax"),
    ("int8 percentile", "--method int8 --calibration percentile"),
    ("int8 entropy", "--method int8 --calibration entropy"),
    ("bitplane w8a8", "--method bitplane --weight-bits 8 --activation-bits 8"),
    ("bitplane w4a4", "--method bitplane --weight-bits 4 --activation-bits 4"),
    ("bitplane w2a2", "--method bitplane --weight-bits 2 --activation-bits 2"),
    ("bitplane w1a1", "--method bitplane --weight-bits 1 --activation-bits 1"),
    ("bcq 4-bit", "--method bcq --weight-bits 4 --group-size 32"),
    ("bcq 3-bit", "--method bcq --weight-bits 3 --group-size 32"),
    ("bcq 2-bit", "--method bcq --weight-bits 2 --group-size 32"),
    ("sparse 50%", "--method sparse --sparsity 0.5"),
    ("sparse 75%", "--method sparse --sparsity 0.75"),
    ("sparse 90%", "--method sparse --sparsity 0.9"),
    ("sparse 2:4", "--method sparse --pattern 2:4"),
    ("winograd-int8 F2 single", "--method winograd-int8 --tile 2 --single-scale"),
    ("winograd-int8 F2 tap-wise", "--method winograd-int8 --tile 2"),
    ("winograd-int8 F4 single", "--method winograd-int8 --tile 4 --single-scale"),
    ("winograd-int8 F4 tap-wise", "--method winograd-int8 --tile 4"),
    ("winograd-int8 F4 tap-wise mse", "--method winograd-int8 --tile 4 --calibration mse"),
]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def data_sets():
    """(calibration images, test images, test labels, description)."""
    if os.path.exists(os.path.join(DATASET, "t10k-images-idx3-ubyte.gz")):
        def normalized(name):
            x = read_idx(os.path.join(DATASET, name)).astype(np.float32) / 255.0
            return ((x - MEAN) / STD)[:, None, :, :].astype(np.float32)
        calib = normalized("train-images-idx3-ubyte.gz")[:200]
        test = normalized("t10k-images-idx3-ubyte.gz")
        labels = read_idx(os.path.join(DATASET, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
        return calib, test, labels, "Fashion-MNIST test split (10,000 images); calibration: first 200 training images"
    images = np.load(os.path.join(ROOT, "models/trained/test_images.npy"))
    labels = np.load(os.path.join(ROOT, "models/trained/test_labels.npy"))
    return images[:200], images[200:], labels[200:], "800 committed test images; calibration: 200 others"


class NotApplicable(Exception):
    """The method found no layer it rewrites in this model (e.g. Winograd without 3x3 convolutions)."""


def tessera(args):
    result = subprocess.run(["build/tessera"] + args, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip() or result.stdout.strip())
    return result.stdout


def measure(model, method_args, work, files, threads, iters):
    path = model
    if method_args:
        path = os.path.join(work, "compressed.onnx")
        summary = tessera(["compress", model, "-o", path, "--calib", files["calib"], "--batch", "50"] +
                          method_args.split())
        if re.search(r"\b0 (convolutions|MatMul/Gemm layers) rewritten", summary):
            raise NotApplicable(summary.strip())
    out = os.path.join(work, "out")
    tessera(["run", path, "-i", "input=" + files["test"], "-o", out, "--threads", "2"])
    logits = np.load(os.path.join(out, "logits.npy"))
    accuracy = float((logits.argmax(1) == files["labels"]).mean() * 100)
    medians = []
    for _ in range(3):
        text = tessera(["bench", path, "--threads", str(threads), "--iters", str(iters), "--warmup", "3",
                        "-i", "input=" + files["one"]])
        medians.append(float(re.search(r"median ([0-9.]+) ms", text).group(1)))
    return {"accuracy": accuracy, "latency_ms": statistics.median(medians), "size_bytes": os.path.getsize(path)}


def frontier(points):
    """Indices of the points no other point beats on both latency and accuracy."""
    keep = []
    for i, p in enumerate(points):
        if not any(q["latency_ms"] <= p["latency_ms"] and q["accuracy"] >= p["accuracy"] and
                   (q["latency_ms"] < p["latency_ms"] or q["accuracy"] > p["accuracy"]) for q in points):
            keep.append(i)
    return sorted(keep, key=lambda i: points[i]["latency_ms"])


def svg_chart(name, rows):
    width, height, pad = 640, 380, 60
    lat = [r["latency_ms"] for r in rows]
    acc = [r["accuracy"] for r in rows]
    x0, x1 = min(lat) * 0.8, max(lat) * 1.1
    y0, y1 = max(0.0, min(acc) - 2), min(100.0, max(acc) + 1)
    px = lambda v: pad + (v - x0) / (x1 - x0) * (width - 2 * pad)
    py = lambda v: height - pad - (v - y0) / (y1 - y0) * (height - 2 * pad)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="chart">',
             f'<text x="{width / 2}" y="20" text-anchor="middle" font-weight="bold">{html.escape(name)}</text>',
             f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="black"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="black"/>',
             f'<text x="{width / 2}" y="{height - 15}" text-anchor="middle">latency, batch 1 (ms)</text>',
             f'<text x="15" y="{height / 2}" transform="rotate(-90 15 {height / 2})" text-anchor="middle">'
             f'top-1 accuracy (%)</text>']
    for k in range(5):
        xv, yv = x0 + (x1 - x0) * k / 4, y0 + (y1 - y0) * k / 4
        parts.append(f'<text x="{px(xv):.1f}" y="{height - pad + 15}" text-anchor="middle" font-size="10">{xv:.3g}</text>')
        parts.append(f'<text x="{pad - 5}" y="{py(yv) + 3:.1f}" text-anchor="end" font-size="10">{yv:.1f}</text>')
    front = frontier(rows)
    parts.append('<polyline class="frontier" fill="none" stroke="#d62728" stroke-width="1.5" points="' +
                 " ".join(f"{px(rows[i]['latency_ms']):.1f},{py(rows[i]['accuracy']):.1f}" for i in front) + '"/>')
    for i, r in enumerate(rows):
        color = "#d62728" if i in front else "#1f77b4"
        parts.append(f'<circle class="point" cx="{px(r["latency_ms"]):.1f}" cy="{py(r["accuracy"]):.1f}" r="4" '
                     f'fill="{color}"><title>{html.escape(r["method"])}: {r["accuracy"]:.2f}%, '
                     f'{r["latency_ms"]:.3f} ms</title></circle>')
        parts.append(f'<text x="{px(r["latency_ms"]) + 6:.1f}" y="{py(r["accuracy"]) - 4:.1f}" font-size="9">'
                     f'{html.escape(r["method"])}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def write_html(path, report):
    body = [f"<h1>Tessera compression trade-offs</h1><p>{html.escape(report['data'])}. Machine: "
            f"{html.escape(report['machine'])}; {report['threads']} thread(s); {html.escape(report['date'])}. "
            "Red: the accuracy-latency frontier (no other method is both faster and more accurate).</p>"]
    for name, rows in report["models"].items():
        body.append(svg_chart(name, rows))
        body.append("<table><tr><th>method</th><th>top-1 %</th><th>change (points)</th><th>latency ms</th>"
                    "<th>speed-up</th><th>size KB</th><th>size ratio</th></tr>")
        base = rows[0]
        for r in rows:
            body.append(f"<tr><td>{html.escape(r['method'])}</td><td>{r['accuracy']:.2f}</td>"
                        f"<td>{r['accuracy'] - base['accuracy']:+.2f}</td><td>{r['latency_ms']:.3f}</td>"
                        f"<td>{base['latency_ms'] / r['latency_ms']:.2f}x</td><td>{r['size_bytes'] / 1e3:.1f}</td>"
                        f"<td>{r['size_bytes'] / base['size_bytes']:.2f}</td></tr>")
        body.append("</table>")
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0 3em}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}")
    with open(path, "w") as f:
        f.write(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Tessera compression trade-offs</title>"
                f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["lenet5", "resnet14", "mlp"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--json", default="docs/compression_report.json")
    parser.add_argument("--html", default="docs/compression_report.html")
    args = parser.parse_args()
    calib, test, labels, description = data_sets()
    work = tempfile.mkdtemp(prefix="tessera_compression_")
    files = {"calib": os.path.join(work, "calib.npy"), "test": os.path.join(work, "test.npy"),
             "one": os.path.join(work, "one.npy"), "labels": labels}
    np.save(files["calib"], calib)
    np.save(files["test"], test)
    np.save(files["one"], test[:1])
    machine = subprocess.run(["sh", "-c", "lscpu | sed -n 's/Model name: *//p'"], capture_output=True,
                             text=True).stdout.strip()
    report = {"data": description, "machine": f"{machine}, {os.cpu_count()} cores", "threads": args.threads,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "models": {}}
    for name in args.models:
        model = os.path.join(ROOT, "models/trained", name + ".onnx")
        if not os.path.exists(model):
            print(f"skipping {name}: {model} not found", file=sys.stderr)
            continue
        rows = []
        for label, method_args in METHODS:
            try:
                row = measure(model, method_args, work, files, args.threads, args.iters)
            except NotApplicable:
                print(f"{name:9s} {label:18s} not applicable (no layer to rewrite)", flush=True)
                continue
            row["method"] = label
            rows.append(row)
            print(f"{name:9s} {label:18s} {row['accuracy']:6.2f}%  {row['latency_ms']:8.3f} ms  "
                  f"{row['size_bytes'] / 1e3:8.1f} KB", flush=True)
        report["models"][name] = rows
    with open(os.path.join(ROOT, args.json), "w") as f:
        json.dump(report, f, indent=1)
    write_html(os.path.join(ROOT, args.html), report)
    print(f"wrote {args.json} and {args.html}")


if __name__ == "__main__":
    main()
