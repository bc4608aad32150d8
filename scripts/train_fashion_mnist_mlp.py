#!/usr/bin/python3
# Trains a small MLP (784-512-512-10, ReLU) on Fashion-MNIST from Debian's dataset-fashion-mnist and
# exports it to ONNX with PyTorch's logits on models/trained/test_images.npy: the LLM-style (GEMV) model
# of the compression trade-off report (docs/TRAINED_MODELS.md, docs/COMPRESSION_LUT_GEMM.md).
#
# Run with Debian's Python (torch 1.13, onnx, numpy):
#   /usr/bin/python3 scripts/train_fashion_mnist_mlp.py [--out models/trained] [--force]
#       [--full-test DIR]   also write the whole normalized 10k test split (t10k_images.npy, t10k_labels.npy)
import argparse
import json
import os
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_fashion_mnist import DATA_DIR, MEAN, STD, cpu_name, load_split  # noqa: E402

SEED = 301
EPOCHS = 8
BATCH = 128
LR = 1e-3
WIDTHS = (784, 512, 512, 10)


class Mlp(nn.Module):
    """Flatten, then Linear-ReLU-Linear-ReLU-Linear (exported as Flatten + three Gemm)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(WIDTHS[0], WIDTHS[1])
        self.fc2 = nn.Linear(WIDTHS[1], WIDTHS[2])
        self.fc3 = nn.Linear(WIDTHS[2], WIDTHS[3])

    def forward(self, x):
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def predict(model, images, batch=1000):
    model.eval()
    with torch.no_grad():
        return torch.cat([model(images[i:i + batch]) for i in range(0, len(images), batch)])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="models/trained", help="output directory (default models/trained)")
    parser.add_argument("--data", default=DATA_DIR, help=f"Fashion-MNIST IDX files (default {DATA_DIR})")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--force", action="store_true", help="retrain when mlp.onnx exists")
    parser.add_argument("--full-test", default=None, help="also write the normalized 10k test split here")
    args = parser.parse_args()
    if not os.path.exists(os.path.join(args.data, "train-images-idx3-ubyte.gz")):
        sys.exit(f"no Fashion-MNIST in {args.data}: apt-get install dataset-fashion-mnist (scripts/setup.sh)")
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    train_images, train_labels = load_split(args.data, "train")
    test_images, test_labels = load_split(args.data, "t10k")
    if args.full_test:
        os.makedirs(args.full_test, exist_ok=True)
        np.save(os.path.join(args.full_test, "t10k_images.npy"), test_images.numpy())
        np.save(os.path.join(args.full_test, "t10k_labels.npy"), test_labels.numpy())
    onnx_path = os.path.join(args.out, "mlp.onnx")
    if os.path.exists(onnx_path) and not args.force:
        print(f"{onnx_path} exists (--force to retrain)")
        return
    subset_path = os.path.join(args.out, "test_images.npy")
    if not os.path.exists(subset_path):
        sys.exit(f"no {subset_path}: run scripts/train_fashion_mnist.py first (it writes the test subset)")
    subset = torch.from_numpy(np.load(subset_path))
    subset_labels = np.load(os.path.join(args.out, "test_labels.npy"))

    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    model = Mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    steps = (len(train_images) + BATCH - 1) // BATCH
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=EPOCHS * steps)
    start = time.time()
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(len(train_images), generator=generator)
        total = 0.0
        for step in range(steps):
            index = order[step * BATCH:(step + 1) * BATCH]
            loss = F.cross_entropy(model(train_images[index]), train_labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(index)
        accuracy = (predict(model, test_images).argmax(1) == test_labels).float().mean().item()
        print(f"mlp: epoch {epoch + 1}/{EPOCHS}  loss {total / len(train_images):.4f}  test accuracy {accuracy:.4f}"
              f"  {time.time() - start:6.1f} s", flush=True)
    seconds = time.time() - start
    model.eval()

    torch.onnx.export(model, (torch.zeros(1, 1, 28, 28),), onnx_path, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=13, do_constant_folding=False)
    onnx.checker.check_model(onnx_path)
    graph = onnx.load(onnx_path).graph
    logits = predict(model, subset).numpy().astype(np.float32)
    np.save(os.path.join(args.out, "mlp_logits.npy"), logits)
    test_accuracy = (predict(model, test_images).argmax(1) == test_labels).float().mean().item()
    meta = {
        "model": "mlp.onnx",
        "description": "MLP 784-512-512-10 with ReLU (Flatten + 3 Gemm)",
        "logits": "mlp_logits.npy",
        "images": "test_images.npy",
        "labels": "test_labels.npy",
        "normalization": f"(pixel / 255 - {MEAN}) / {STD}",
        "training": {"seed": SEED, "epochs": EPOCHS, "batch": BATCH, "optimizer": "Adam",
                     "learning_rate": LR, "schedule": "cosine to 0 over all steps", "seconds": round(seconds, 1),
                     "cpu": cpu_name(), "threads": args.threads},
        "parameters": sum(p.numel() for p in model.parameters()),
        "test_accuracy": round(test_accuracy, 4),
        "subset_accuracy": float((logits.argmax(1) == subset_labels).mean()),
        "onnx_nodes": sorted({node.op_type for node in graph.node}),
        "producer": f"torch {torch.__version__}, onnx {onnx.__version__}, numpy {np.__version__}",
    }
    with open(os.path.join(args.out, "mlp_meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(f"mlp: test accuracy {test_accuracy:.4f} on 10k, {meta['subset_accuracy']:.4f} on the subset; "
          f"wrote {onnx_path}")


if __name__ == "__main__":
    main()
