#!/usr/bin/env python3
"""Data-parallel training on one machine, measured, and a model of it on a cluster.

Part 1 trains each model three ways on this machine's cores and reads the last epoch's
images/s: one process with all threads; two ranks under mpiexec with half the threads each,
sharing the same global batch; and one process with half the threads on half the batch, which
is one rank's work without the sums, with the other cores idle. The gap between the last two
is what the sums, the waiting for the slower rank and the sharing of caches and memory cost.

Part 2 models N machines, each running one rank of the measured single-machine speed on a
per-machine batch of 32, joined by a ring allreduce of the gradients after each backward pass
(this tool does not overlap the sum with backward). A ring allreduce of S bytes over N machines
sends 2 (N - 1) / N * S bytes per machine in 2 (N - 1) messages, so it takes
2 (N - 1) / N * S / bandwidth + 2 (N - 1) * latency. The scaling efficiency is the step's
compute time over its compute time plus that.

Usage: bench/distributed/run.py [--json FILE] [--quick]
Standard library only; needs the release build of resnet and MPICH's mpiexec.
"""

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, ".build", "release", "resnet")
CORES = os.cpu_count() or 1

# (model, input, batch size, training samples per epoch, epochs). The last epoch is timed; the
# ones before it build primitives and buffers.
CASES = [
    ("tutorial", "224x224x3", 32, 192, 2),
    ("resnet18", "224x224x3", 32, 128, 2),
    ("resnet20", "32x32x3", 128, 5120, 2),
]
QUICK_CASES = [("resnet20", "32x32x3", 128, 1024, 2)]

# The models of part 2, at the input and class count they are usually trained at.
CLUSTER_MODELS = [("tutorial", "224x224x3", 10), ("resnet18", "224x224x3", 1000), ("resnet50", "224x224x3", 1000)]
MACHINES = [2, 4, 8, 16, 32, 64]
LINKS_GBIT = [10, 100]
# NOTE: an assumed per-message latency of a TCP or RDMA hop in a data centre, not measured here.
LATENCY_SECONDS = 30e-6


def run(command):
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {' '.join(command)}\n{result.stdout}\n{result.stderr}")
    return result.stdout


def last_epoch_rate(output):
    rates = re.findall(r"^epoch \d+/\d+ .* img/s=([0-9.]+)$", output, re.MULTILINE)
    if not rates:
        sys.exit(f"no epoch line in:\n{output}")
    return float(rates[-1])


def train(model, shape, batch, samples, epochs, threads, ranks=None):
    command = [
        TOOL, "train", "--model", model, "--input", shape, "--batch-size", str(batch), "--samples", str(samples),
        "--validation-samples", "0", "--epochs", str(epochs), "--threads", str(threads),
    ]
    if ranks:
        command = ["mpiexec", "-n", str(ranks)] + command + ["--distributed"]
    return last_epoch_rate(run(command))


def trainable_parameters(model, shape, classes):
    output = run([TOOL, "summary", "--model", model, "--input", shape, "--classes", str(classes)])
    return int(re.search(r"^trainable parameters: ([0-9,]+)$", output, re.MULTILINE).group(1).replace(",", ""))


def step_seconds(model, shape, classes):
    output = run([
        TOOL, "bench", "--model", model, "--input", shape, "--classes", str(classes), "--batch-size", "32",
        "--mode", "train", "--steps", "3", "--warmup", "1", "--no-ceiling", "--json", "--threads", str(CORES),
    ])
    return 32 / json.loads(output)["training_images_per_second"]


def ring_seconds(size_bytes, machines, gbit):
    return 2 * (machines - 1) / machines * size_bytes / (gbit * 1e9 / 8) + 2 * (machines - 1) * LATENCY_SECONDS


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--quick", action="store_true", help="one small case and no cluster model, to try the script")
    arguments = parser.parse_args()
    if not os.access(TOOL, os.X_OK):
        sys.exit(f"{TOOL} not found; build it with: swift build -c release")
    if CORES < 2:
        sys.exit("this machine has one core; two ranks need at least two")
    half = CORES // 2

    print(f"# Data-parallel training, {datetime.date.today()}, {platform.node()}, {CORES} cores")
    print()
    print(f"## One machine: 2 ranks of {half} thread(s) against 1 process of {CORES}")
    print()
    print("| model | input | batch | 1 process, img/s | 2 ranks, img/s | ratio | twice one rank alone, img/s | sums and sharing, share of a 2-rank step |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    measured = []
    for model, shape, batch, samples, epochs in QUICK_CASES if arguments.quick else CASES:
        single = train(model, shape, batch, samples, epochs, CORES)
        pair = train(model, shape, batch, samples, epochs, half, ranks=2)
        # One rank computes half the batch; alone it would finish a step in (batch / 2) / rate.
        alone = train(model, shape, batch // 2, samples // 2, epochs, half)
        step_pair = batch / pair
        step_alone = (batch // 2) / alone
        cost = (step_pair - step_alone) / step_pair
        measured.append({
            "model": model, "input": shape, "batch_size": batch, "one_process": single, "two_ranks": pair,
            "one_rank_alone": alone, "sum_share_of_step": cost,
        })
        print(f"| {model} | {shape} | {batch} | {single:.1f} | {pair:.1f} | {pair / single:.2f} | {alone * 2:.1f} | {cost:.1%} |")
        sys.stdout.flush()

    cluster = []
    if not arguments.quick:
        print()
        print(f"## Model: N machines like this one, batch 32 per machine, ring allreduce, {LATENCY_SECONDS * 1e6:.0f} µs per message")
        print()
        header = " | ".join(f"{n}" for n in MACHINES)
        print(f"| model | gradient MB | step s | link | {header} |")
        print("| --- | ---: | ---: | --- | " + " | ".join("---:" for _ in MACHINES) + " |")
        for model, shape, classes in CLUSTER_MODELS:
            size = trainable_parameters(model, shape, classes) * 4
            step = step_seconds(model, shape, classes)
            for gbit in LINKS_GBIT:
                efficiencies = [step / (step + ring_seconds(size, n, gbit)) for n in MACHINES]
                cluster.append({
                    "model": model, "input": shape, "classes": classes, "gradient_bytes": size, "step_seconds": step,
                    "link_gbit": gbit, "machines": MACHINES, "efficiency": efficiencies,
                })
                cells = " | ".join(f"{e:.1%}" for e in efficiencies)
                print(f"| {model} | {size / 1e6:.1f} | {step:.2f} | {gbit} Gbit/s | {cells} |")
                sys.stdout.flush()

    if arguments.json:
        record = {
            "date": str(datetime.date.today()), "machine": platform.node(), "cores": CORES, "one_machine": measured,
            "cluster_model": {"latency_seconds": LATENCY_SECONDS, "rows": cluster},
        }
        temporary = arguments.json + ".tmp"
        with open(temporary, "w") as file:
            json.dump(record, file, indent=2)
        os.replace(temporary, arguments.json)


if __name__ == "__main__":
    main()
