"""Latency of an ONNX model under DeepSparse, for benchmarks/inference.py.

DeepSparse (Neural Magic) is a comparison engine only: its licence is evaluation-only and the
project is archived, so it is never a dependency of bertprune. This script runs in a separate
environment that has it (``python -m venv ds && ds/bin/pip install deepsparse``) and is called
by ``inference.py --deepsparse-python ds/bin/python``. Prints one JSON line.
"""

import argparse
import json
import statistics
import time

import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("onnx")
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--inputs", required=True, help=".npz with the input arrays, by name")
    args = p.parse_args()
    from deepsparse import compile_model

    feed = np.load(args.inputs)
    names = list(feed.files)
    engine = compile_model(args.onnx, batch_size=args.batch, num_cores=args.threads,
                           input_shapes=[[args.batch, args.seq] for _ in names])
    x = [feed[n] for n in names]
    out = engine.run(x)
    for _ in range(args.warmup):
        engine.run(x)
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        engine.run(x)
        times.append(time.perf_counter() - start)
    print(json.dumps({"median_ms": 1e3 * statistics.median(times), "p90_ms": 1e3 * float(np.percentile(times, 90)),
                      "output": np.asarray(out[0]).tolist()}))


if __name__ == "__main__":
    main()
