"""Run one measurement in this process and print its result for peers.py.

Usage: child.py SPEC, where SPEC is the JSON object that peers.py builds. The
result is one stdout line, RESULT_PREFIX followed by a JSON object, and the
exit status is 1 when the measurement raised.
"""

import json
import resource
import statistics
import sys
import time
import traceback

import numpy as np

RESULT_PREFIX = "PEERS_RESULT "


def make_data(count, shape, classes, seed):
    """Return seeded NHWC float32 inputs, uniform in [0, 1), and uniform int64 labels."""
    rng = np.random.default_rng(seed)
    x = rng.random((count, *shape), dtype=np.float32)
    y = rng.integers(0, classes, size=count, dtype=np.int64)
    return x, y


def load_peer(framework, threads, seed, model):
    """Import the framework module, set its thread pools before it runs any op, and pick the network."""
    if framework == "torch":
        import torch_peer as peer
    else:
        import keras_peer as peer
    peer.configure(threads, seed, model)
    return peer


def measure(spec):
    peer = load_peer(spec["framework"], spec["threads"], spec["seed"], spec.get("model", "tutorial"))
    shape = tuple(spec["input"])
    classes = spec["classes"]
    result = {"versions": peer.backend_info()}

    if spec["case"] == "job":
        x, y = make_data(spec["samples"] + spec["val_samples"], shape, classes, spec["seed"])
        samples = spec["samples"]
        data = (x[:samples], y[:samples], x[samples:], y[samples:])
        start = time.perf_counter()
        if spec["framework"] == "torch":
            history = peer.run_job(spec["variant"], data, classes, spec["epochs"], spec["batch_size"], spec["seed"])
        else:
            history = peer.run_job(data, classes, spec["epochs"], spec["batch_size"])
        result["seconds"] = time.perf_counter() - start
        result["history"] = history
    else:
        x, y = make_data(spec["batch_size"], shape, classes, spec["seed"])
        seconds = peer.measure_steps(spec["variant"], spec["case"], x, y, classes, spec["warmup"], spec["steps"])
        median = statistics.median(seconds)
        result["step_seconds"] = seconds
        result["median_step_seconds"] = median
        result["images_per_second"] = spec["batch_size"] / median

    # Linux reports ru_maxrss in KiB.
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def main():
    spec = json.loads(sys.argv[1])
    try:
        result = measure(spec)
    except Exception as error:
        traceback.print_exc()
        print(RESULT_PREFIX + json.dumps({"error": f"{type(error).__name__}: {error}"}), flush=True)
        return 1
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
