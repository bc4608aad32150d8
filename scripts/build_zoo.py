#!/usr/bin/python3
# Builds Tessera's model zoo: seeded random-weight CNNs (torchvision) and transformer stacks
# exported to ONNX, with seeded inputs and PyTorch's outputs as .npy references (docs/ZOO.md).
#
# Run with Debian's Python (torch 1.13, torchvision, onnx, numpy):
#   /usr/bin/python3 scripts/build_zoo.py [--out models/zoo] [--models resnet18,bert_tiny] [--force]
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

# Each model gets its own seeds so that building one model never changes another.
MODEL_SEEDS = {
    "resnet18": 101,
    "resnet50": 102,
    "mobilenet_v2": 103,
    "vgg11": 104,
    "bert_tiny": 105,
    "gpt2_tiny": 106,
    "bert_base": 107,
}
INPUT_SEED_OFFSET = 1000  # inputs use seed + 1000


def uniform(shape, low, high, generator):
    return torch.empty(shape).uniform_(low, high, generator=generator)


# ---------------------------------------------------------------------------------------------
# CNNs from torchvision with random weights and random (but well-scaled) BatchNorm statistics.


def randomize_batchnorm(model, generator):
    """Gives every BatchNorm non-trivial statistics and affine parameters.

    Pure random statistics make deep nets blow up, so we first measure realistic running
    statistics on random images (train mode, cumulative average), then perturb them and draw
    random scale/shift, so that folding BN into convolutions is really exercised."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(2, 3, 224, 224, generator=generator))
    model.eval()
    with torch.no_grad():
        for m in norms:
            c = m.num_features
            std = m.running_var.sqrt()
            m.running_mean.add_(0.2 * std * torch.randn(c, generator=generator))
            m.running_var.mul_(uniform(c, 0.6, 1.6, generator))
            m.weight.copy_(uniform(c, 0.6, 1.4, generator))
            m.bias.copy_(0.2 * torch.randn(c, generator=generator))
            m.momentum = 0.1


def build_torchvision(name, seed):
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(weights=None)
    generator = torch.Generator().manual_seed(seed)
    randomize_batchnorm(model, generator)
    model.eval()
    inputs_generator = torch.Generator().manual_seed(seed + INPUT_SEED_OFFSET)
    image = torch.randn(1, 3, 224, 224, generator=inputs_generator)
    return {
        "model": model,
        "inputs": [("input", image)],
        "outputs": ["logits"],
        "description": f"torchvision.models.{name}(weights=None), random weights, random BatchNorm "
        "statistics; input 1x3x224x224 N(0,1)",
    }


# ---------------------------------------------------------------------------------------------
# Transformers written from plain torch modules.


def init_transformer_(model, generator, embedding_std):
    """Linear weights N(0, 1/fan_in) so attention scores are O(1) (softmax not near-uniform);
    LayerNorm affine parameters away from identity; embeddings N(0, embedding_std^2)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) / math.sqrt(m.in_features))
                if m.bias is not None:
                    m.bias.copy_(0.05 * torch.randn(m.bias.shape, generator=generator))
            elif isinstance(m, nn.LayerNorm):
                m.weight.copy_(uniform(m.weight.shape, 0.8, 1.2, generator))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=generator))
            elif isinstance(m, nn.Embedding):
                m.weight.copy_(embedding_std * torch.randn(m.weight.shape, generator=generator))


def split_heads(x, heads):
    batch, length, hidden = x.shape
    return x.view(batch, length, heads, hidden // heads).transpose(1, 2)


def merge_heads(x):
    batch, heads, length, head_size = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_size)


class BertLayer(nn.Module):
    """Post-LayerNorm encoder layer (BERT): separate Q/K/V projections, erf GELU."""

    def __init__(self, hidden, heads, intermediate):
        super().__init__()
        self.heads = heads
        self.scale = 1.0 / math.sqrt(hidden // heads)
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attention_output = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.intermediate = nn.Linear(hidden, intermediate)
        self.output = nn.Linear(intermediate, hidden)
        self.output_norm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x, mask_bias):
        q = split_heads(self.query(x), self.heads)
        k = split_heads(self.key(x), self.heads)
        v = split_heads(self.value(x), self.heads)
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.scale + mask_bias
        context = merge_heads(torch.matmul(torch.softmax(scores, dim=-1), v))
        x = self.attention_norm(x + self.attention_output(context))
        return self.output_norm(x + self.output(F.gelu(self.intermediate(x))))


class BertEncoder(nn.Module):
    def __init__(self, vocab=30522, hidden=256, layers=4, heads=4, intermediate=1024, max_positions=512):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden)
        self.position_embeddings = nn.Embedding(max_positions, hidden)
        self.embedding_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.layers = nn.ModuleList(BertLayer(hidden, heads, intermediate) for _ in range(layers))
        self.pooler = nn.Linear(hidden, hidden)
        self.register_buffer("position_ids", torch.arange(max_positions).unsqueeze(0), persistent=False)

    def forward(self, input_ids, attention_mask):
        length = input_ids.shape[1]
        positions = self.position_ids[:, :length]
        x = self.embedding_norm(self.word_embeddings(input_ids) + self.position_embeddings(positions))
        # 1 = attend, 0 = padding; padded keys get a large negative score.
        mask_bias = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * -10000.0
        for layer in self.layers:
            x = layer(x, mask_bias)
        pooled = torch.tanh(self.pooler(x[:, 0]))
        return x, pooled


