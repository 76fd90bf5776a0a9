"""The training loop: linear, on Hugging Face Accelerate, with pruning hooks.

:func:`train` reads top to bottom: set-up, the loop, the end. The pruning method is called at the
hooks documented in :mod:`bertprune.methods.base` and never owns the loop; the task (GLUE,
masked-LM...) supplies model, data and evaluation (:mod:`bertprune.tasks.base`) and never steps the
optimizer. :func:`finetune` is the loop on a GLUE task.

Distributed runs (``accelerate launch`` / ``torchrun``): ``train.batch_size`` is the *global*
batch, split across processes (Accelerate's ``split_batches``), so a run on N processes takes the
same optimizer steps as one process; masks are broadcast from rank 0 whenever they change and
compared across ranks at the end.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import set_seed
from safetensors.torch import load_model, save_model
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import checkpoint as ckpt
from . import faultpoints, precision
from .config import save_config
from .errors import BertpruneError, DivergenceError
from .fidelity import teacher_agreement
from .masks import MASK_FILE
from .methods import PruningMethod, build_method
from .modelcard import invocation, model_card
from .report import write_report
from .rundir import BEST, CHECKPOINTS, CONFIG_FILE, FINAL, RESULTS_FILE, check_output_dir, mark_run_dir, remove_run_dir
from .runlog import MetricsLog
from .schedules import lr_factor
from .tasks.base import Task


@dataclass
class Progress:
    """Where the run is; saved in every checkpoint."""

    step: int = 0  # optimizer steps done
    epoch: int = 0
    offset: int = 0  # training examples of this epoch already consumed
    best: float | None = None  # best headline metric (0-100) once the target sparsity was reached
    best_step: int | None = None
    best_eval: dict[str, Any] | None = None  # the evaluation of best_step, in the units of results' "final"
    losses: list[float] = field(default_factory=list)  # micro-batch losses since the last log line
    train_seconds: float = 0.0
    step_seconds: list[float] = field(default_factory=list)
    prune_seconds: list[float] = field(default_factory=list)
    before_training: dict[str, Any] = field(default_factory=dict)


def _gpu_available() -> bool:
    xpu = getattr(torch, "xpu", None)
    return torch.cuda.is_available() or bool(xpu and xpu.is_available()) or torch.backends.mps.is_available()


def make_accelerator(cfg) -> Accelerator:
    # Accelerate keeps its state per process: a second run in the same process (the demo, a notebook,
    # the Python API) with another mixed precision would be refused. The process group stays.
    from accelerate.state import AcceleratorState

    mixed_precision = precision.resolve(cfg.train.mixed_precision)  # a config built in code skips validate()
    shared = AcceleratorState._shared_state
    if shared and shared.get("_mixed_precision", mixed_precision) != mixed_precision:
        AcceleratorState._reset_state()
    if warning := precision.slow_bf16_warning(mixed_precision):
        warnings.warn(warning, stacklevel=2)
    # cpu=True on a CPU-only machine: without it Accelerate ignores torchrun's WORLD_SIZE on CPU and
    # every process would think it is the only one; with it, processes join a gloo group.
    return Accelerator(
        cpu=not _gpu_available(),
        gradient_accumulation_steps=cfg.train.grad_accum,
        mixed_precision=mixed_precision,
        dataloader_config=DataLoaderConfiguration(split_batches=True),
    )


def optimizer_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases and LayerNorm (BERT's recipe); frozen parameters left out."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled order of epoch ``epoch``: a pure function of (seed, epoch), so resume replays it."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def length_grouped_order(lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """:func:`epoch_order` with batches of similar length, also a pure function of (seed, epoch).

    transformers' recipe (``LengthGroupedSampler``): a random permutation cut into mega-batches of
    up to 50 batches, each sorted by decreasing length, the longest example moved to the first batch
    (an out-of-memory error shows at once, not hours in). ``lengths``: [n] tokens per example."""
    from transformers.trainer_pt_utils import get_length_grouped_indices

    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
    return np.asarray(get_length_grouped_indices(lengths.tolist(), batch_size, generator=generator))


def example_lengths(dataset) -> np.ndarray:
    """Tokens per example ([n]), from the ``input_ids`` column, for ``train.group_by_length``."""
    if "input_ids" not in dataset.column_names:
        raise BertpruneError(f"train.group_by_length needs tokenized examples with input_ids; this task's training "
                             f"set has the columns {dataset.column_names}. Set train.group_by_length=false")
    return np.fromiter((len(ids) for ids in dataset["input_ids"]), dtype=np.int64, count=len(dataset))


def total_steps_of(cfg, n_train: int) -> tuple[int, int]:
    micro_per_epoch = math.ceil(n_train / cfg.train.batch_size)
    steps_per_epoch = math.ceil(micro_per_epoch / cfg.train.grad_accum)
    total = cfg.train.max_steps if cfg.train.max_steps is not None else math.ceil(cfg.train.epochs * steps_per_epoch)
    return total, steps_per_epoch


@dataclass
class StepResult:
    loss: torch.Tensor  # the micro-batch's loss (detached)
    stepped: bool  # whether an optimizer step happened (False while accumulating gradients)
    grad_norm: float | None = None
    prune_seconds: float = 0.0  # time in the method's hooks around the optimizer step


def train_step(model, batch: dict, method: PruningMethod, optimizer, scheduler, next_step: int, accelerator=None,
               max_grad_norm: float | None = 1.0, extra_params: list | None = None) -> StepResult:
    """One micro-batch, and the optimizer step when gradients are complete, in the one hook order
    that bertprune's loop, its Python API users and its benchmarks share:

    forward (with ``method.forward_kwargs()``) → ``method.loss`` (distillation adds its terms; the
    teacher runs under the same autocast) → backward → clip (and fp16 unscaling) →
    ``method.before_optimizer_step()`` (criteria read the synced, clipped gradients) → ``optimizer.step()``
    → ``method.after_step(next_step)`` (masks updated on schedule and re-applied, so a pruned weight is
    zero before anyone sees it) →
    ``scheduler.step()`` (after the method: a proximal method needs this step's learning rate) →
    ``optimizer.zero_grad()``.

    ``next_step``: the number of this optimizer step (steps done so far + 1). Without an
    ``accelerator`` it is a plain PyTorch step (no gradient accumulation).
    """
    with accelerator.accumulate(model) if accelerator is not None else nullcontext():
        with accelerator.autocast() if accelerator is not None else nullcontext():
            loss = forward_loss(model, batch, method)
        if accelerator is not None:
            accelerator.backward(loss)
            if not accelerator.sync_gradients:
                return StepResult(loss.detach(), False)
            if extra_params and accelerator.num_processes > 1:  # outside DDP: average by hand
                for p in extra_params:
                    p.grad = accelerator.reduce(p.grad, reduction="mean")
        else:
            loss.backward()
        grad_norm = None
        if max_grad_norm is not None:  # clipping also unscales fp16 gradients, so criteria read true ones
            params = model.parameters()
            grad_norm = float(accelerator.clip_grad_norm_(params, max_grad_norm) if accelerator is not None
                              else torch.nn.utils.clip_grad_norm_(params, max_grad_norm))
        hook_seconds = optimizer_step(method, optimizer.step, next_step, optimizer)
        if scheduler is not None:
            scheduler.step()
        optimizer.zero_grad()
    return StepResult(loss.detach(), True, grad_norm, hook_seconds)


def forward_loss(model, batch: dict, method: PruningMethod) -> torch.Tensor:
    """The training loss of one batch: the model's own (task) loss, to which the method adds its
    terms (distillation runs the teacher here). Shared with the Hugging Face Trainer integration."""
    outputs = model(**batch, **method.forward_kwargs())
    return method.loss(getattr(outputs, "loss", None), outputs, batch)  # a bare encoder computes none


def optimizer_step(method: PruningMethod, step, next_step: int, optimizer=None) -> float:
    """One optimizer step ``step()`` with the pruning hooks around it, in the order every driver
    shares (bertprune's loop and the Hugging Face Trainer callback): criteria read the clipped
    gradients first, masks are updated and re-applied right after the weights move. Returns the
    seconds spent in the hooks."""
    start = time.perf_counter()
    method.before_optimizer_step()
    seconds = time.perf_counter() - start
    step()
    start = time.perf_counter()
    method.after_step(next_step, optimizer)
    return seconds + time.perf_counter() - start


def non_finite_parameters(model) -> list[str]:
    """Names of parameters holding NaN or inf (a diverged model must never be saved)."""
    return [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]


def divergence(loss: float, grad_norm: float | None, max_loss: float | None) -> str | None:
    """Why this step counts as diverged (None: it does not). ``loss``: the micro-batch's loss."""
    if not math.isfinite(loss):
        return f"the loss is {loss}"
    if grad_norm is not None and not math.isfinite(grad_norm):
        return f"the gradient norm is {grad_norm}"
    if max_loss is not None and loss > max_loss:
        return f"the loss {loss:.4g} exceeds train.max_loss={max_loss:g}"
    return None


def make_lr_scheduler(optimizer, train_cfg, total_steps: int, method: PruningMethod) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning-rate factor of :mod:`bertprune.schedules` (``train.lr_schedule``); ``rewind``
    restarts at the method's pruning steps."""
    warmup = int(train_cfg.warmup_ratio * total_steps)
    restarts = method.prune_steps() if train_cfg.lr_schedule == "rewind" else []
    kind, ratio = train_cfg.lr_schedule, train_cfg.lr_min_ratio
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(kind, s, total_steps, warmup, restarts=restarts, min_ratio=ratio))


def make_eval_loaders(cfg, built, accelerator) -> dict[str, DataLoader]:
    """One loader per evaluation set of the task (e.g. ``dev``), in order, sharded across processes."""
    return {k: accelerator.prepare_data_loader(DataLoader(v, batch_size=cfg.train.eval_batch_size, collate_fn=built.collate))
            for k, v in built.eval_sets.items()}


def evaluate(task: Task, model, loaders, accelerator) -> dict[str, Any]:
    was_training = model.training
    model.eval()
    try:
        return task.evaluate(model, loaders, accelerator)
    finally:
        model.train(was_training)


def save_hf_checkpoint(folder: Path, model, tokenizer, masks, task: Task, extra: dict[str, Any] | None = None) -> None:
    """A plain Hugging Face checkpoint (zeros baked in), the mask, and a metrics file, atomically."""

    if bad := non_finite_parameters(model):  # the divergence guard stops earlier; this is the last line
        raise DivergenceError(f"refusing to save {folder}: non-finite weights in {bad[:3]}")

    def write(tmp: Path):
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        task.touch_up_checkpoint(tmp)
        if masks is not None and len(masks):
            masks.save(tmp / MASK_FILE)
        if extra is not None:
            ckpt.write_json(tmp / "bertprune.json", extra)

    ckpt.atomic_dir(folder, write)


def save_training_state(root: Path, accelerator, model, optimizer, scheduler, method, progress: Progress) -> None:
    name = f"step-{progress.step:08d}"
    tmp = root / f".{name}.tmp"
    if bad := non_finite_parameters(accelerator.unwrap_model(model)):
        raise DivergenceError(f"refusing to write checkpoint {name}: non-finite weights in {bad[:3]}")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    ckpt.save_tree(ckpt.rng_state(), tmp, f"rng-rank{accelerator.process_index}")
    if accelerator.is_main_process:
        save_model(accelerator.unwrap_model(model), str(tmp / "model.safetensors"))
        ckpt.save_tree(optimizer.state_dict(), tmp, "optimizer")
        ckpt.save_tree(method.state_dict(), tmp, "method")
        ckpt.write_json(tmp / "scheduler.json", scheduler.state_dict())
        ckpt.write_json(tmp / "progress.json", asdict(progress))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        ckpt.install(tmp, root, name)  # sealed, renamed into place, published; the two newest kept
    accelerator.wait_for_everyone()


def load_training_state(folder: Path, accelerator, model, optimizer, scheduler, method) -> Progress:
    rng = folder / f"rng-rank{accelerator.process_index}.json"
    if not rng.exists():
        raise BertpruneError(f"{folder} was written by fewer processes; resume with the same number of processes")
    load_model(accelerator.unwrap_model(model), str(folder / "model.safetensors"))
    optimizer.load_state_dict(ckpt.load_tree(folder, "optimizer"))
    scheduler.load_state_dict(json.loads((folder / "scheduler.json").read_text()))
    method.load_state_dict(ckpt.load_tree(folder, "method"))
    ckpt.set_rng_state(ckpt.load_tree(folder, f"rng-rank{accelerator.process_index}"))
    return Progress(**json.loads((folder / "progress.json").read_text()))


def train(cfg, task: Task, resume: bool = False, overwrite: bool = False, quiet: bool = False,
          method: PruningMethod | None = None) -> dict[str, Any]:
    """Train (and prune) on ``task`` with ``method`` (default: the one ``cfg.prune`` names);
    returns the run's results (also written to results.json)."""
    # --- set-up: every check happens here, before the first step ---------------------------------
    accelerator = make_accelerator(cfg)
    main = accelerator.is_main_process
    out = Path(cfg.output_dir)
    action = check_output_dir(cfg, resume, overwrite)
    if cfg.train.batch_size % accelerator.num_processes:
        raise BertpruneError(
            f"train.batch_size={cfg.train.batch_size} must be divisible by the {accelerator.num_processes} processes"
        )
    if action == "finished":  # --resume on a finished run: nothing to redo, nothing to truncate
        return finished_results(out, main, quiet)
    accelerator.wait_for_everyone()
    if action == "resume" and main:
        recovered = ckpt.recover_run_dir(out, (BEST, FINAL)) + ckpt.clean_checkpoints(out / CHECKPOINTS)
        if recovered and not quiet:
            tqdm.write(f"{out}: tidied after an interrupted run: {'; '.join(recovered)}")
    accelerator.wait_for_everyone()
    set_seed(cfg.train.seed)

    built = task.build(accelerator)
    model, tokenizer, train_set = built.model, built.tokenizer, built.train_set
    total_steps, steps_per_epoch = total_steps_of(cfg, len(train_set))
    method = method or build_method(cfg.prune, cfg.targets)
    model.to(accelerator.device)  # first: the method makes its masks and statistics beside the weights
    method.prepare(model, total_steps, steps_per_epoch)  # errors (e.g. no prunable matrices) surface before training
    lengths = example_lengths(train_set) if cfg.train.group_by_length else None
    eval_loaders = make_eval_loaders(cfg, built, accelerator)
    last = ckpt.latest_checkpoint(out / CHECKPOINTS) if action == "resume" else None
    log = MetricsLog(out / "metrics.jsonl", enabled=main)
    if main:
        if action == "replace":  # only now: a set-up error above must not cost the old run
            remove_run_dir(out)
        if action != "resume":
            mark_run_dir(out)
        save_config(cfg, out / CONFIG_FILE)

    progress = Progress()
    if last is None:  # a fresh run: the task may prepare the model (e.g. train a missing head)
        log.truncate_after(-1)
        progress.before_training = task.before_training(built, eval_loaders, accelerator, log, quiet)
    extra_params = method.extra_parameters()  # e.g. the hidden-state projection of distillation
    groups = optimizer_groups(model, cfg.train.weight_decay) + ([{"params": extra_params, "weight_decay": 0.0}] if extra_params else [])
    optimizer = torch.optim.AdamW(groups, lr=cfg.train.lr)
    scheduler = make_lr_scheduler(optimizer, cfg.train, total_steps, method)
    model, optimizer = accelerator.prepare(model, optimizer)
    if last is not None:
        progress = load_training_state(last, accelerator, model, optimizer, scheduler, method)
        log.truncate_after(progress.step)
        if main and not quiet:
            tqdm.write(f"resuming {out} from step {progress.step}")

    eval_every = cfg.train.eval_every or steps_per_epoch
    save_every = cfg.train.save_every or eval_every
    unwrapped = accelerator.unwrap_model(model)
    bar = tqdm(total=total_steps, initial=progress.step, disable=not main or quiet, desc=f"{task.name} {method.name}")
    last_eval: dict[str, Any] | None = None

    # --- the loop ---------------------------------------------------------------------------------
    model.train()
    while progress.step < total_steps:
        order = (epoch_order(len(train_set), cfg.train.seed, progress.epoch) if lengths is None
                 else length_grouped_order(lengths, cfg.train.batch_size, cfg.train.seed, progress.epoch))[progress.offset :]
        # Its own generator: creating a DataLoader iterator must not draw from the global RNG that
        # dropout and masking use, or a resumed run would diverge from an uninterrupted one.
        loader = accelerator.prepare_data_loader(
            DataLoader(train_set.select(order), batch_size=cfg.train.batch_size, collate_fn=built.collate,
                       generator=torch.Generator().manual_seed(cfg.train.seed))
        )
        step_start = time.perf_counter()
        for batch in loader:
            result = train_step(model, batch, method, optimizer, scheduler, progress.step + 1, accelerator,
                                cfg.train.max_grad_norm, extra_params)
            progress.offset += cfg.train.batch_size
            if progress.offset >= len(train_set):  # a checkpoint taken now resumes at the next epoch
                progress.epoch, progress.offset = progress.epoch + 1, 0
            loss = result.loss.float().item()
            why = agree_on_divergence(accelerator, divergence(loss, result.grad_norm, cfg.train.max_loss))
            if why is not None:  # stop before anything diverged is saved: the last checkpoint stays the last good one
                raise diverged(out, log, progress, why, cfg)
            progress.losses.append(loss)
            if not result.stepped:
                continue
            progress.step += 1
            grad_norm = result.grad_norm
            step_end = time.perf_counter()
            progress.step_seconds.append(step_end - step_start)
            progress.prune_seconds.append(result.prune_seconds)
            progress.train_seconds += step_end - step_start
            bar.update(1)

            if progress.step % cfg.train.log_every == 0 or progress.step == total_steps:
                record = {
                    "step": progress.step,
                    "epoch": progress.epoch + progress.offset / len(train_set),
                    "loss": float(np.mean(progress.losses)),
                    "lr": scheduler.get_last_lr()[0],
                    "grad_norm": float(grad_norm),
                    "target_sparsity": method.target_sparsity(progress.step),
                    "sec_per_step": statistics.median(progress.step_seconds[-cfg.train.log_every :]),
                    **method.log_metrics(),
                }
                log.write(record)
                bar.set_postfix(loss=f"{record['loss']:.4f}", sparsity=f"{record['sparsity']:.3f}")
                progress.losses.clear()

            if progress.step % eval_every == 0 or progress.step == total_steps:
                last_eval = {"step": progress.step, **evaluate(task, model, eval_loaders, accelerator)}
                log.write({"step": progress.step, "eval": last_eval})
                score = task.headline(last_eval)
                if main and not quiet:
                    tqdm.write(f"step {progress.step}: dev {task.main_metric}={score:.2f} "
                               f"sparsity={method.log_metrics()['sparsity']:.4f}")
                if method.reached_target(progress.step) and (progress.best is None or score > progress.best):
                    progress.best, progress.best_step, progress.best_eval = score, progress.step, last_eval
                    if main:
                        save_hf_checkpoint(out / BEST, unwrapped, tokenizer, method.masks, task, {"eval": last_eval})
            if progress.step % save_every == 0 and progress.step < total_steps:
                save_training_state(out / CHECKPOINTS, accelerator, model, optimizer, scheduler, method, progress)
            step_start = time.perf_counter()
            if progress.step >= total_steps:
                break
    bar.close()

    # --- the end ----------------------------------------------------------------------------------
    masks = method.finalize()
    fingerprints = accelerator.gather(masks.fingerprint().reshape(1).to(accelerator.device))
    if not bool((fingerprints == fingerprints[0]).all()):  # a bug, never a user error
        raise RuntimeError(f"masks differ between processes: {fingerprints.tolist()}")
    if last_eval is None or last_eval["step"] != progress.step:
        last_eval = {"step": progress.step, **evaluate(task, model, eval_loaders, accelerator)}
        log.write({"step": progress.step, "eval": last_eval, "after": "finalize"})
    teacher = getattr(method, "teacher", None)  # distillation: how closely does the final student copy it?
    agreement = teacher_agreement(task, model, teacher, eval_loaders, accelerator) if teacher is not None else None
    results = {
        "task": task.name,
        "method": method.name,
        "target_sparsity": cfg.prune.sparsity,
        "main_metric": task.main_metric,
        "final": last_eval,  # raw metrics (e.g. accuracy 0.5625), as the task computes them
        "best": progress.best_eval,  # the same units: the evaluation of the best step (None before the target)
        # the headline metric on the 0-100 scale of the tables, for both
        "headline": {"metric": task.main_metric, "final": task.headline(last_eval), "best": progress.best},
        "steps": progress.step,
        "train_examples": len(train_set),
        "train_seconds": progress.train_seconds,
        "sec_per_step_median": statistics.median(progress.step_seconds) if progress.step_seconds else None,
        "prune_sec_per_step_median": statistics.median(progress.prune_seconds) if progress.prune_seconds else None,
        "processes": accelerator.num_processes,
        "method_summary": method.summary(),
        **progress.before_training,
        **({"teacher_agreement": agreement} if agreement is not None else {}),  # task metrics vs the teacher's predictions
    }
    if main:
        save_hf_checkpoint(out / FINAL, unwrapped, tokenizer, masks, task, {"eval": last_eval})
        report = write_report(out, out, seq_len=task.seq_len)
        results["achieved_sparsity"] = report["sparsity"]["targeted"]
        results["nonzero_encoder_params"] = report["params"]["encoder_linear_nonzero"]
        ckpt.write_text(out / FINAL / "README.md", model_card(cfg, task.name, last_eval, report, invocation()))
        faultpoints.reach("end.final")
        ckpt.write_json(out / RESULTS_FILE, results)  # from here on the run is finished
        ckpt.remove_checkpoints(out / CHECKPOINTS)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return results


def agree_on_divergence(accelerator, why: str | None) -> str | None:
    """On several processes every one must stop together (a lone rank would leave the others
    waiting in the next collective): any rank's divergence stops all."""
    if accelerator.num_processes == 1:
        return why
    flags = accelerator.gather(torch.tensor([why is not None], device=accelerator.device))
    return why or ("another process diverged" if bool(flags.any()) else None)


def diverged(out: Path, log: MetricsLog, progress: Progress, why: str, cfg) -> DivergenceError:
    """The error that stops a diverged run, after logging it; nothing else is written."""
    log.write({"step": progress.step + 1, "diverged": why})
    last = ckpt.latest_checkpoint(out / CHECKPOINTS)
    kept = (f"the last good checkpoint, {last.relative_to(out)} (step {int(last.name.split('-')[1])}), is kept"
            if last is not None else "no checkpoint had been written yet")
    return DivergenceError(
        f"training diverged at step {progress.step + 1}: {why} (train.lr={cfg.train.lr:g}). The run in {out} stopped; "
        f"{kept} and no diverged weights were saved. Start again with a lower train.lr (or a larger "
        f"train.max_loss if the loss is legitimately large) in a new --output-dir or with --overwrite."
    )


def finished_results(out: Path, main: bool, quiet: bool) -> dict[str, Any]:
    """``--resume`` on a finished run: its results, after removing what an interrupted clean-up left."""
    if main:
        ckpt.recover_run_dir(out, (BEST, FINAL))
        ckpt.remove_checkpoints(out / CHECKPOINTS)
        if not quiet:
            tqdm.write(f"{out} already finished; nothing to resume (results: {out / RESULTS_FILE})")
    return json.loads((out / RESULTS_FILE).read_text())


def downstream_task(cfg) -> Task:
    """The fine-tuning task a config names: SQuAD or a GLUE task."""
    if cfg.data.task == "squad":
        from .tasks.squad import SquadTask

        return SquadTask(cfg)
    from .tasks.files import FileTask
    from .tasks.glue import GlueTask

    return FileTask(cfg) if cfg.data.task in ("text_classification", "text_regression") else GlueTask(cfg)


def finetune(cfg, resume: bool = False, overwrite: bool = False, quiet: bool = False) -> dict[str, Any]:
    """Fine-tune (and prune) a model on a GLUE task or SQuAD."""
    return train(cfg, downstream_task(cfg), resume=resume, overwrite=overwrite, quiet=quiet)


def distill(cfg, resume: bool = False, overwrite: bool = False, quiet: bool = False) -> dict[str, Any]:
    """Prune ``cfg.model`` (the student) while distilling ``cfg.distill.teacher`` on a GLUE task or SQuAD."""
    from .methods.distill import Distillation

    if cfg.distill.init_from_teacher:  # the student starts as a copy of the fine-tuned teacher
        teacher = Path(cfg.distill.teacher)
        cfg.model.name = str(teacher / FINAL if (teacher / FINAL / "config.json").is_file() else teacher)
    task = downstream_task(cfg)
    regression = getattr(getattr(task, "spec", None), "is_regression", False)
    method = Distillation(build_method(cfg.prune, cfg.targets), lambda: task.load_teacher(cfg.distill.teacher),
                          cfg.distill, regression=regression)
    return train(cfg, task, resume=resume, overwrite=overwrite, quiet=quiet, method=method)
