"""Measure PyTorch and Keras on the tutorial ResNet, and optionally our own tool, in one run.

Each measurement runs in a fresh subprocess (child.py, or the --ours shell
command) so that allocators and thread pools do not carry over between them.
Run it through run.sh, which installs the pinned frameworks first.
"""

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(HERE, "child.py")
RESULT_PREFIX = "PEERS_RESULT "
CASES = ("train", "infer", "job")

TORCH_VARIANTS = ("torch-eager", "torch-channels-last", "torch-compile", "torch-compile-channels-last")
KERAS_VARIANTS = ("keras-on-batch", "keras-on-batch-xla", "keras-tf-function", "keras-tf-function-xla")

# glibc malloc keeps freed blocks instead of returning them to the kernel, so
# steps do not pay for fresh zeroed pages. A measurement on this 2-core Zen
# machine, made before this script, found it doubles PyTorch's training speed.
# --allocators both measures the default beside it in every run.
TUNED_MALLOC = {
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": "100000000000",
    "MALLOC_TOP_PAD_": "1000000000",
}
ALLOCATOR_CHOICES = {"tuned": ["tuned"], "default": ["default"], "both": ["tuned", "default"]}

# Placeholders that --ours may contain, replaced before the command runs.
OURS_PLACEHOLDERS = ("case", "model", "input", "height", "width", "channels", "batch_size", "steps",
                     "warmup", "threads", "classes", "samples", "val_samples", "epochs", "seed")

# Networks every peer builds: the Keras tutorial's ResNet, and torchvision's ResNet-18.
MODELS = ("tutorial", "resnet18")


def parse_input(text):
    match = re.fullmatch(r"(\d+)x(\d+)x(\d+)", text)
    if not match or 0 in [int(n) for n in match.groups()]:
        raise argparse.ArgumentTypeError(f"invalid input shape {text!r}: expected HxWxC with positive integers, e.g. 224x224x3")
    return tuple(int(n) for n in match.groups())


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {value}: must be at least 1")
    return value


def non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid value {value}: must be 0 or more")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        description="Measure the tutorial ResNet in PyTorch and Keras 3 (TensorFlow) on the CPU.",
        epilog="Cases: train (training images/s), infer (inference images/s), job (the whole "
               "tutorial fit: wall time and peak RSS). Placeholders for --ours: "
               + ", ".join("{" + name + "}" for name in OURS_PLACEHOLDERS) + ".",
    )
    parser.add_argument("cases", nargs="*", metavar="CASE",
                        help="cases to run, any of train, infer, job (default: all three)")

    parser.add_argument("--model", choices=MODELS, default="tutorial",
                        help="network to measure: the tutorial's ResNet or ResNet-18 (default: tutorial)")
    parser.add_argument("--input", type=parse_input, default=(224, 224, 3), metavar="HxWxC",
                        help="image height, width and channels (default: 224x224x3)")
    parser.add_argument("--batch-size", type=positive_int, default=32,
                        help="images per step, and per batch in the job (default: 32)")
    parser.add_argument("--steps", type=positive_int, default=10,
                        help="timed steps per train or infer measurement, reported as their median (default: 10)")
    parser.add_argument("--warmup", type=non_negative_int, default=5,
                        help="untimed steps before the timed ones (default: 5)")
    parser.add_argument("--threads", type=positive_int, default=2,
                        help="intra-op and inter-op threads for every framework, and OMP_NUM_THREADS (default: 2)")

    parser.add_argument("--classes", type=positive_int, default=10, help="number of label classes (default: 10)")
    parser.add_argument("--samples", type=positive_int, default=1000, help="training samples in the job (default: 1000)")
    parser.add_argument("--val-samples", type=positive_int, default=250,
                        help="validation samples in the job (default: 250)")
    parser.add_argument("--epochs", type=positive_int, default=10, help="epochs in the job (default: 10)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed for data and weights (default: 0)")

    parser.add_argument("--allocators", choices=sorted(ALLOCATOR_CHOICES), default="tuned",
                        help="tuned: glibc malloc keeps big blocks (MALLOC_MMAP_MAX_=0, MALLOC_TRIM_THRESHOLD_=1e11, "
                             "MALLOC_TOP_PAD_=1e9). default: glibc's own settings. both: each case under "
                             "both (default: tuned)")
    parser.add_argument("--variants", type=lambda text: [v for v in text.split(",") if v],
                        default=list(TORCH_VARIANTS + KERAS_VARIANTS), metavar="LIST",
                        help="comma-separated peer variants for train and infer (default: all of "
                             + ", ".join(TORCH_VARIANTS + KERAS_VARIANTS) + ")")
    parser.add_argument("--job-torch", default="best", metavar="VARIANT",
                        help="PyTorch variant for the job: a variant name, or best = the fastest in this "
                             "run's train case under the same allocator, else torch-eager (default: best)")

    parser.add_argument("--ours", metavar="CMD",
                        help="shell command that measures our tool for each case and prints a JSON object "
                             "with images_per_second and optionally seconds and peak_rss_bytes")
    parser.add_argument("--timeout", type=positive_int, default=3600,
                        help="seconds before one measurement is killed and reported as timed out (default: 3600)")
    parser.add_argument("--json", metavar="FILE", help="also write every number to FILE as JSON")
    return parser


