#!/usr/bin/python3
# GPT-2 decode and prefill: Tessera (bench/gpt2_generation_bench) beside PyTorch with a KV cache
# (the plain-PyTorch GPT-2 of scripts/build_gpt2_checkpoints.py, on the same checkpoint, same
# threads, OpenBLAS), in alternating rounds of one run; against the machine's ceilings from
# `tessera machine`: decode against the bandwidth bound (weight bytes per token / measured
# bandwidth), prefill against peak FLOP/s. Results go in docs/PERFORMANCE.md.
#
#   /usr/bin/python3 scripts/build_gpt2_checkpoints.py --sizes 124m
#   /usr/bin/python3 bench/compare_gpt2_with_pytorch.py [--model models/gpt2/124m] [--threads 2]
#       [--rounds 5] [--refresh-machine]
import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=os.path.join(ROOT, "models", "gpt2", "124m"))
    parser.add_argument("--build", default=os.path.join(ROOT, "build"), help="Tessera build folder")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=5, help="alternating Tessera / PyTorch rounds")
    parser.add_argument("--context", type=int, default=8, help="prompt tokens before the decode steps")
    parser.add_argument("--decode-steps", type=int, default=64, help="PyTorch decode steps per round")
    parser.add_argument("--prefill", type=int, default=512, help="prompt tokens of the prefill case")
    parser.add_argument("--pytorch-blas-threads", type=int,
                        help="OpenBLAS threads for PyTorch (default: --threads); its intra-op threads are --threads")
    parser.add_argument("--refresh-machine", action="store_true",
                        help="measure the machine's ceilings again in this run (else the cached ones)")
    parser.add_argument("--json", help="also write the results as JSON to this file")
    return parser.parse_args()


ARGS = parse_args()
# OpenBLAS reads its thread count when it loads: set it before torch.
os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.pytorch_blas_threads or ARGS.threads)
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
import numpy as np  # noqa: E402
import torch  # noqa: E402


def load_reference_module():
    path = os.path.join(ROOT, "scripts", "build_gpt2_checkpoints.py")
    spec = importlib.util.spec_from_file_location("build_gpt2_checkpoints", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_safetensors(path):
    """The checkpoint's tensors as f32 torch tensors, names without the "transformer." prefix."""
    with open(path, "rb") as f:
        header_length = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(header_length))
        data = f.read()
    dtypes = {"F32": np.float32, "F16": np.float16}
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__" or name.endswith(".attn.bias") or name.endswith(".attn.masked_bias"):
            continue
        begin, end = info["data_offsets"]
        if info["dtype"] == "BF16":
            raw = np.frombuffer(data[begin:end], dtype="<u2").astype(np.uint32) << 16
            array = raw.view(np.float32)
        else:
            array = np.frombuffer(data[begin:end], dtype=dtypes[info["dtype"]]).astype(np.float32)
        tensors[name[len("transformer."):] if name.startswith("transformer.") else name] = \
            torch.from_numpy(array.reshape(info["shape"]).copy())
    return tensors


def machine_ceilings(tessera):
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "machine.json")
        command = [tessera, "machine", "--json", out, "--threads", str(ARGS.threads)]
        if ARGS.refresh_machine:
            command.append("--refresh")
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return json.load(open(out))


def tessera_round(bench):
    """One run of the Google Benchmark program: prefill and decode times in ms."""
    pattern = "BM_Gpt2Prefill/%d/%d/|BM_Gpt2Decode/%d/%d/" % (ARGS.prefill, ARGS.threads, ARGS.context, ARGS.threads)
    result = subprocess.run([bench, "--benchmark_filter=" + pattern, "--benchmark_format=json",
                             "--benchmark_min_time=1"], check=True, capture_output=True, text=True,
                            env=dict(os.environ, TESSERA_GPT2_MODEL=ARGS.model))
    times = {}
    for b in json.loads(result.stdout)["benchmarks"]:
        assert b["time_unit"] == "ms"
        times["prefill" if b["name"].startswith("BM_Gpt2Prefill") else "decode"] = b["real_time"]
    return times


def pytorch_round(model, prompt, prefill_ids):
    with torch.inference_mode():
        logits, past = model.forward(prompt, all_logits=False)
        token = int(torch.argmax(logits[-1]))
        start = time.perf_counter()
        for _ in range(ARGS.decode_steps):
            logits, past = model.forward(torch.tensor([token]), past, all_logits=False)
            token = int(torch.argmax(logits[-1]))
        decode = (time.perf_counter() - start) * 1e3 / ARGS.decode_steps
        start = time.perf_counter()
        model.forward(prefill_ids, all_logits=False)
        prefill = (time.perf_counter() - start) * 1e3
    return {"decode": decode, "prefill": prefill}


