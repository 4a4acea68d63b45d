"""Time ResNet-20 on Fashion-MNIST to a test accuracy, ours against PyTorch, in one run.

Both train the same model with the same recipe (SGD with Nesterov momentum 0.9,
weight decay 5e-4 on kernels only, one-cycle learning rate, batch 128, no
augmentation, inputs normalized by the training set's mean and standard
deviation) and evaluate on the 10,000 test images after every epoch. Time runs
from the first step and includes the evaluations. Run it through run.sh, which
creates the virtual environment with PyTorch.
"""

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TUNED_MALLOC = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000", "MALLOC_TOP_PAD_": "1000000000"}
EPOCH_LINE = re.compile(r"^epoch (\d+)/\d+ .*val_accuracy=([0-9.]+) .*time=([0-9.]+)s")


def run_ours(args):
    command = [
        args.resnet, "train", "--data", f"idx:{args.data}", "--model", "resnet20",
        "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
        "--optimizer", "sgd", "--momentum", "0.9", "--nesterov", "--weight-decay", "5e-4",
        "--schedule", "one-cycle", "--learning-rate", str(args.learning_rate),
        "--threads", str(args.threads), "--seed", str(args.seed),
    ]
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    epochs, elapsed = [], 0.0
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        for line in process.stdout:
            print("  ours | " + line.rstrip(), file=sys.stderr, flush=True)
            match = EPOCH_LINE.match(line)
            if match:
                elapsed += float(match.group(3))
                epochs.append({"epoch": int(match.group(1)), "val_accuracy": float(match.group(2)),
                               "time": round(elapsed, 2)})
                if args.stop_at and epochs[-1]["val_accuracy"] >= args.stop_at:
                    process.kill()
                    break
    if process.returncode not in (0, -9) or not epochs:
        sys.exit(f"error: our run failed with exit code {process.returncode}")
    return epochs


def run_torch(args):
    command = [
        sys.executable, os.path.join(HERE, "fashion_torch.py"), "--data", args.data, "--channels-last",
        "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
        "--learning-rate", str(args.learning_rate), "--threads", str(args.threads), "--seed", str(args.seed),
    ]
    if args.stop_at:
        command += ["--stop-at", str(args.stop_at)]
    environment = dict(os.environ, OMP_NUM_THREADS=str(args.threads), **TUNED_MALLOC)
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    epochs = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=environment) as process:
        for line in process.stdout:
            print("  torch | " + line.rstrip(), file=sys.stderr, flush=True)
            epochs.append(json.loads(line))
    if process.returncode != 0 or not epochs:
        sys.exit(f"error: the PyTorch run failed with exit code {process.returncode}")
    return epochs


def time_to(epochs, target):
    return next((epoch["time"] for epoch in epochs if epoch["val_accuracy"] >= target), None)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--resnet", default=os.path.join(ROOT, ".build", "release", "resnet"))
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=0.1, help="one-cycle peak rate")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stop-at", type=float, default=None, help="stop each run once val_accuracy reaches this")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    if not os.path.isdir(args.data):
        sys.exit(f"error: --data {args.data} is not a folder; install Fashion-MNIST with "
                 "'apt-get install dataset-fashion-mnist' or pass the folder of its IDX files")
    if not os.access(args.resnet, os.X_OK):
        sys.exit(f"error: --resnet {args.resnet} is not an executable; build it with 'swift build -c release'")
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: load average {load:.2f}; other work on the machine skews the times", file=sys.stderr)

    results = {"ours": run_ours(args), "torch-channels-last": run_torch(args)}

    targets = (0.90, 0.92, 0.93)
    print(f"ResNet-20 on Fashion-MNIST, batch {args.batch_size}, {args.epochs} epochs one-cycle, "
          f"{args.threads} threads, {datetime.date.today()}, {platform.processor() or platform.machine()}")
    print(f"{'run':<22}" + "".join(f"{'to ' + format(t, '.0%'):>10}" for t in targets) + f"{'final':>10}")
    for name, epochs in results.items():
        cells = [time_to(epochs, t) for t in targets]
        print(f"{name:<22}" + "".join(f"{(format(c, '.0f') + ' s') if c else '-':>10}" for c in cells)
              + f"{epochs[-1]['val_accuracy']:>10.4f}")
    ours, peer = time_to(results["ours"], targets[-1]), time_to(results["torch-channels-last"], targets[-1])
    if ours and peer:
        print(f"time to {targets[-1]:.0%}: ours / PyTorch = {ours / peer:.2f} (target at most 0.67)")
    if args.json:
        temporary = args.json + ".tmp"
        with open(temporary, "w") as handle:
            json.dump({"date": str(datetime.date.today()), "arguments": vars(args), "results": results}, handle, indent=1)
        os.replace(temporary, args.json)


if __name__ == "__main__":
    main()
