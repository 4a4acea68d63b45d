"""Train PyTorch's version of our ResNet-20 on Fashion-MNIST and log each epoch.

The model matches `resnet --model resnet20` at 28x28x1: a 3x3 stem of 16 channels
without bias, batch norm and ReLU; three stages of three basic blocks of 16, 32
and 64 channels (stride 2 at the start of stages 2 and 3, 1x1 projection
shortcuts with batch norm where the shape changes); global average pooling and
a dense layer. Batch norm uses Keras's momentum 0.99 and epsilon 1e-3, and
kernels start Glorot-uniform, as ours do.

Prints one JSON object per epoch on standard output:
{"epoch", "time", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}
where time is the wall time since the first step, evaluations included.
"""

import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
from torch import nn


def read_idx(path):
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(directory):
    def pair(prefix):
        images = read_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"))
        labels = read_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"))
        return images.astype(np.float32)[:, None] / 255.0, labels.astype(np.int64)

    x_train, y_train = pair("train")
    x_test, y_test = pair("t10k")
    mean, std = x_train.mean(), x_train.std()
    return (x_train - mean) / std, y_train, (x_test - mean) / std, y_test


def norm(channels):
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class BasicBlock(nn.Module):
    def __init__(self, channels_in, channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels, 3, stride, 1, bias=False)
        self.bn1 = norm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = norm(channels)
        self.shortcut = None
        if stride != 1 or channels_in != channels:
            self.shortcut = nn.Sequential(nn.Conv2d(channels_in, channels, 1, stride, bias=False), norm(channels))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNet20(nn.Module):
    def __init__(self, channels_in, classes):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels_in, 16, 3, 1, 1, bias=False), norm(16), nn.ReLU())
        blocks, width = [], 16
        for stage in range(3):
            for block in range(3):
                channels = 16 << stage
                blocks.append(BasicBlock(width, channels, 2 if stage > 0 and block == 0 else 1))
                width = channels
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(64, classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=0.1, help="one-cycle peak rate")
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--stop-at", type=float, default=None, help="stop once val_accuracy reaches this")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x_train, y_train, x_test, y_test = load(args.data)
    x_train, y_train = torch.from_numpy(x_train), torch.from_numpy(y_train)
    x_test, y_test = torch.from_numpy(x_test), torch.from_numpy(y_test)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format

    model = ResNet20(1, 10).to(memory_format=memory_format)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0}],
        lr=args.learning_rate, momentum=args.momentum, nesterov=True)
    steps = math.ceil(len(x_train) / args.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.learning_rate, epochs=args.epochs, steps_per_epoch=steps, cycle_momentum=False)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(args.seed)

    started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        total, correct = 0.0, 0
        for step in range(steps):
            batch = order[step * args.batch_size:(step + 1) * args.batch_size]
            x = x_train[batch].contiguous(memory_format=memory_format)
            y = y_train[batch]
            logits = model(x)
            loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
            correct += (logits.argmax(1) == y).sum().item()

        model.eval()
        val_total, val_correct = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(x_test), 500):
                x = x_test[start:start + 500].contiguous(memory_format=memory_format)
                logits = model(x)
                val_total += nn.functional.cross_entropy(logits, y_test[start:start + 500], reduction="sum").item()
                val_correct += (logits.argmax(1) == y_test[start:start + 500]).sum().item()
        record = {
            "epoch": epoch, "time": round(time.perf_counter() - started, 2),
            "loss": total / len(x_train), "accuracy": correct / len(x_train),
            "val_loss": val_total / len(x_test), "val_accuracy": val_correct / len(x_test),
            "learning_rate": optimizer.param_groups[0]["lr"],
        }
        print(json.dumps(record), flush=True)
        if args.stop_at is not None and record["val_accuracy"] >= args.stop_at:
            break


if __name__ == "__main__":
    sys.exit(main())
