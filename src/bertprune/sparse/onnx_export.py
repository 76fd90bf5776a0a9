"""``bertprune export PATH --format onnx``: an ONNX graph of a checkpoint, checked against PyTorch
and run under ONNX Runtime (fp32, and int8 with ONNX Runtime's dynamic quantisation)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import BertpruneError
from ..paths import make_output_dir
from ..report import find_checkpoint

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def load_task_model(folder: Path, attn_implementation: str | None = None):
    import transformers

    from ..models import check_weights

    if not (folder / "config.json").is_file():
        raise BertpruneError(f"export needs a checkpoint folder (config.json + model.safetensors), got {folder}")
    check_weights(str(folder))  # no pickles, no truncated files
    try:
        config = transformers.AutoConfig.from_pretrained(folder)
    except (OSError, ValueError) as e:
        raise BertpruneError(f"{folder}/config.json is not a usable model config ({str(e).splitlines()[0]})") from None
    arch = (config.architectures or ["AutoModel"])[0]
    cls = getattr(transformers, arch, None) or transformers.AutoModel
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    return cls.from_pretrained(folder, use_safetensors=True, **kwargs).eval()


def sample_inputs(model, batch: int = 2, seq_len: int = 128, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    ids = torch.randint(5, vocab, (batch, seq_len), generator=g)
    mask = torch.ones_like(ids)
    mask[0, seq_len // 2 :] = 0  # a padded row, so the mask is exercised
    inputs = {"input_ids": ids, "attention_mask": mask}
    if getattr(model.config, "type_vocab_size", 0) > 0 and model.config.model_type != "distilbert":
        inputs["token_type_ids"] = torch.zeros_like(ids)
    return inputs


def _first_output(out):
    return out.logits if hasattr(out, "logits") else (out.start_logits if hasattr(out, "start_logits") else out[0])


class _ByName(torch.nn.Module):
    """Calls the model with keyword inputs and returns its first output. The tracer passes inputs by
    position, which transformers' forward wrappers of bare encoders (e.g. BertModel) refuse ("got
    multiple values for argument 'use_cache'")."""

    def __init__(self, model: torch.nn.Module, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return _first_output(self.model(**dict(zip(self.names, tensors))))


def export_onnx(path: str | Path, out: str | Path, int8: bool = False, seq_len: int = 128, opset: int = 17) -> dict:
    import onnxruntime as ort

    folder = find_checkpoint(path)
    from ..models import sequence_length

    model = load_task_model(folder, attn_implementation="eager")  # SDPA's shape checks would be traced as constants
    sequence_length(model, seq_len, seq_len, key="--seq-len")  # the check inputs must fit the position embeddings
    out = make_output_dir(out, "--out")  # after the checkpoint was found good: a failed export leaves no folder
    inputs = sample_inputs(model, 2, seq_len)
    names = list(inputs)
    onnx_file = out / "model.onnx"
    dynamic = {n: {0: "batch", 1: "sequence"} for n in names}
    dynamic["output"] = {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(_ByName(model, names), tuple(inputs.values()), str(onnx_file), input_names=names,
                          output_names=["output"], dynamic_axes=dynamic, opset_version=opset, dynamo=False)
        reference = _first_output(model(**inputs)).numpy()
    result = {"onnx": str(onnx_file), "onnx_bytes": onnx_file.stat().st_size}
    files = {"fp32": onnx_file}
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        files["int8"] = out / "model.int8.onnx"
        quantize_dynamic(str(onnx_file), str(files["int8"]), weight_type=QuantType.QInt8)
        result["onnx_int8_bytes"] = files["int8"].stat().st_size
    for kind, f in files.items():
        session = ort.InferenceSession(str(f), providers=["CPUExecutionProvider"])
        wanted = {i.name for i in session.get_inputs()}
        got = session.run(None, {k: v.numpy() for k, v in inputs.items() if k in wanted})[0]
        diff = float(np.abs(got - reference).max())
        result[f"max_abs_diff_{kind}"] = diff
        if kind == "fp32" and diff > 1e-3:
            raise BertpruneError(f"the ONNX graph disagrees with PyTorch (max |Δ| = {diff:.2e}); not using it")
    (out / "export.json").write_text(json.dumps(result, indent=1))
    return result


def ort_session(onnx_file: str | Path, threads: int | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(onnx_file), opts, providers=["CPUExecutionProvider"])
