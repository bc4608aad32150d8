#!/usr/bin/python3
# Pruned-model references for the sparsity method (docs/COMPRESSION_SPARSITY.md): loads the trained
# Fashion-MNIST models' weights from their ONNX files into the PyTorch modules, prunes them with the
# same rules as Tessera (src/compression/sparse_pruning.h), and writes the logits of the committed
# test images for tests/sparse_models_test.cpp plus accuracies on the whole 10k test split.
#
#   /usr/bin/python3 scripts/build_sparse_references.py [--out models/trained/sparse] [--full-test]
import argparse
import importlib.util
import json
import os
import sys

import numpy as np
import onnx
import onnx.numpy_helper
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
spec = importlib.util.spec_from_file_location("train_fashion_mnist", os.path.join(HERE, "train_fashion_mnist.py"))
train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train)

# Configurations: (name, method, argument). magnitude/global: sparsity; n_of_m: (n, m).
CONFIGS = [("dense", None, None),
           ("magnitude50", "magnitude", 0.5), ("magnitude75", "magnitude", 0.75),
           ("magnitude90", "magnitude", 0.9), ("magnitude95", "magnitude", 0.95),
           ("global50", "global", 0.5), ("global75", "global", 0.75), ("global90", "global", 0.9),
           ("nm2of4", "n_of_m", (2, 4)), ("nm1of4", "n_of_m", (1, 4))]
# The configurations whose logits the C++ test compares with Tessera's rewritten graphs.
TEST_CONFIGS = ["magnitude75", "global90", "nm2of4"]


def pruned_count(count, sparsity):
    """round(sparsity * count), half up, as sparse::pruned_count."""
    return min(count, int(np.floor(sparsity * count + 0.5)))


def keep_mask(magnitudes, keep):
    """The `keep` largest magnitudes, ties to lower indices: a stable sort on -magnitude."""
    order = np.argsort(-magnitudes, kind="stable")
    mask = np.zeros(magnitudes.size, dtype=bool)
    mask[order[:keep]] = True
    return mask


def onnx_weights(path):
    """Initializers by name, with the exporter's Identity aliases (deduplicated equal tensors)."""
    model = onnx.load(path)
    tensors = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in tensors:
            tensors[node.output[0]] = tensors[node.input[0]]
    # Conv/Gemm weights in graph order: Tessera prunes in node order (it matters for global ties).
    order = [node.input[1] for node in model.graph.node if node.op_type in ("Conv", "Gemm")]
    return tensors, order


def load_model(name, path):
    model = train.RECIPES[name]["build"]()
    tensors, order = onnx_weights(path)
    state = model.state_dict()
    for key in state:
        if key.endswith("num_batches_tracked"):
            continue
        if key not in tensors:
            sys.exit(f"{path}: no tensor {key}")
        state[key] = torch.from_numpy(tensors[key].copy())
    model.load_state_dict(state)
    model.eval()
    return model, order


def prune(model, order, method, argument):
    """Prunes the weights named in `order` in place (rows = outputs, the rest the reduction axis)."""
    params = dict(model.named_parameters())
    weights = [params[name] for name in order]
    with torch.no_grad():
        if method == "magnitude":
            for w in weights:
                flat = w.detach().numpy().reshape(-1)
                mask = keep_mask(np.abs(flat), flat.size - pruned_count(flat.size, argument))
                w.copy_(torch.from_numpy(np.where(mask, flat, 0).reshape(w.shape).astype(np.float32)))
        elif method == "global":
            flat = np.concatenate([w.detach().numpy().reshape(-1) for w in weights])
            mask = keep_mask(np.abs(flat), flat.size - pruned_count(flat.size, argument))
            start = 0
            for w in weights:
                n = w.numel()
                piece = np.where(mask[start:start + n], flat[start:start + n], 0).reshape(w.shape)
                w.copy_(torch.from_numpy(piece.astype(np.float32)))
                start += n
        elif method == "n_of_m":
            n, m = argument
            for w in weights:
                rows = w.detach().numpy().reshape(w.shape[0], -1).copy()
                for r in range(rows.shape[0]):
                    for g0 in range(0, rows.shape[1], m):
                        group = rows[r, g0:g0 + m]
                        if group.size > n:
                            group[~keep_mask(np.abs(group), n)] = 0
                w.copy_(torch.from_numpy(rows.reshape(w.shape)))
    zeros = sum(int((w == 0).sum()) for w in weights)
    total = sum(w.numel() for w in weights)
    return zeros / total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(ROOT, "models/trained/sparse"))
    parser.add_argument("--full-test", action="store_true", help="also the accuracy on the 10k test split")
    args = parser.parse_args()
    torch.set_num_threads(2)
    os.makedirs(args.out, exist_ok=True)
    trained = os.path.join(ROOT, "models/trained")
    images = torch.from_numpy(np.load(os.path.join(trained, "test_images.npy")))
    labels = np.load(os.path.join(trained, "test_labels.npy"))
    if args.full_test:
        full_images, full_labels = train.load_split(train.DATA_DIR, "t10k")
    results = {}
    for name in ("lenet5", "resnet14"):
        results[name] = {}
        for config, method, argument in CONFIGS:
            model, order = load_model(name, os.path.join(trained, f"{name}.onnx"))
            sparsity = prune(model, order, method, argument) if method else 0.0
            logits = train.predict(model, images).numpy()
            entry = {"sparsity": round(sparsity, 6),
                     "subset_accuracy": float((logits.argmax(1) == labels).mean())}
            if config in TEST_CONFIGS:
                np.save(os.path.join(args.out, f"{name}_{config}_logits.npy"), logits.astype(np.float32))
            if args.full_test:
                full = train.predict(model, full_images).numpy()
                entry["test_accuracy"] = float((full.argmax(1) == full_labels.numpy()).mean())
            results[name][config] = entry
            print(name, config, entry, flush=True)
    if args.full_test:
        with open(os.path.join(args.out, "accuracy.json"), "w") as f:
            json.dump({"producer": f"torch {torch.__version__}", "configs": {c: [m, a] for c, m, a in CONFIGS},
                       "models": results}, f, indent=2)


if __name__ == "__main__":
    main()