def parse_args(argv):
    parser = build_parser()
    args = parser.parse_args(argv)

    unknown_cases = [case for case in args.cases if case not in CASES]
    if unknown_cases:
        parser.error(f"unknown case {unknown_cases[0]!r}: choose from {', '.join(CASES)}")
    # Run train before job, because the job's "best" PyTorch variant comes from train.
    args.cases = [case for case in CASES if case in args.cases or not args.cases]

    known_variants = TORCH_VARIANTS + KERAS_VARIANTS
    unknown_variants = [v for v in args.variants if v not in known_variants]
    if unknown_variants:
        parser.error(f"unknown variant {unknown_variants[0]!r}: choose from {', '.join(known_variants)}")
    if args.job_torch != "best" and args.job_torch not in TORCH_VARIANTS:
        parser.error(f"unknown --job-torch {args.job_torch!r}: choose best or one of {', '.join(TORCH_VARIANTS)}")
    return args


def child_environment(threads, allocator):
    env = dict(os.environ)
    for name in TUNED_MALLOC:
        env.pop(name, None)
    if allocator == "tuned":
        env.update(TUNED_MALLOC)
    env.update({
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": str(threads),
        "KERAS_BACKEND": "tensorflow",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": HERE,
    })
    return env


def run_subprocess(command, env, timeout, shell=False):
    """Run a command to completion; return exit code, stdout, stderr, wall seconds and peak RSS.

    The process is reaped with os.wait4 so that its own ru_maxrss (and that of
    the children it waited for) is read, not the maximum over all our children.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, env=env, shell=shell, stdout=out, stderr=err,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        timed_out = threading.Event()

        def kill():
            timed_out.set()
            os.killpg(process.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)

        out.seek(0)
        err.seek(0)
        return {
            "exit_code": process.returncode,
            "timed_out": timed_out.is_set(),
            "stdout": out.read().decode(errors="replace"),
            "stderr": err.read().decode(errors="replace"),
            "process_seconds": seconds,
            "process_peak_rss_bytes": usage.ru_maxrss * 1024,
        }


def tail(text, lines=8):
    return "\n".join(text.strip().splitlines()[-lines:])


def run_peer(spec, env, timeout):
    command = [sys.executable, CHILD, json.dumps(spec)]
    run = run_subprocess(command, env, timeout)
    result = None
    for line in run["stdout"].splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])

    record = {"variant": spec["variant"], "process_seconds": run["process_seconds"],
              "process_peak_rss_bytes": run["process_peak_rss_bytes"]}
    if run["timed_out"]:
        record["error"] = f"timed out after {timeout} s"
    elif result is None:
        record["error"] = f"exited with status {run['exit_code']} and no result: {tail(run['stderr'])}"
    elif "error" in result:
        record["error"] = result["error"]
        record["stderr_tail"] = tail(run["stderr"], 20)
    else:
        record.update(result)
    return record


def ours_command(template, spec):
    values = {
        "case": spec["case"],
        "input": "x".join(str(n) for n in spec["input"]),
        "height": spec["input"][0],
        "width": spec["input"][1],
        "channels": spec["input"][2],
    }
    values.update({name: spec[name] for name in OURS_PLACEHOLDERS if name in spec and name not in values})
    command = template
    for name, value in values.items():
        command = command.replace("{" + name + "}", str(value))
    return command


def run_ours(template, spec, env, timeout):
    """Run the --ours command for one case and read the last JSON object line it prints."""
    command = ours_command(template, spec)
    run = run_subprocess(command, env, timeout, shell=True)
    record = {"variant": "ours", "command": command, "process_seconds": run["process_seconds"],
              "process_peak_rss_bytes": run["process_peak_rss_bytes"]}
    if run["timed_out"]:
        record["error"] = f"timed out after {timeout} s"
        return record
    if run["exit_code"] != 0:
        record["error"] = f"exited with status {run['exit_code']}: {tail(run['stderr'])}"
        return record

    result = None
    for line in reversed(run["stdout"].splitlines()):
        try:
            candidate = json.loads(line)
        except ValueError:
            continue
        if isinstance(candidate, dict):
            result = candidate
            break
    if result is None:
        record["error"] = f"printed no JSON object: {tail(run['stdout'])}"
    elif spec["case"] != "job" and not isinstance(result.get("images_per_second"), (int, float)):
        record["error"] = f"JSON has no numeric images_per_second: {json.dumps(result)}"
    else:
        record.update(result)
        record.setdefault("seconds", run["process_seconds"])
        record.setdefault("peak_rss_bytes", run["process_peak_rss_bytes"])
    return record


def best_record(records, key, largest=True):
    usable = [r for r in records if r.get(key) is not None and "error" not in r]
    if not usable:
        return None
    return (max if largest else min)(usable, key=lambda r: r[key])


def pick_job_torch(args, train_records):
    if args.job_torch != "best":
        return args.job_torch
    torch_records = [r for r in train_records if r["variant"] in TORCH_VARIANTS]
    best = best_record(torch_records, "images_per_second")
    return best["variant"] if best else "torch-eager"


def base_spec(args, case):
    return {
        "case": case, "model": args.model, "input": list(args.input), "batch_size": args.batch_size,
        "steps": args.steps,
        "warmup": args.warmup, "threads": args.threads, "classes": args.classes, "seed": args.seed,
        "samples": args.samples, "val_samples": args.val_samples, "epochs": args.epochs,
    }


def log(message):
    print(message, file=sys.stderr, flush=True)


def describe(record, case):
    if "error" in record:
        first_line = record["error"].splitlines()[0] if record["error"] else "no message"
        return f"FAILED: {first_line}"
    if case == "job":
        return f"{record['seconds']:.1f} s"
    return f"{record['images_per_second']:.1f} images/s"


def measure_case(args, case, allocator, env, train_records):
    records = []
    if case == "job":
        peers = [("torch", pick_job_torch(args, train_records)), ("keras", "keras-fit")]
    else:
        peers = [("torch" if v in TORCH_VARIANTS else "keras", v) for v in args.variants]

    for framework, variant in peers:
        spec = dict(base_spec(args, case), framework=framework, variant=variant)
        log(f"[{allocator}] {case} {variant} ...")
        load = os.getloadavg()[0]
        record = run_peer(spec, env, args.timeout)
        record["load_average_before"] = load
        log(f"[{allocator}] {case} {variant}: {describe(record, case)}")
        records.append(record)

    if args.ours:
        log(f"[{allocator}] {case} ours ...")
        load = os.getloadavg()[0]
        record = run_ours(args.ours, base_spec(args, case), env, args.timeout)
        record["load_average_before"] = load
        log(f"[{allocator}] {case} ours: {describe(record, case)}")
        records.append(record)
    return records


def summarize(case, records):
    """Return the best peer and, when --ours ran, our ratios against it."""
    peers = [r for r in records if r["variant"] != "ours"]
    ours = next((r for r in records if r["variant"] == "ours" and "error" not in r), None)
    summary = {}

    if case == "job":
        best = best_record(peers, "seconds", largest=False)
        if best:
            summary["best_peer"] = best["variant"]
        if best and ours and ours.get("seconds"):
            # Above 1 means our job finished faster than the fastest peer.
            summary["speedup_ours_vs_best_peer"] = best["seconds"] / ours["seconds"]
            summary["peak_rss_ratio_ours_to_best_peer"] = ours["peak_rss_bytes"] / best["peak_rss_bytes"]
    else:
        best = best_record(peers, "images_per_second")
        if best:
            summary["best_peer"] = best["variant"]
        if best and ours:
            summary["ratio_ours_to_best_peer"] = ours["images_per_second"] / best["images_per_second"]
    return summary


def format_bytes(value):
    return "-" if value is None else f"{value / 2**20:.0f} MiB"


def format_table(results):
    lines = []
    for allocator, cases in results.items():
        for case, entry in cases.items():
            lines.append(f"\n{case} ({allocator} malloc)")
            if case == "job":
                lines.append(f"  {'variant':<30} {'seconds':>10} {'peak RSS':>10}  status")
            else:
                lines.append(f"  {'variant':<30} {'images/s':>10} {'ms/step':>10} {'peak RSS':>10}  status")

            for record in entry["records"]:
                status = "FAILED: " + record["error"].splitlines()[0] if "error" in record else "ok"
                name = record["variant"]
                rss = format_bytes(record.get("peak_rss_bytes", record.get("process_peak_rss_bytes")))
                if case == "job":
                    seconds = f"{record['seconds']:.1f}" if "seconds" in record and "error" not in record else "-"
                    lines.append(f"  {name:<30} {seconds:>10} {rss:>10}  {status}")
                else:
                    ips = f"{record['images_per_second']:.1f}" if "images_per_second" in record else "-"
                    ms = f"{record['median_step_seconds'] * 1000:.1f}" if "median_step_seconds" in record else "-"
                    lines.append(f"  {name:<30} {ips:>10} {ms:>10} {rss:>10}  {status}")

            summary = entry["summary"]
            if "best_peer" in summary:
                lines.append(f"  best peer: {summary['best_peer']}")
            if "ratio_ours_to_best_peer" in summary:
                lines.append(f"  ours / best peer (images/s): {summary['ratio_ours_to_best_peer']:.2f}")
            if "speedup_ours_vs_best_peer" in summary:
                lines.append(f"  best peer seconds / ours: {summary['speedup_ours_vs_best_peer']:.2f}; "
                             f"ours / best peer peak RSS: {summary['peak_rss_ratio_ours_to_best_peer']:.2f}")
    return "\n".join(lines)


def cpu_model_name():
    if not shutil.which("lscpu"):
        return None
    output = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    match = re.search(r"^Model name:\s*(.+)$", output, re.MULTILINE)
    return match.group(1).strip() if match else None


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return line.split(":", 1)[1].split()
    except OSError:
        pass
    return []


def package_versions():
    versions = {"python": platform.python_version()}
    for name in ("torch", "tensorflow", "keras", "numpy"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment_record(args):
    flags = cpu_flags()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model_name": cpu_model_name(),
        "cpu_count": os.cpu_count(),
        "avx512f": "avx512f" in flags,
        "avx2": "avx2" in flags,
        "kernel": platform.release(),
        # One-minute load average when the run started. Well above 0, other
        # processes compete with the measured threads and the numbers are noisy.
        "load_average": os.getloadavg()[0],
        "versions": package_versions(),
        "threads": args.threads,
        "model": args.model,
        "allocator_settings": {"tuned": TUNED_MALLOC, "default": {}},
        "openblas_env": {name: os.environ.get(name) for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
    }


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    document = {
        "environment": environment_record(args),
        "settings": dict(base_spec(args, None), cases=args.cases, variants=args.variants,
                         allocators=args.allocators, ours=args.ours),
        "results": {},
    }
    del document["settings"]["case"]

    load = document["environment"]["load_average"]
    if load > 0.5:
        log(f"warning: the load average is {load:.2f}, so other processes are using the CPU. "
            "PyTorch steps can then take 40 times longer than on an idle machine. "
            "Run on an idle machine for numbers to publish.")

    for allocator in ALLOCATOR_CHOICES[args.allocators]:
        env = child_environment(args.threads, allocator)
        train_records = []
        cases = {}
        for case in args.cases:
            records = measure_case(args, case, allocator, env, train_records)
            if case == "train":
                train_records = records
            cases[case] = {"records": records, "summary": summarize(case, records)}
        document["results"][allocator] = cases

    env_record = document["environment"]
    print(f"model {args.model}, input {'x'.join(map(str, args.input))}, batch {args.batch_size}")
    print(f"{env_record['cpu_model_name']}, {args.threads} threads, {env_record['date']}, "
          f"load average {env_record['load_average']:.2f} at start, "
          + ", ".join(f"{k} {v}" for k, v in env_record["versions"].items()))
    print(format_table(document["results"]))

    if args.json:
        with open(args.json, "w") as output:
            json.dump(document, output, indent=2)
            output.write("\n")

    failures = [r for cases in document["results"].values() for entry in cases.values()
                for r in entry["records"] if "error" in r]
    if failures:
        print(f"\n{len(failures)} measurement(s) failed; see the FAILED rows above.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