def main():
    tessera = os.path.join(ARGS.build, "tessera")
    bench = os.path.join(ARGS.build, "bench", "gpt2_generation_bench")
    for path in (tessera, bench, os.path.join(ARGS.model, "model.safetensors")):
        if not os.path.exists(path):
            sys.exit("missing %s (build Tessera; scripts/build_gpt2_checkpoints.py --sizes 124m)" % path)
    torch.set_num_threads(ARGS.threads)
    config = json.load(open(os.path.join(ARGS.model, "config.json")))
    C, V, L = config["n_embd"], config["vocab_size"], config["n_layer"]
    inner = config.get("n_inner") or 4 * C
    config = dict(config, n_inner=inner)
    reference = load_reference_module()
    model = reference.Gpt2(config, read_safetensors(os.path.join(ARGS.model, "model.safetensors")))
    generator = torch.Generator().manual_seed(7)
    prompt = torch.randint(0, V, (ARGS.context,), generator=generator)
    prefill_ids = torch.randint(0, V, (ARGS.prefill,), generator=generator)

    ceilings = machine_ceilings(tessera)
    pytorch_round(model, prompt, prefill_ids)  # warm-up
    tessera_times, pytorch_times = [], []
    for round_index in range(ARGS.rounds):
        tessera_times.append(tessera_round(bench))
        pytorch_times.append(pytorch_round(model, prompt, prefill_ids))
        print("round %d: Tessera decode %.2f ms/token, prefill %.1f ms; PyTorch decode %.2f ms/token, prefill %.1f ms"
              % (round_index + 1, tessera_times[-1]["decode"], tessera_times[-1]["prefill"],
                 pytorch_times[-1]["decode"], pytorch_times[-1]["prefill"]), flush=True)

    def median(rounds, key):
        return statistics.median(r[key] for r in rounds)

    # Weight bytes a decode step reads (Gpt2Model::decode_weight_bytes): every layer's
    # matrices and vectors, the final norm and the LM head.
    per_layer = 4 * C + C * 3 * C + 3 * C + C * C + C + C * inner + inner + inner * C + C
    weight_bytes = 4 * (L * per_layer + 2 * C + V * C)
    T = ARGS.prefill
    flops = L * (2 * T * (4 * C * C + 2 * C * inner) + 2 * C * T * (T + 1)) + 2 * C * V
    bandwidth = ceilings["bandwidth_gbs_all"] * 1e9
    peak = ceilings["peak_gflops_all"] * 1e9
    bound_ms = weight_bytes / bandwidth * 1e3
    results = {
        "date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": ceilings["cpu_model"], "threads": ARGS.threads, "rounds": ARGS.rounds,
        "load_average": os.getloadavg(), "machine_measured_at": ceilings["measured_at"],
        "bandwidth_gbs": ceilings["bandwidth_gbs_all"], "peak_gflops": ceilings["peak_gflops_all"],
        "decode_weight_mb": weight_bytes / 1e6, "bound_ms_per_token": bound_ms,
        "pytorch_blas_threads": int(os.environ["OPENBLAS_NUM_THREADS"]),
        "tessera_decode_ms": median(tessera_times, "decode"), "pytorch_decode_ms": median(pytorch_times, "decode"),
        "tessera_prefill_ms": median(tessera_times, "prefill"), "pytorch_prefill_ms": median(pytorch_times, "prefill"),
        "prefill_gflop": flops / 1e9, "torch": torch.__version__, "python": platform.python_version(),
    }
    r = results
    print()
    print("%s, %d threads (PyTorch's OpenBLAS: %d), %d rounds, %s; load average %.2f %.2f %.2f" % (
        r["cpu"], r["threads"], r["pytorch_blas_threads"], r["rounds"], r["date"], *r["load_average"]))
    print("machine: %.1f GB/s triad, %.1f GFLOP/s peak (measured %s)" % (
        r["bandwidth_gbs"], r["peak_gflops"], r["machine_measured_at"]))
    print("decode (context %d): %.1f MB of weights per token; bandwidth bound %.2f ms/token" % (
        ARGS.context, r["decode_weight_mb"], bound_ms))
    for name in ("tessera", "pytorch"):
        ms = r[name + "_decode_ms"]
        print("  %-8s %7.2f ms/token  %6.1f tokens/s  %5.0f%% of the bound  %5.1f GB/s" % (
            name, ms, 1e3 / ms, 100 * bound_ms / ms, weight_bytes / ms / 1e6))
    print("  Tessera / PyTorch time: %.2f" % (r["tessera_decode_ms"] / r["pytorch_decode_ms"]))
    print("prefill of %d tokens: %.1f GFLOP (causal attention, last position's logits)" % (T, r["prefill_gflop"]))
    for name in ("tessera", "pytorch"):
        ms = r[name + "_prefill_ms"]
        print("  %-8s %7.1f ms  %7.1f tokens/s  %6.1f GFLOP/s  %5.1f%% of peak" % (
            name, ms, T / ms * 1e3, flops / ms / 1e6, 100 * flops / ms / 1e6 / ceilings["peak_gflops_all"]))
    print("  Tessera / PyTorch time: %.2f" % (r["tessera_prefill_ms"] / r["pytorch_prefill_ms"]))
    if ARGS.json:
        with open(ARGS.json, "w") as f:
            json.dump(dict(results, tessera_rounds=tessera_times, pytorch_rounds=pytorch_times), f, indent=1)


if __name__ == "__main__":
    main()
