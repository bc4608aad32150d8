#!/usr/bin/python3
"""Exports a Hugging Face GPT-2 checkpoint folder (config.json + model.safetensors) to ONNX.

The graph is the whole-sequence forward: input `input_ids` int64 [batch, sequence], output
`logits` f32 [batch, sequence, vocab], both axes dynamic. It is written so that Tessera can run it
two ways (docs/GPT2.md):
- as a graph, with `tessera run` / the Session API (its fusion passes turn each layer's attention
  into one fused node);
- natively, with `tessera generate --model FILE.onnx`: the initializers keep the checkpoint's
  tensor names (h.N.attn.c_attn.weight, ...; no constant folding renames them) and the config is
  stored in the model's metadata under "tessera.gpt2.config", so the loader reads the weights into
  the KV-cache runtime exactly as from the checkpoint folder.
vocab.json and merges.txt are copied beside the output when the checkpoint has them.

Run with Debian's Python (torch 1.13, onnx):
  /usr/bin/python3 scripts/export_gpt2_onnx.py --checkpoint models/gpt2/tiny --out models/gpt2/tiny/onnx/model.onnx
"""
import argparse
import json
import math
import os
import shutil
import struct
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn

CONFIG_METADATA_KEY = "tessera.gpt2.config"
DEFAULT_OPSET = 14


def read_safetensors(path):
    """name -> float32 numpy array, for F32, F16 and BF16 tensors."""
    with open(path, "rb") as f:
        data = f.read()
    (header_size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_size])
    body = memoryview(data)[8 + header_size:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        raw = body[begin:end]
        dtype = entry["dtype"]
        if dtype == "F32":
            array = np.frombuffer(raw, dtype="<f4")
        elif dtype == "F16":
            array = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif dtype == "BF16":
            array = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit("%s: tensor %s has dtype %s; the exporter reads F32, F16 and BF16" % (path, name, dtype))
        tensors[name] = array.reshape(entry["shape"]).astype(np.float32)
    return tensors


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


ACTIVATIONS = {
    "gelu_new": gelu_new,
    "gelu_pytorch_tanh": gelu_new,
    "gelu": lambda x: F.gelu(x),
    "relu": F.relu,
}


def attach_parameter(root, dotted_name, tensor):
    """Registers `tensor` under its dotted name (h.0.attn.c_attn.weight) through nested modules, so
    that the exported initializer carries the checkpoint's name."""
    *path, leaf = dotted_name.split(".")
    module = root
    for part in path:
        if part not in module._modules:
            module.add_module(part, nn.Module())
        module = module._modules[part]
    module.register_parameter(leaf, nn.Parameter(tensor, requires_grad=False))


class Gpt2ForOnnx(nn.Module):
    """GPT-2 (GPT2LMHeadModel's math) over a batch of equal-length sequences."""

    def __init__(self, config, tensors):
        super().__init__()
        self.c = config
        self.prefix = "transformer." if "transformer.wte.weight" in tensors else ""
        self.activation = ACTIVATIONS[config["activation_function"]]
        for name, array in tensors.items():
            # The causal-mask buffers of old checkpoints are not weights.
            if name.endswith(".attn.bias") or name.endswith(".attn.masked_bias"):
                continue
            attach_parameter(self, name, torch.from_numpy(array.copy()))
        n = config["n_positions"]
        self.register_buffer("causal", torch.ones(n, n, dtype=torch.bool).tril().view(1, 1, n, n), persistent=False)
        self.register_buffer("positions", torch.arange(n).unsqueeze(0), persistent=False)
        self.has_lm_head = "lm_head.weight" in tensors

    def p(self, name):
        return self.get_parameter(self.prefix + name)

    def layer_norm(self, x, name):
        return F.layer_norm(x, (self.c["n_embd"],), self.p(name + ".weight"), self.p(name + ".bias"),
                            self.c["layer_norm_epsilon"])

    def conv1d(self, x, name):  # Hugging Face Conv1D: x W + b with W [in, out]
        return torch.matmul(x, self.p(name + ".weight")) + self.p(name + ".bias")

    def forward(self, input_ids):
        c = self.c
        batch, length = input_ids.shape
        heads, width = c["n_head"], c["n_embd"]
        head_size = width // heads
        x = F.embedding(input_ids, self.p("wte.weight")) + F.embedding(self.positions[:, :length],
                                                                        self.p("wpe.weight"))
        keep = self.causal[:, :, :length, :length]
        for layer in range(c["n_layer"]):
            h = "h.%d." % layer
            qkv = self.conv1d(self.layer_norm(x, h + "ln_1"), h + "attn.c_attn")
            q, k, v = (t.reshape(batch, length, heads, head_size).transpose(1, 2) for t in qkv.split(width, dim=2))
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(head_size)
            scores = scores.masked_fill(~keep, torch.finfo(torch.float32).min)
            attention = torch.matmul(scores.softmax(dim=-1), v).transpose(1, 2).reshape(batch, length, width)
            x = x + self.conv1d(attention, h + "attn.c_proj")
            x = x + self.conv1d(self.activation(self.conv1d(self.layer_norm(x, h + "ln_2"), h + "mlp.c_fc")),
                                h + "mlp.c_proj")
        x = self.layer_norm(x, "ln_f")
        head = self.get_parameter("lm_head.weight") if self.has_lm_head else self.p("wte.weight")
        return torch.matmul(x, head.t())


def load_config(folder):
    with open(os.path.join(folder, "config.json")) as f:
        text = f.read()
    config = json.loads(text)
    # GPT2Config's defaults for the fields the forward reads.
    defaults = {"n_positions": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12, "layer_norm_epsilon": 1e-5,
                "activation_function": "gelu_new"}
    resolved = dict(defaults, **{k: v for k, v in config.items() if v is not None})
    if resolved["activation_function"] not in ACTIVATIONS:
        raise SystemExit("%s: activation_function %r is not exported (known: %s)" % (
            folder, resolved["activation_function"], ", ".join(sorted(ACTIVATIONS))))
    return text, resolved


def export(checkpoint, out, opset=DEFAULT_OPSET):
    config_text, config = load_config(checkpoint)
    tensors = read_safetensors(os.path.join(checkpoint, "model.safetensors"))
    model = Gpt2ForOnnx(config, tensors).eval()
    example = torch.zeros(1, min(8, config["n_positions"]), dtype=torch.int64)
    out_dir = os.path.dirname(os.path.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(model, (example,), out, input_names=["input_ids"], output_names=["logits"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                        "logits": {0: "batch", 1: "sequence"}},
                          opset_version=opset, do_constant_folding=False)
    proto = onnx.load(out)
    entry = proto.metadata_props.add()
    entry.key, entry.value = CONFIG_METADATA_KEY, config_text
    proto.producer_name = "tessera scripts/export_gpt2_onnx.py (torch %s)" % torch.__version__
    onnx.save(proto, out)
    onnx.checker.check_model(out)
    for name in ("vocab.json", "merges.txt"):
        source = os.path.join(checkpoint, name)
        if os.path.exists(source) and os.path.abspath(os.path.dirname(source)) != out_dir:
            shutil.copyfile(source, os.path.join(out_dir, name))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="folder with config.json and model.safetensors")
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    args = parser.parse_args()
    export(args.checkpoint, args.out, args.opset)
    print("wrote %s" % args.out)


if __name__ == "__main__":
    sys.exit(main())
