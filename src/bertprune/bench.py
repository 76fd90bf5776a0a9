"""``bertprune bench``: latency and throughput of a model on this CPU, dense PyTorch against the
sparse engine (:func:`bertprune.sparse.accelerate`, fp32 and int8).

Inputs are random token ids (seeded, no padding) for each batch size × sequence length, and, with
``texts``, the user's own texts in file order, each batch padded to its longest text (as a server
that does not sort its requests would run them). Every engine runs the same inputs; each row gives
the median and p90 latency of one batch, the throughput, the speed-up over dense PyTorch on the same
inputs and the largest output difference from it (logits of a sequence classifier, else the last
hidden state at the non-padding positions). With ``task`` the GLUE dev metric is measured under
each engine too, so an int8 loss of accuracy shows next to its speed.

:func:`time_calls` is the one timing loop of bertprune (``bertprune demo`` times with it too).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from copy import deepcopy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import BertpruneError
from .sentence import STSB_ZEROSHOT

DENSE = "torch-fp32"
DEFAULT_BATCH_SIZES = (1, 8)
DEFAULT_SEQ_LEN = 128
DEFAULT_RUNS = 20
DEFAULT_WARMUP = 3
#: tokens per sequence of the dev-set evaluation when the checkpoint's run does not say (as in training)
DEFAULT_EVAL_LENGTH = 128
#: texts are cut at the model's limit, and at this many tokens at most (what BERT-family tokenizers allow)
MAX_TEXT_TOKENS = 512


# --- timing ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    median_ms: float  # of one call (one batch)
    p90_ms: float
    throughput: float  # sequences per second over all timed calls

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def time_calls(fn: Callable[[dict[str, torch.Tensor]], Any], batches: Sequence[dict[str, torch.Tensor]],
               runs: int, warmup: int) -> Timing:
    """Time ``fn`` on each batch: ``warmup`` untimed passes over ``batches`` (first-call allocations,
    the engine's path measurements for a new token count, caches), then ``runs`` timed passes, each
    call timed alone. The median and p90 are of single calls; throughput is over the whole timed
    work, so it counts slow calls that a median hides."""
    with torch.no_grad():
        for _ in range(warmup):
            for x in batches:
                fn(x)
        times = []
        for _ in range(runs):
            for x in batches:
                start = time.perf_counter()
                fn(x)
                times.append(time.perf_counter() - start)
    sequences = runs * sum(int(x["input_ids"].shape[0]) for x in batches)
    return Timing(1e3 * statistics.median(times), 1e3 * float(np.percentile(times, 90)), sequences / sum(times))


# --- inputs ---------------------------------------------------------------------------------------
def random_batch(vocab_size: int, pad_token_id: int | None, batch: int, seq_len: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random token ids without the padding id (RoBERTa derives positions from it), all attended."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + batch * 1009 + seq_len)  # each shape its own, reproducible draw
    pad = pad_token_id if pad_token_id is not None and 0 <= pad_token_id < vocab_size else None
    ids = torch.randint(0, vocab_size - (pad is not None), (batch, seq_len), generator=g)
    if pad is not None:
        ids += (ids >= pad).long()  # skip the padding id, keeping the draw uniform over the others
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def read_texts(path: str | Path) -> list[str]:
    """Non-blank lines of a UTF-8 file, one text each."""
    p = Path(path)
    try:
        content = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BertpruneError(f"--texts {p}: no such file; give a UTF-8 text file with one text per line") from None
    except IsADirectoryError:
        raise BertpruneError(f"--texts {p} is a folder; give a UTF-8 text file with one text per line") from None
    except UnicodeDecodeError as e:
        raise BertpruneError(f"--texts {p} is not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8, one text per line") from None
    except OSError as e:
        raise BertpruneError(f"cannot read --texts {p}: {e.strerror or e}") from None
    texts = [line.strip() for line in content.splitlines() if line.strip()]
    if not texts:
        raise BertpruneError(f"--texts {p} holds no text (every line is blank); put one text per line")
    return texts


def encode_batches(tokenizer, texts_a: Sequence[str], texts_b: Sequence[str] | None, batch: int, max_length: int,
                   model) -> list[dict[str, torch.Tensor]]:
    """Texts in order, ``batch`` at a time, each batch padded to its longest text and cut at
    ``max_length`` tokens; only the inputs the model's forward takes (DistilBERT has no segment ids)."""
    from .data.glue import cut_text
    from .models import forward_inputs

    out = []
    for i in range(0, len(texts_a), batch):
        args = [[cut_text(t, max_length) for t in texts_a[i:i + batch]]]
        if texts_b is not None:
            args.append([cut_text(t, max_length) for t in texts_b[i:i + batch]])
        enc = tokenizer(*args, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        out.append(forward_inputs(model, enc))
    return out


# --- models ---------------------------------------------------------------------------------------
@dataclass
class Loaded:
    folder: Path
    model: torch.nn.Module
    classifier: bool  # a sequence classifier (logits compared), else a bare encoder (last hidden state)
    limit: int | None  # tokens a sequence may hold


def load_for_bench(path: str | Path) -> Loaded:
    """The model of a run folder (its final/) or of a Hugging Face folder: its sequence classifier
    when the checkpoint has one, else the bare encoder (the head of e.g. a masked-LM checkpoint is
    not what is served, and the engine runs the encoder)."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    from .config import ModelConfig
    from .models import load_config, load_model, max_positions
    from .report import find_checkpoint

    folder = find_checkpoint(path)
    if not folder.is_dir():
        raise BertpruneError(f"{path} is a file; bench needs a model folder (config.json + *.safetensors) or a run folder")
    cfg = ModelConfig(name=str(folder))
    config = load_config(cfg)  # a missing or broken config.json: one message
    classifier = any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
    model = load_model(cfg, AutoModelForSequenceClassification if classifier else AutoModel).eval()
    return Loaded(folder, model, classifier, max_positions(model))


def _run_max_length(folder: Path) -> int | None:
    """``data.max_length`` of the run a checkpoint belongs to: its dev metric is measured at it."""
    import yaml

    cfg = folder.parent / "config.yaml"
    try:
        saved = yaml.safe_load(cfg.read_text(encoding="utf-8")) if cfg.is_file() else None
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return None
    data = saved.get("data") if isinstance(saved, dict) else None
    n = data.get("max_length") if isinstance(data, dict) else None
    return n if isinstance(n, int) and n > 0 else None


def _output(model: torch.nn.Module, x: dict[str, torch.Tensor], classifier: bool) -> torch.Tensor:
    """What the comparison reads: logits, or the last hidden state with padding positions zeroed
    (they carry no meaning, and no two implementations need agree on them)."""
    with torch.no_grad():
        out = model(**x)
    if classifier:
        return out.logits
    return out.last_hidden_state * x["attention_mask"][..., None].to(out.last_hidden_state.dtype)


def max_difference(reference: torch.nn.Module, other: torch.nn.Module, batches: Sequence[dict[str, torch.Tensor]],
                   classifier: bool) -> float:
    """The largest absolute difference between two models' outputs over ``batches``."""
    return max(float((_output(reference, x, classifier) - _output(other, x, classifier)).abs().max()) for x in batches)


# --- the benchmark --------------------------------------------------------------------------------
def _check_counts(batch_sizes: Sequence[int], seq_lens: Sequence[int], runs: int, warmup: int, threads: int | None) -> None:
    if not batch_sizes:
        raise BertpruneError("give at least one batch size (--batch-sizes 1 8)")
    for name, values in (("--batch-sizes", batch_sizes), ("--seq-lens", seq_lens)):
        bad = [v for v in values if not isinstance(v, int) or v < 1]
        if bad:
            raise BertpruneError(f"{name} must be integers >= 1, got {bad[0]!r}")
    if not isinstance(runs, int) or runs < 1:
        raise BertpruneError(f"--runs must be an integer >= 1, got {runs!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise BertpruneError(f"--warmup must be an integer >= 0, got {warmup!r}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise BertpruneError(f"--threads must be an integer >= 1, got {threads!r}")


def _input_sets(loaded: Loaded, tokenizer, batch_sizes: Sequence[int], seq_lens: Sequence[int] | None,
                texts: list[str] | None) -> list[dict[str, Any]]:
    """One entry per row group: its description and its batches."""
    config = loaded.model.config
    if seq_lens is None:  # the default grid, unless the user's own texts are what is asked
        seq_lens = [] if texts is not None else [min(DEFAULT_SEQ_LEN, loaded.limit or DEFAULT_SEQ_LEN)]
    for s in seq_lens:
        if loaded.limit is not None and s > loaded.limit:
            raise BertpruneError(f"--seq-lens {s} exceeds the {loaded.limit} positions the model can embed "
                                 f"(config.max_position_embeddings={config.max_position_embeddings}); use {loaded.limit} or less")
    sets = [{"input": "random", "batch": b, "tokens": s, "batches": [random_batch(config.vocab_size, config.pad_token_id, b, s)]}
            for s in seq_lens for b in batch_sizes]
    if texts is not None:
        max_length = min(loaded.limit or MAX_TEXT_TOKENS, MAX_TEXT_TOKENS)
        for b in batch_sizes:
            batches = encode_batches(tokenizer, texts, None, b, max_length, loaded.model)
            lengths = [int(x["input_ids"].shape[1]) for x in batches]
            sets.append({"input": "texts", "batch": b, "tokens": max(lengths), "texts": len(texts),
                         "mean_tokens": sum(lengths) / len(lengths), "batches": batches})
    return sets


def _engines(model: torch.nn.Module, int8: bool, tokens: tuple[int, ...], force: bool) -> tuple[dict, dict]:
    """The models to time, by engine name, and what accelerate chose for each sparse engine."""
    from .sparse import accelerate

    models, choices = {DENSE: model}, {}
    for name, q in (("bertprune-fp32", False), ("bertprune-int8", True))[: 2 if int8 else 1]:
        fast = deepcopy(model)
        with warnings.catch_warnings():  # PyTorch deprecates its quantized tensors, which the int8-dense path builds: noise here
            warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor", category=UserWarning)
            report = accelerate(fast, int8=q, tokens=tokens, force=force)  # measures each matrix's paths at these token counts
        models[name] = fast
        choices[name] = {"bound": report.bound, "paths": report.summary()}
    return models, choices


def bench(path: str | Path, batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, seq_lens: Sequence[int] | None = None,
          texts: str | Path | None = None, int8: bool = True, runs: int = DEFAULT_RUNS, warmup: int = DEFAULT_WARMUP,
          threads: int | None = None, task: str | None = None, glue_dir: str | None = None, force: bool = False) -> dict:
    """Time dense PyTorch, ``bertprune-fp32`` and (with ``int8``) ``bertprune-int8`` on this CPU.

    ``seq_lens``: lengths of random-token inputs, one row group per batch size × length; None: 128
    (or the model's limit, if lower), or none at all when ``texts`` is given. ``texts``: a UTF-8
    file, one text per line, run in order in batches of each batch size. ``threads``: PyTorch's intra-op threads during the run (restored
    after). ``task``: a GLUE task whose dev metric is measured under each engine (data from
    ``glue_dir``, else ``$BERTPRUNE_GLUE_DIR``, else the hub). ``force``: bind the engine even where
    every matrix measures fastest dense (else accelerate leaves such a model alone, and its rows
    time PyTorch). Returns a JSON-ready dict; :func:`to_markdown` renders it."""
    batch_sizes = list(batch_sizes)
    _check_counts(batch_sizes, list(seq_lens or []), runs, warmup, threads)
    if seq_lens is not None and not seq_lens and texts is None:
        raise BertpruneError("nothing to time: give --seq-lens, --texts FILE, or both")
    text_list = read_texts(texts) if texts is not None else None  # before the (slow) model load
    if task is not None and task != STSB_ZEROSHOT:
        from .data.glue import get_task

        get_task(task)  # an unknown task is refused before any work
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _bench(path, batch_sizes, seq_lens, text_list, int8, runs, warmup, task, glue_dir, force)
    finally:
        torch.set_num_threads(previous_threads)


def _bench(path, batch_sizes, seq_lens, texts, int8, runs, warmup, task, glue_dir, force) -> dict:
    from .config import ModelConfig
    from .models import load_tokenizer
    from .sparse import kernels

    loaded = load_for_bench(path)
    if task == STSB_ZEROSHOT and loaded.classifier:
        raise BertpruneError(f"--task {STSB_ZEROSHOT} scores a bare encoder's sentence embeddings; {loaded.folder} has a "
                             f"classification head: pass the encoder (e.g. a `bertprune pretrain` run folder)")
    if task is not None and task != STSB_ZEROSHOT and not loaded.classifier:
        raise BertpruneError(f"--task {task}: {loaded.folder} is a bare encoder without a classification head, so it has no "
                             f"dev metric; pass a model fine-tuned on the task (a run folder of `bertprune finetune`)")
    tokenizer = load_tokenizer(ModelConfig(name=str(loaded.folder))) if texts is not None or task is not None else None
    sets = _input_sets(loaded, tokenizer, batch_sizes, seq_lens, texts)
    tokens = tuple(sorted({int(x["input_ids"].numel()) for s in sets for x in s["batches"]}))
    models, choices = _engines(loaded.model, int8, tokens, force)
    rows = []
    for s in sets:
        timings = {name: time_calls(lambda x, m=m: m(**x), s["batches"], runs, warmup) for name, m in models.items()}
        dense = timings[DENSE].median_ms
        described = {k: v for k, v in s.items() if k != "batches"}
        for name, t in timings.items():
            diff = 0.0 if name == DENSE else max_difference(loaded.model, models[name], s["batches"], loaded.classifier)
            rows.append({"engine": name, **described, **t.as_dict(), "speedup": dense / t.median_ms, "max_abs_diff": diff})
    result = {
        "model": str(loaded.folder), "model_type": loaded.model.config.model_type,
        "output": "logits" if loaded.classifier else "last_hidden_state",
        "threads": torch.get_num_threads(), "runs": runs, "warmup": warmup,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__,
                    "kernels": kernels.available()},
        "engines": choices, "rows": rows, "metric": None,
    }
    if task == STSB_ZEROSHOT:
        result["metric"] = zeroshot_metric(models, loaded, tokenizer, glue_dir, max(batch_sizes))
    elif task is not None:
        result["metric"] = dev_metric(models, loaded, tokenizer, task, glue_dir, max(batch_sizes))
    return result


def zeroshot_metric(models: dict[str, torch.nn.Module], loaded: Loaded, tokenizer, glue_dir: str | None, batch: int) -> dict:
    """Zero-shot STS-B dev (:func:`bertprune.sentence.stsb_zeroshot`) under each engine."""
    from .config import GLUE_DIR_ENV
    from .sentence import stsb_zeroshot

    max_length = min(DEFAULT_EVAL_LENGTH, loaded.limit or MAX_TEXT_TOKENS)
    glue_dir = glue_dir or os.environ.get(GLUE_DIR_ENV) or None
    scores = {name: stsb_zeroshot(m, tokenizer, glue_dir, batch_size=batch, max_length=max_length) for name, m in models.items()}
    examples = scores[DENSE].pop("pairs")
    for v in scores.values():
        v.pop("pairs", None)
    return {"task": STSB_ZEROSHOT, "main_metric": "spearman", "max_length": max_length,
            "sets": {"dev": {"examples": examples, **scores}}}


def dev_metric(models: dict[str, torch.nn.Module], loaded: Loaded, tokenizer, task: str, glue_dir: str | None,
               batch: int) -> dict:
    """The task's metrics on its dev set(s) under each engine, the texts cut at the run's
    ``data.max_length`` (else 128) as in training."""
    from .config import GLUE_DIR_ENV
    from .data.glue import get_task, load_glue
    from .metrics import glue_metrics

    spec = get_task(task)
    if loaded.model.config.num_labels != spec.num_labels:
        raise BertpruneError(f"--task {spec.name} has {spec.num_labels} label(s), the model's head {loaded.model.config.num_labels}; "
                             f"pass the task the model was fine-tuned on")
    max_length = min(_run_max_length(loaded.folder) or DEFAULT_EVAL_LENGTH, loaded.limit or MAX_TEXT_TOKENS)
    data = load_glue(spec.name, glue_dir or os.environ.get(GLUE_DIR_ENV) or None)
    out: dict[str, Any] = {"task": spec.name, "main_metric": spec.main_metric, "max_length": max_length, "sets": {}}
    for split, ds in data.eval.items():
        batches = encode_batches(tokenizer, list(ds["text_a"]), list(ds["text_b"]) if spec.is_pair else None, batch, max_length,
                                 loaded.model)
        gold = np.asarray(ds["label"])
        scores = {}
        for name, m in models.items():
            with torch.no_grad():
                logits = torch.cat([m(**x).logits for x in batches])
            pred = logits.squeeze(-1).float() if spec.is_regression else logits.argmax(-1)
            scores[name] = glue_metrics(spec.name, pred.numpy(), gold)
        out["sets"][split] = {"examples": len(ds), **scores}
    return out


# --- output ---------------------------------------------------------------------------------------
def _tokens_cell(row: dict) -> str:
    if row["input"] == "texts":
        return f"texts ({row['texts']}), ≤{row['tokens']}, mean {row['mean_tokens']:.1f}"
    return str(row["tokens"])


def to_markdown(result: dict) -> str:
    """The rows as a Markdown table, with the dev metric and notes below."""
    compared = "logits" if result["output"] == "logits" else "last hidden state"
    title = (f"bertprune bench: {result['model']} ({result['model_type']}), {result['threads']} thread(s), "
             f"median and p90 of {result['runs']} timed run(s) after {result['warmup']} warm-up; "
             f"speed-up over {DENSE} on the same inputs; difference: {compared}")
    lines = [title, "",
             "| engine | batch | tokens | median ms | p90 ms | sequences/s | speed-up | max abs diff |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['engine']} | {r['batch']} | {_tokens_cell(r)} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | "
                     f"{r['throughput']:,.1f} | {r['speedup']:.2f}x | {r['max_abs_diff']:.1e} |")
    metric = result.get("metric")
    if metric:
        engines = [DENSE, *result["engines"]]
        lines += ["", f"| {metric['task']} dev, scores × 100 (max length {metric['max_length']}) | " + " | ".join(engines) + " |",
                  "|---" * (len(engines) + 1) + "|"]
        for split, scores in metric["sets"].items():
            for key in scores[DENSE]:
                lines.append(f"| {split} {key} ({scores['examples']} examples) | "
                             + " | ".join(f"{100 * scores[e][key]:.2f}" for e in engines) + " |")
    paths = "; ".join(f"{name}: " + ", ".join(f"{p} {n}" for p, n in sorted(c["paths"].items())) for name, c in result["engines"].items())
    lines += ["", f"Paths chosen by measurement (matrices × token-count buckets): {paths}."]
    notes = [f"{name}: every matrix measured fastest dense here, so accelerate left the model as it is (its rows time PyTorch)"
             for name, c in result["engines"].items() if not c["bound"]]
    if not result["machine"]["kernels"]:
        notes.append("the C++ kernels could not be built here (a compiler and ninja are needed): the engine runs dense paths")
    if notes:
        lines += [""] + [f"Note: {n}." for n in notes]
    return "\n".join(lines)


def to_json(result: dict) -> str:
    return json.dumps(result, indent=1)
