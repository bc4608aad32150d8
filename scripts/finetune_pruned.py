#!/usr/bin/python3
# Short fine-tuning of the pruned Fashion-MNIST models (docs/COMPRESSION_SPARSITY.md): prunes the
# trained weights with the same rules as Tessera (scripts/build_sparse_references.py), trains with
# the pruning masks held fixed (pruned weights stay exactly zero), and writes the fine-tuned models
# as ONNX with their logits on the committed test images and their accuracy on the 10k test split.
#
#   /usr/bin/python3 scripts/finetune_pruned.py [--out models/trained/sparse] [--runs lenet5:global90,...]
import argparse
import importlib.util
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
spec = importlib.util.spec_from_file_location("build_sparse_references", os.path.join(HERE, "build_sparse_references.py"))
refs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(refs)
train = refs.train

# (model, configuration, epochs, peak learning rate); configurations as in build_sparse_references.
RUNS = [("lenet5", "global90", 2, 0.02), ("lenet5", "nm2of4", 2, 0.02),
        ("resnet14", "global75", 1, 0.05), ("resnet14", "nm2of4", 1, 0.05)]
SEED = 301


def finetune(model, order, epochs, lr, flip, train_images, train_labels):
    params = dict(model.named_parameters())
    masks = {name: (params[name] != 0).float() for name in order}
    generator = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=train.WEIGHT_DECAY)
    steps_per_epoch = (len(train_images) + train.BATCH - 1) // train.BATCH
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch)
    for _ in range(epochs):
        model.train()
        order_index = torch.randperm(len(train_images), generator=generator)
        for step in range(steps_per_epoch):
            index = order_index[step * train.BATCH:(step + 1) * train.BATCH]
            images, labels = train_images[index], train_labels[index]
            if flip:
                chosen = torch.rand(len(index), generator=generator) < 0.5
                images = torch.where(chosen[:, None, None, None], images.flip(3), images)
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            with torch.no_grad():  # the pruned weights stay exactly zero
                for name, mask in masks.items():
                    params[name].mul_(mask)
    model.eval()
    zeros = sum(int((params[n] == 0).sum()) for n in order)
    return zeros / sum(params[n].numel() for n in order)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(ROOT, "models/trained/sparse"))
    parser.add_argument("--runs", default="", help="model:config pairs to run (default: all of RUNS)")
    args = parser.parse_args()
    chosen = set(args.runs.split(",")) if args.runs else None
    torch.set_num_threads(2)
    trained = os.path.join(ROOT, "models/trained")
    train_images, train_labels = train.load_split(train.DATA_DIR, "train")
    test_images, test_labels = train.load_split(train.DATA_DIR, "t10k")
    subset = torch.from_numpy(np.load(os.path.join(trained, "test_images.npy")))
    configs = {name: (method, argument) for name, method, argument in refs.CONFIGS}
    summary = os.path.join(args.out, "finetune.json")
    results = json.load(open(summary))["runs"] if os.path.exists(summary) else {}  # runs done before
    for name, config, epochs, lr in RUNS:
        if chosen is not None and f"{name}:{config}" not in chosen:
            continue
        start = time.time()
        model, order = refs.load_model(name, os.path.join(trained, f"{name}.onnx"))
        method, argument = configs[config]
        refs.prune(model, order, method, argument)
        before = (train.predict(model, test_images).argmax(1) == test_labels).float().mean().item()
        sparsity = finetune(model, order, epochs, lr, train.RECIPES[name]["flip"], train_images, train_labels)
        after = (train.predict(model, test_images).argmax(1) == test_labels).float().mean().item()
        stem = f"{name}_{config}_finetuned"
        train.export_onnx(model, os.path.join(args.out, stem + ".onnx"), 13)
        np.save(os.path.join(args.out, stem + "_logits.npy"), train.predict(model, subset).numpy().astype(np.float32))
        results[stem] = {"model": name, "config": config, "epochs": epochs, "peak_lr": lr, "seed": SEED,
                         "sparsity": round(sparsity, 6), "test_accuracy_pruned": before,
                         "test_accuracy_finetuned": after, "seconds": round(time.time() - start, 1)}
        print(stem, results[stem], flush=True)
        # Written after every run, so a stopped script keeps what it finished.
        with open(summary, "w") as f:
            json.dump({"producer": f"torch {torch.__version__}", "threads": 2, "runs": results}, f, indent=2)


if __name__ == "__main__":
    main()