def gelu_tanh(x):
    # GPT-2's GELU approximation, written out so that it exports as Tanh/Pow/Mul/Add.
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class GptBlock(nn.Module):
    """Pre-LayerNorm decoder block (GPT-2): fused QKV projection, causal attention, tanh GELU."""

    def __init__(self, hidden, heads, max_positions):
        super().__init__()
        self.heads = heads
        self.hidden = hidden
        self.scale = 1.0 / math.sqrt(hidden // heads)
        self.norm_1 = nn.LayerNorm(hidden, eps=1e-5)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.projection = nn.Linear(hidden, hidden)
        self.norm_2 = nn.LayerNorm(hidden, eps=1e-5)
        self.fc = nn.Linear(hidden, 4 * hidden)
        self.fc_projection = nn.Linear(4 * hidden, hidden)
        causal = torch.tril(torch.ones(max_positions, max_positions, dtype=torch.bool))
        self.register_buffer("causal", causal.view(1, 1, max_positions, max_positions), persistent=False)

    def forward(self, x):
        length = x.shape[1]
        q, k, v = self.qkv(self.norm_1(x)).split(self.hidden, dim=2)
        q, k, v = (split_heads(t, self.heads) for t in (q, k, v))
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        scores = scores.masked_fill(~self.causal[:, :, :length, :length], -1e9)
        x = x + self.projection(merge_heads(torch.matmul(torch.softmax(scores, dim=-1), v)))
        return x + self.fc_projection(gelu_tanh(self.fc(self.norm_2(x))))


class GptDecoder(nn.Module):
    def __init__(self, vocab=50257, hidden=256, layers=4, heads=4, max_positions=1024):
        super().__init__()
        self.token_embeddings = nn.Embedding(vocab, hidden)
        self.position_embeddings = nn.Embedding(max_positions, hidden)
        self.blocks = nn.ModuleList(GptBlock(hidden, heads, max_positions) for _ in range(layers))
        self.final_norm = nn.LayerNorm(hidden, eps=1e-5)
        self.register_buffer("position_ids", torch.arange(max_positions).unsqueeze(0), persistent=False)

    def forward(self, input_ids):
        length = input_ids.shape[1]
        x = self.token_embeddings(input_ids) + self.position_embeddings(self.position_ids[:, :length])
        for block in self.blocks:
            x = block(x)
        # Tied language-model head: the token embedding matrix, transposed.
        return torch.matmul(self.final_norm(x), self.token_embeddings.weight.t())


def build_bert_tiny(seed):
    torch.manual_seed(seed)
    model = BertEncoder()
    init_transformer_(model, torch.Generator().manual_seed(seed), embedding_std=1.0)
    model.eval()
    g = torch.Generator().manual_seed(seed + INPUT_SEED_OFFSET)
    input_ids = torch.randint(0, 30522, (1, 128), generator=g, dtype=torch.int64)
    attention_mask = torch.ones(1, 128, dtype=torch.int64)
    attention_mask[:, 100:] = 0  # the last 28 tokens are padding
    return {
        "model": model,
        "inputs": [("input_ids", input_ids), ("attention_mask", attention_mask)],
        "outputs": ["last_hidden_state", "pooler_output"],
        "description": "BERT-style post-LN encoder: vocab 30522, 4 layers, hidden 256, 4 heads, "
        "FFN 1024, erf GELU, learned positions, seq 128 (last 28 tokens masked)",
    }


def build_bert_base(seed):
    """BERT-base shapes (110M parameters) for benchmarks; not in the default set."""
    torch.manual_seed(seed)
    model = BertEncoder(hidden=768, layers=12, heads=12, intermediate=3072)
    init_transformer_(model, torch.Generator().manual_seed(seed), embedding_std=1.0)
    model.eval()
    g = torch.Generator().manual_seed(seed + INPUT_SEED_OFFSET)
    input_ids = torch.randint(0, 30522, (1, 128), generator=g, dtype=torch.int64)
    attention_mask = torch.ones(1, 128, dtype=torch.int64)
    attention_mask[:, 100:] = 0
    return {
        "model": model,
        "inputs": [("input_ids", input_ids), ("attention_mask", attention_mask)],
        "outputs": ["last_hidden_state", "pooler_output"],
        "description": "BERT-base-shaped post-LN encoder: vocab 30522, 12 layers, hidden 768, 12 heads, "
        "FFN 3072, erf GELU, seq 128 (last 28 tokens masked); benchmark model, built on request",
    }


def build_gpt2_tiny(seed):
    torch.manual_seed(seed)
    model = GptDecoder()
    # Small embeddings keep the tied head's logits O(1-10) rather than O(100).
    init_transformer_(model, torch.Generator().manual_seed(seed), embedding_std=0.25)
    model.eval()
    g = torch.Generator().manual_seed(seed + INPUT_SEED_OFFSET)
    input_ids = torch.randint(0, 50257, (1, 64), generator=g, dtype=torch.int64)
    return {
        "model": model,
        "inputs": [("input_ids", input_ids)],
        "outputs": ["logits"],
        "description": "GPT-2-style pre-LN decoder: vocab 50257, 4 layers, hidden 256, 4 heads, "
        "FFN 1024, tanh GELU, causal mask, tied LM head, seq 64",
    }


BUILDERS = {
    "resnet18": lambda seed: build_torchvision("resnet18", seed),
    "resnet50": lambda seed: build_torchvision("resnet50", seed),
    "mobilenet_v2": lambda seed: build_torchvision("mobilenet_v2", seed),
    "vgg11": lambda seed: build_torchvision("vgg11", seed),
    "bert_tiny": build_bert_tiny,
    "gpt2_tiny": build_gpt2_tiny,
    "bert_base": build_bert_base,
}
# Built only when named in --models (large; used by benchmarks, not by the tests).
ON_REQUEST = {"bert_base"}

# ---------------------------------------------------------------------------------------------


def numpy_dtype_name(array):
    return {np.float32: "float32", np.int64: "int64", np.int32: "int32", np.bool_: "bool"}.get(
        array.dtype.type, str(array.dtype))


def build_one(name, out_dir, opset):
    seed = MODEL_SEEDS[name]
    spec = BUILDERS[name](seed)
    model = spec["model"]
    input_names = [n for n, _ in spec["inputs"]]
    input_tensors = tuple(t for _, t in spec["inputs"])
    with torch.no_grad():
        outputs = model(*input_tensors)
    if isinstance(outputs, torch.Tensor):
        outputs = (outputs,)

    directory = os.path.join(out_dir, name)
    os.makedirs(directory, exist_ok=True)
    model_path = os.path.join(directory, "model.onnx")
    # PRESERVE keeps BatchNormalization nodes (EVAL would let the exporter fold them into the
    # convolutions); the model itself is in eval mode, so BN uses its running statistics.
    torch.onnx.export(
        model,
        input_tensors,
        model_path,
        input_names=input_names,
        output_names=spec["outputs"],
        opset_version=opset,
        do_constant_folding=False,
        training=torch.onnx.TrainingMode.PRESERVE,
    )
    onnx.checker.check_model(model_path)

    meta = {
        "name": name,
        "model": "model.onnx",
        "description": spec["description"],
        "opset": opset,
        "seed": seed,
        "input_seed": seed + INPUT_SEED_OFFSET,
        "producer": f"torch {torch.__version__}, torchvision {torchvision.__version__}",
        "inputs": [],
        "outputs": [],
    }
    for k, (input_name, tensor) in enumerate(spec["inputs"]):
        array = tensor.numpy()
        np.save(os.path.join(directory, f"input_{k}.npy"), array)
        meta["inputs"].append({"name": input_name, "file": f"input_{k}.npy",
                               "shape": list(array.shape), "dtype": numpy_dtype_name(array)})
    for k, (output_name, tensor) in enumerate(zip(spec["outputs"], outputs)):
        array = tensor.detach().to(torch.float32).numpy()
        np.save(os.path.join(directory, f"output_{k}.npy"), array)
        meta["outputs"].append({"name": output_name, "file": f"output_{k}.npy",
                                "shape": list(array.shape), "dtype": "float32",
                                "abs_max": float(np.abs(array).max()), "std": float(array.std())})
    graph = onnx.load(model_path, load_external_data=False).graph
    meta["node_count"] = len(graph.node)
    meta["op_types"] = sorted({node.op_type for node in graph.node})
    with open(os.path.join(directory, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    return meta


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="models/zoo", help="output directory (default models/zoo)")
    parser.add_argument("--models", default=",".join(n for n in BUILDERS if n not in ON_REQUEST),
                        help="comma-separated list (default: all but " + ", ".join(sorted(ON_REQUEST)) + "): " +
                        ", ".join(BUILDERS))
    parser.add_argument("--opset", type=int, default=13, help="ONNX opset (default 13)")
    parser.add_argument("--force", action="store_true", help="rebuild models that already exist")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.models.replace(" ", ",").split(",") if n.strip()]
    unknown = [n for n in names if n not in BUILDERS]
    if unknown:
        sys.exit(f"unknown model(s): {', '.join(unknown)}; known: {', '.join(BUILDERS)}")

    start = time.time()
    for name in names:
        if os.path.exists(os.path.join(args.out, name, "meta.json")) and not args.force:
            print(f"{name:14s} exists, skipped (--force to rebuild)")
            continue
        t0 = time.time()
        meta = build_one(name, args.out, args.opset)
        outputs = ", ".join(f"{o['name']} {o['shape']}" for o in meta["outputs"])
        print(f"{name:14s} {time.time() - t0:6.1f} s  {meta['node_count']:5d} nodes  -> {outputs}",
              flush=True)
    print(f"zoo built in {time.time() - start:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
