#!/usr/bin/python3
# Trains two small CNNs (LeNet-5 and a ResNet-14) on Fashion-MNIST from Debian's dataset-fashion-mnist,
# exports them to ONNX and writes held-out test images, labels and PyTorch's logits (docs/TRAINED_MODELS.md).
#
# Run with Debian's Python (torch 1.13, torchvision, onnx, numpy):
#   /usr/bin/python3 scripts/train_fashion_mnist.py [--out models/trained] [--models lenet5,resnet14] [--force]
import argparse
import gzip
import json
import os
import platform
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA_DIR = "/usr/share/datasets/fashion-mnist"  # Debian package dataset-fashion-mnist
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# Mean and standard deviation of the 60k training pixels scaled to [0, 1] (rounded); every image
# Tessera sees is normalized the same way: (pixel / 255 - MEAN) / STD.
MEAN = 0.2860
STD = 0.3530
SUBSET = 1000  # the held-out images written out: the first SUBSET of the 10k test split


# ---------------------------------------------------------------------------------------------
# Data: the IDX files (gzipped), parsed here (no torchvision download).


def read_idx(path):
    """Reads an IDX file (optionally gzipped) of unsigned bytes into a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, rank = data[0] << 8 | data[1], data[2], data[3]
    if zero != 0 or dtype_code != 0x08:
        sys.exit(f"{path}: not an IDX file of unsigned bytes (magic {data[:4].hex()})")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank)
    if body.size != int(np.prod(dims)):
        sys.exit(f"{path}: {body.size} bytes of data for dims {dims}")
    return body.reshape(dims)


def load_split(data_dir, prefix):
    images = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
        sys.exit(f"{data_dir}/{prefix}: images {images.shape}, labels {labels.shape}")
    normalized = (images.astype(np.float32) / np.float32(255) - np.float32(MEAN)) / np.float32(STD)
    return (torch.from_numpy(normalized.reshape(-1, 1, 28, 28).astype(np.float32)),
            torch.from_numpy(labels.astype(np.int64)))


# ---------------------------------------------------------------------------------------------
# Models.


class LeNet5(nn.Module):
    """LeNet-5 as usually rebuilt today: ReLU and max pooling, 28x28 input padded by the first conv."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)   # 6x28x28 -> pool 6x14x14
        self.conv2 = nn.Conv2d(6, 16, 5)             # 16x10x10 -> pool 16x5x5
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN; a 1x1 conv + BN on the shortcut when the shape changes."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class ResNet14(nn.Module):
    """CIFAR-style ResNet (He et al. 2016, 6n+2 layers with n=2): a 3x3 stem, three stages of two
    basic blocks at widths 16/32/64 (28x28, 14x14, 7x7), global average pooling, one linear layer."""

    def __init__(self, widths=(16, 32, 64), blocks_per_stage=2):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        layers, in_channels = [], widths[0]
        for stage, width in enumerate(widths):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(in_channels, width, stride))
                in_channels = width
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, 10)

    def forward(self, x):
        x = self.pool(self.stages(self.stem(x)))
        return self.fc(torch.flatten(x, 1))


# Per model: constructor, seed, epochs, peak learning rate, augmentation. Both use SGD with Nesterov
# momentum 0.9, weight decay 5e-4, batch 128 and a one-cycle learning-rate schedule.
RECIPES = {
    "lenet5": {"build": LeNet5, "seed": 201, "epochs": 15, "lr": 0.05, "flip": False,
               "description": "LeNet-5 (conv5-relu-maxpool x2, FC 400-120-84-10)"},
    "resnet14": {"build": ResNet14, "seed": 202, "epochs": 6, "lr": 0.2, "flip": True,
                 "description": "ResNet-14: 3x3 stem, 3 stages x 2 basic blocks (16/32/64, BatchNorm, "
                                "residual adds), global average pool, FC"},
}
BATCH = 128
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4


# ---------------------------------------------------------------------------------------------
# Training and evaluation.


def predict(model, images, batch=500):
    model.eval()
    with torch.no_grad():
        return torch.cat([model(images[i:i + batch]) for i in range(0, len(images), batch)])


def train(name, recipe, train_images, train_labels, test_images, test_labels):
    torch.manual_seed(recipe["seed"])
    generator = torch.Generator().manual_seed(recipe["seed"])
    model = recipe["build"]()
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe["lr"], momentum=MOMENTUM, nesterov=True,
                                weight_decay=WEIGHT_DECAY)
    steps_per_epoch = (len(train_images) + BATCH - 1) // BATCH
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe["lr"], epochs=recipe["epochs"],
                                                   steps_per_epoch=steps_per_epoch)
    start = time.time()
    for epoch in range(recipe["epochs"]):
        model.train()
        order = torch.randperm(len(train_images), generator=generator)
        total_loss = 0.0
        for step in range(steps_per_epoch):
            index = order[step * BATCH:(step + 1) * BATCH]
            images, labels = train_images[index], train_labels[index]
            if recipe["flip"]:  # random horizontal flip of half the batch
                flip = torch.rand(len(index), generator=generator) < 0.5
                images = torch.where(flip[:, None, None, None], images.flip(3), images)
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(index)
        accuracy = (predict(model, test_images).argmax(1) == test_labels).float().mean().item()
        print(f"{name}: epoch {epoch + 1}/{recipe['epochs']}  loss {total_loss / len(train_images):.4f}  "
              f"test accuracy {accuracy:.4f}  {time.time() - start:6.1f} s", flush=True)
    model.eval()
    return model, time.time() - start


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def export_onnx(model, path, opset):
    # PRESERVE keeps BatchNormalization nodes (Tessera folds them itself); the model is in eval
    # mode, so BN uses its running statistics. The batch dimension is symbolic.
    torch.onnx.export(model, (torch.zeros(1, 1, 28, 28),), path, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset,
                      do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE)
    onnx.checker.check_model(path)
    graph = onnx.load(path).graph
    return len(graph.node), sorted({node.op_type for node in graph.node})


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="models/trained", help="output directory (default models/trained)")
    parser.add_argument("--models", default=",".join(RECIPES),
                        help="comma-separated list (default: all): " + ", ".join(RECIPES))
    parser.add_argument("--data", default=DATA_DIR, help=f"Fashion-MNIST IDX files (default {DATA_DIR})")
    parser.add_argument("--opset", type=int, default=13, help="ONNX opset (default 13)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--force", action="store_true", help="retrain models that already exist")
    args = parser.parse_args()

    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        sys.exit(f"unknown model(s): {', '.join(unknown)}; known: {', '.join(RECIPES)}")
    if not os.path.exists(os.path.join(args.data, "train-images-idx3-ubyte.gz")):
        sys.exit(f"no Fashion-MNIST in {args.data}: apt-get install dataset-fashion-mnist (scripts/setup.sh)")
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)

    train_images, train_labels = load_split(args.data, "train")
    test_images, test_labels = load_split(args.data, "t10k")
    subset_images, subset_labels = test_images[:SUBSET], test_labels[:SUBSET]
    np.save(os.path.join(args.out, "test_images.npy"), subset_images.numpy())
    np.save(os.path.join(args.out, "test_labels.npy"), subset_labels.numpy())

    meta_path = os.path.join(args.out, "meta.json")
    meta = {}
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
    meta["dataset"] = {
        "name": "Fashion-MNIST",
        "source": f"Debian package dataset-fashion-mnist ({args.data})",
        "classes": CLASSES,
        "train_images": len(train_images),
        "test_images": len(test_images),
        "normalization": f"(pixel / 255 - {MEAN:.4f}) / {STD:.4f}",
        "mean": MEAN,
        "std": STD,
        "subset": f"the first {SUBSET} images of the test split (t10k)",
        "images": "test_images.npy",
        "labels": "test_labels.npy",
        "input": {"name": "input", "shape": [SUBSET, 1, 28, 28], "dtype": "float32"},
    }
    meta["producer"] = f"torch {torch.__version__}, onnx {onnx.__version__}, numpy {np.__version__}"
    meta.setdefault("models", {})

    for name in names:
        model_file = f"{name}.onnx"
        if os.path.exists(os.path.join(args.out, model_file)) and name in meta["models"] and not args.force:
            print(f"{name}: exists, skipped (--force to retrain)")
            continue
        recipe = RECIPES[name]
        model, seconds = train(name, recipe, train_images, train_labels, test_images, test_labels)
        logits = predict(model, test_images)
        subset_logits = predict(model, subset_images, batch=100)
        test_accuracy = (logits.argmax(1) == test_labels).float().mean().item()
        subset_accuracy = (subset_logits.argmax(1) == subset_labels).float().mean().item()
        # The smallest gap between the top two logits: how close any subset answer is to a tie.
        top2 = subset_logits.topk(2, dim=1).values
        np.save(os.path.join(args.out, f"{name}_logits.npy"), subset_logits.numpy().astype(np.float32))
        node_count, op_types = export_onnx(model, os.path.join(args.out, model_file), args.opset)
        meta["models"][name] = {
            "description": recipe["description"],
            "model": model_file,
            "logits": f"{name}_logits.npy",
            "output": {"name": "logits", "shape": [SUBSET, 10], "dtype": "float32"},
            "test_accuracy": round(test_accuracy, 4),
            "subset_accuracy": round(subset_accuracy, 4),
            "parameters": sum(p.numel() for p in model.parameters()),
            "epochs": recipe["epochs"],
            "seed": recipe["seed"],
            "training_seconds": round(seconds, 1),
            "training": f"SGD nesterov momentum {MOMENTUM}, weight decay {WEIGHT_DECAY}, batch {BATCH}, "
                        f"one-cycle lr peak {recipe['lr']}" + (", random horizontal flips" if recipe["flip"] else ""),
            "threads": args.threads,
            "cpu": cpu_name(),
            "opset": args.opset,
            "node_count": node_count,
            "op_types": op_types,
            "min_top2_logit_gap": round(float((top2[:, 0] - top2[:, 1]).min()), 6),
        }
        print(f"{name}: test accuracy {test_accuracy:.4f} (10k), {subset_accuracy:.4f} (first {SUBSET}), "
              f"{meta['models'][name]['parameters']} parameters, trained in {seconds:.1f} s", flush=True)

    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
