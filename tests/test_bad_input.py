"""Each bad input stops before training, with one message that says how to fix it, and writes nothing."""

import json
import shutil
import struct

import pytest
import torch
from safetensors.torch import save_file

from bertprune.cli import main
from bertprune.errors import BertpruneError

from conftest import cli_fails


_fails = cli_fails


def test_unknown_task(run_args, capsys, tmp_path):
    _fails(run_args("x", "bert", "sst3"), capsys, "unknown task 'sst3'", "cola, sst2, mrpc")
    assert not (tmp_path / "x").exists()


def test_unknown_model(run_args, capsys, tmp_path):
    args = run_args("x")
    args[args.index("--model") + 1] = str(tmp_path / "no" / "such" / "model")
    _fails(args, capsys, "is not an existing folder")
    args[args.index("--model") + 1] = "nosuchorg/nosuchmodel"
    _fails(args, capsys, "could not load model 'nosuchorg/nosuchmodel'", "Pass a local folder")
    assert not (tmp_path / "x").exists()


def test_model_folder_with_only_pickle_weights(run_args, capsys, tmp_path, tiny_models):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_models["bert"], folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    args = run_args("x")
    args[args.index("--model") + 1] = str(folder)
    _fails(args, capsys, "no .safetensors weights", "pytorch_model.bin")


def test_missing_data_file(run_args, capsys, tmp_path):
    empty = tmp_path / "glue"
    (empty / "RTE").mkdir(parents=True)
    args = run_args("x", "bert", "rte")
    args[args.index("--glue-dir") + 1] = str(empty)
    _fails(args, capsys, "GLUE file not found", "RTE/train.tsv", "--glue-dir")


@pytest.mark.parametrize("row, message", [
    ("0\tonly two fields", "line 3: 2 tab-separated fields, expected 4"),
    ("1\ta\tb\tmaybe", "line 3: label 'maybe' is not one of ['entailment', 'not_entailment']"),
])
def test_malformed_data_file(run_args, capsys, tmp_path, row, message):
    glue = tmp_path / "glue"
    (glue / "RTE").mkdir(parents=True)
    (glue / "RTE" / "train.tsv").write_text(f"index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n{row}\n")
    (glue / "RTE" / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n")
    args = run_args("x", "bert", "rte")
    args[args.index("--glue-dir") + 1] = str(glue)
    _fails(args, capsys, message)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("value", ["1.0", "1.5", "-0.2"])
def test_sparsity_out_of_range(run_args, capsys, value):
    _fails(run_args("x", "bert", "sst2", "--method", "gmp", "--sparsity", value), capsys, "must be in [0, 1)", "prune.sparsity=0.9")


def test_model_without_prunable_matrices(run_args, capsys, tmp_path, tiny_models):
    from transformers import GPT2Config, GPT2Model

    folder = tmp_path / "gpt2"
    GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=80, n_positions=64, pad_token_id=0)).save_pretrained(folder)
    for f in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(tiny_models["bert"] / f, folder / f)
    capsys.readouterr()  # save_pretrained's progress bar (shown unless an earlier test quietened the libraries)
    args = run_args("x", "bert", "sst2", "--method", "gmp", "--sparsity", "0.5")
    args[args.index("--model") + 1] = str(folder)
    _fails(args, capsys, "targets.patterns")
    assert not (tmp_path / "x").exists()


def test_unknown_config_key_and_bad_override(run_args, capsys):
    _fails(run_args("x", "bert", "sst2", "train.learning_rate=1e-3"), capsys, "learning_rate")
    _fails(run_args("x", "bert", "sst2", "--scope", "layer", "--method", "gmp", "--sparsity", "0.5"), capsys, "prune.scope")


def test_output_folder_holding_a_different_run(run_args, capsys, tmp_path):
    assert main_ok(run_args("taken", "bert", "sst2", "--max-steps", "1"))
    err = _fails(run_args("taken", "bert", "sst2", "--max-steps", "1", "--seed", "7"), capsys, "holds a different run")
    assert "train.seed: 42 -> 7" in err and "--overwrite" in err


def main_ok(args) -> bool:
    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code == 0


# --- issue 19: every bad input is one message, exit status 2, and no run folder -------------------------
QUERY = "bert.encoder.layer.0.attention.self.query.weight"  # a (32, 32) matrix of the tiny BERT classifier


def _copy_model(tiny_models, tmp_path, name="model", kind="bert"):
    folder = tmp_path / name
    shutil.copytree(tiny_models[kind], folder)
    return folder


def _with_model(args, folder):
    args[args.index("--model") + 1] = str(folder)
    return args


@pytest.mark.parametrize("content, shown", [("- train\n- prune\n", "holds a list"), ("3\n", "a single value (3)")])
def test_recipe_whose_top_level_is_not_a_mapping(run_args, capsys, tmp_path, content, shown):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(content)
    _fails(run_args("x", "bert", "sst2", "--config", str(recipe)), capsys, shown, "mapping of config keys")
    assert not (tmp_path / "x").exists()


def test_report_on_a_file_that_is_not_safetensors(capsys, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("these are not weights\n")
    _fails(["report", str(text)], capsys, "notes.txt is not a readable safetensors file")


def test_corrupt_model_safetensors_in_report_and_in_a_run(run_args, capsys, tmp_path, tiny_models):
    folder = _copy_model(tiny_models, tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # a truncated download
    _fails(["report", str(folder)], capsys, "model.safetensors is not a readable safetensors file", "truncated")
    _fails(_with_model(run_args("x"), folder), capsys, "model.safetensors is not a readable safetensors file")
    assert not (tmp_path / "x").exists()


def test_sparse_export_to_a_path_below_a_file_or_onto_a_file(capsys, tmp_path, tiny_models):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    _fails(["export", str(tiny_models["bert"]), "--format", "sparse", "-o", str(blocker / "out")], capsys,
           "lies below a file", str(blocker))
    _fails(["export", str(tiny_models["bert"]), "--format", "sparse", "-o", str(blocker)], capsys,
           "is an existing file, not a folder")
    assert blocker.read_text() == "a file"


def _squad(qa: dict, context: str = "the cat sat") -> dict:
    return {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": [qa]}]}]}


@pytest.mark.parametrize("qa, message", [
    ({"id": "q1", "question": "who?", "answers": [{"text": "cat", "answer_start": "abc"}]}, "answer_start must be a character offset"),
    ({"id": "q1", "question": "who?", "answers": []}, "no answers"),
    ({"id": "q1", "question": None, "answers": [{"text": "cat", "answer_start": 4}]}, "expected a string, found null"),
    ({"id": "q1", "question": "who?", "answers": {"text": "cat"}}, "'answers' must be a list"),
    ({"id": "q1", "question": "who?", "answers": [{"text": 7, "answer_start": 4}]}, "expected a string, found a number"),
    ({"id": "q1", "question": "who?", "answers": [{"text": "cat", "answer_start": True}]}, "answer_start must be"),
    ({"id": "q1", "question": "who?", "answers": ["cat"]}, "expected a JSON object"),
])
def test_squad_file_with_wrong_types_names_file_and_question(tmp_path, qa, message):
    from bertprune.data.squad import read_squad

    path = tmp_path / "train-v1.1.json"
    path.write_text(json.dumps(_squad(qa)))
    with pytest.raises(BertpruneError, match=message) as e:
        read_squad(path)
    assert str(path) in str(e.value) and "'q1'" in str(e.value)


def test_squad_file_with_a_bad_id_names_its_place(tmp_path):
    from bertprune.data.squad import read_squad

    path = tmp_path / "dev.json"
    path.write_text(json.dumps(_squad({"id": None, "question": "who?", "answers": [{"text": "cat", "answer_start": 4}]})))
    with pytest.raises(BertpruneError, match=r"data\[0\]\.paragraphs\[0\]\.qas\[0\]\.id: expected a string, found null"):
        read_squad(path)


@pytest.mark.parametrize("payload, message", [
    (b"index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n\xff\xfe\x00\x81garbage\n", "is not UTF-8 text"),
    (b"index\tsentence1\tsentence2\tlabel\n0\ta\x00b\tb\tentailment\n", "NUL"),
])
def test_binary_glue_file(run_args, capsys, tmp_path, payload, message):
    glue = tmp_path / "glue"
    (glue / "RTE").mkdir(parents=True)
    (glue / "RTE" / "train.tsv").write_bytes(payload)
    (glue / "RTE" / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n")
    args = run_args("x", "bert", "rte")
    args[args.index("--glue-dir") + 1] = str(glue)
    _fails(args, capsys, "RTE/train.tsv", message)
    assert not (tmp_path / "x").exists()


def test_curve_on_a_missing_file_or_a_folder_that_is_no_run(capsys, tmp_path):
    _fails(["curve", str(tmp_path / "missing.jsonl"), "--task", "mrpc", "-o", str(tmp_path / "c")], capsys, "record file not found")
    _fails(["curve", str(tmp_path), "--task", "mrpc", "-o", str(tmp_path / "c")], capsys, "nor a finished run folder")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task": "mrpc", "method": "gmp"}\n')
    _fails(["curve", str(bad), "--task", "mrpc", "-o", str(tmp_path / "c")], capsys, "line 1", "target_sparsity")
    assert not list(tmp_path.glob("c*"))


@pytest.mark.parametrize("kind, length, limit", [("bert", 65, 64), ("roberta", 70, 69)])  # RoBERTa: 70 − (padding_idx 0 + 1)
def test_max_length_beyond_the_position_embeddings(run_args, capsys, tmp_path, kind, length, limit):
    _fails(run_args("x", kind, "sst2", f"data.max_length={length}"), capsys,
           f"data.max_length={length} exceeds the {limit} positions", f"data.max_length={limit} or less")
    assert not (tmp_path / "x").exists()  # refused at set-up, before any run folder


def test_default_max_length_is_capped_at_the_model_limit(tiny_models):
    from transformers import AutoModel

    from bertprune.models import max_positions, sequence_length

    roberta = AutoModel.from_pretrained(tiny_models["roberta"])
    assert max_positions(roberta) == 69
    assert sequence_length(roberta, None, 128) == 69 and sequence_length(roberta, 32, 128) == 32


def test_model_folder_without_tokenizer_files(run_args, capsys, tmp_path, tiny_models):
    folder = tmp_path / "bare"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_models["bert"] / name, folder / name)
    _fails(_with_model(run_args("x"), folder), capsys, "has no tokenizer files", "unknown token")
    assert not (tmp_path / "x").exists()


def test_tokenizer_that_maps_english_to_the_unknown_token(run_args, capsys, tmp_path, tiny_models):
    folder = _copy_model(tiny_models, tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(70)]) + "\n")
    _fails(_with_model(run_args("x"), folder), capsys, "maps every word", "to its unknown token")
    assert not (tmp_path / "x").exists()


def test_resolver_interpolations_are_refused(run_args, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("BERTPRUNE_TEST_SECRET", "hunter2")
    _fails(run_args("x", "bert", "sst2", "model.revision=${oc.env:BERTPRUNE_TEST_SECRET}"), capsys,
           "calls an OmegaConf resolver", "pass it as an override")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model:\n  revision: ${oc.decode:'\"x\"'}\n")
    err = _fails(run_args("x", "bert", "sst2", "--config", str(recipe)), capsys, "calls an OmegaConf resolver")
    assert "hunter2" not in err and not (tmp_path / "x").exists()


def test_references_between_config_keys_still_work():
    from bertprune.config import load_config

    assert load_config(None, ["train.eval_every=${train.log_every}"]).train.eval_every == 10


def test_long_texts_are_cut_before_tokenizing(tiny_models):
    from datasets import Dataset
    from transformers import AutoTokenizer

    from bertprune.data.glue import TASKS, cut_text, tokenize

    tok = AutoTokenizer.from_pretrained(tiny_models["bert"])
    normal = " ".join(["good movie", "the plot was dull"] * 2000)  # ~60,000 characters, short words
    assert len(cut_text(normal, 32)) == 3200 and cut_text("short", 32) == "short"
    for a, b in [(normal, None), (normal, "a nice film"), ("a nice film", normal)]:
        args = (a,) if b is None else (a, b)
        cut = (cut_text(a, 32),) if b is None else (cut_text(a, 32), cut_text(b, 32))
        assert tok(*cut, truncation=True, max_length=32)["input_ids"] == tok(*args, truncation=True, max_length=32)["input_ids"]

    seen = []

    class Spy:  # the texts that reach the tokenizer
        def __call__(self, *texts, **kw):
            seen.extend(len(t) for column in texts for t in column)
            return tok(*texts, **kw)

    huge = Dataset.from_dict({"text_a": ["good " * 4_000_000], "label": [1]})  # one 20 MB row
    out = tokenize(huge, Spy(), TASKS["sst2"], 32)
    assert max(seen) == 3200 and len(out[0]["input_ids"]) == 32


def _raw_safetensors(path, tensors: dict[str, tuple[str, list[int], bytes]]):
    """A safetensors file written byte by byte, to store what save_file would refuse (a bool byte 2)."""
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)


def _mask_files(folder):
    folder.mkdir()
    files = {}
    files["corrupt"] = folder / "corrupt.safetensors"
    files["corrupt"].write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    files["shape"] = folder / "shape.safetensors"
    save_file({QUERY: torch.ones(16, 32, dtype=torch.bool)}, str(files["shape"]))
    files["values"] = folder / "values.safetensors"
    save_file({QUERY: torch.full((32, 32), 0.5)}, str(files["values"]))
    files["byte"] = folder / "byte.safetensors"
    _raw_safetensors(files["byte"], {QUERY: ("BOOL", [32, 32], bytes([1] * 1023 + [2]))})
    files["names"] = folder / "names.safetensors"
    save_file({"encoder.block.0.q.weight": torch.ones(32, 32, dtype=torch.bool)}, str(files["names"]))
    files["empty"] = folder / "empty.safetensors"
    save_file({}, str(files["empty"]))
    return files


MASK_MESSAGES = {"corrupt": "not a readable safetensors mask file", "shape": "has shape (16, 32)",
                 "values": "values other than 0 and 1", "byte": "values other than 0 and 1",
                 "names": "tensor(s) the model does not have", "empty": "holds no masks"}


@pytest.mark.parametrize("problem", list(MASK_MESSAGES))
def test_bad_mask_file_in_a_run_and_in_a_report(run_args, capsys, tmp_path, tiny_models, problem):
    mask = _mask_files(tmp_path / "masks")[problem]
    _fails(run_args("x", "bert", "sst2", "--mask", str(mask)), capsys, MASK_MESSAGES[problem])
    assert not (tmp_path / "x").exists()
    if problem != "shape":  # the bare encoder's names differ from the classifier's
        _fails(["report", str(tiny_models["bert"]), "--universal-mask", str(mask)], capsys, MASK_MESSAGES[problem])


def test_zero_one_integer_masks_are_masks(tmp_path):
    from bertprune.masks import Masks

    save_file({QUERY: torch.tensor([[1, 0], [0, 1]], dtype=torch.uint8)}, str(tmp_path / "m.safetensors"))
    assert Masks.load(tmp_path / "m.safetensors").zeros() == 2


# --- found by tests/test_fuzz.py (and their neighbours) ------------------------------------------------
@pytest.mark.parametrize("recipe, overrides, message", [
    ("targets:\n  roles: {}\n", [], "a mapping given for a list key"),
    ("targets:\n  roles:\n  - []\n", [], "targets.roles must be a list of str"),
    (None, ["output_dir='a"], "the value is not valid YAML"),
    (None, ["[=1"], "'\\[' is not a config key"),
    (None, ['output_dir="a\\0b"'], "holds a NUL character"),
    (None, ["train.epochs=.inf"], "train.epochs is inf; give a finite number"),
    (None, ["prune.mask=~nosuchuser-xyz/mask.safetensors"], "is not a usable path"),
])
def test_config_inputs_found_by_fuzzing(tmp_path, recipe, overrides, message):
    from bertprune.config import load_config

    path = None
    if recipe is not None:
        path = tmp_path / "recipe.yaml"
        path.write_text(recipe)
    with pytest.raises(BertpruneError, match=message):
        load_config(path, overrides)


def test_report_on_a_path_with_an_unknown_users_home(capsys):
    _fails(["report", "~nosuchuser-xyz/run"], capsys, "'~' names a user without a home folder")


def test_string_flags_are_taken_literally(run_args):
    from bertprune.cli import finetune_overrides, parse
    from bertprune.config import load_config

    args = parse(run_args("x") + ["--output-dir", "[draft] it's"])
    assert load_config(args.config, finetune_overrides(args)).output_dir == "[draft] it's"


def test_squad_windows_with_a_long_question_or_an_empty_context(tmp_path):
    from datasets import Dataset

    from bertprune.data.squad import eval_features, train_features
    from bertprune.testing import write_tokenizer

    tok = write_tokenizer(tmp_path / "tokenizer")
    context = "the cat sat on the mat " * 6
    ds = Dataset.from_dict({"id": ["long", "blank"], "title": ["t", "t"], "context": [context, "   "],
                            "question": ["good " * 40, "who?"],
                            "answers": [{"text": ["cat"], "answer_start": [4]}, {"text": [" "], "answer_start": [0]}]})
    train = train_features(ds, tok, max_length=16, stride=4)  # the question alone is longer than a window
    evals = eval_features(ds, tok, max_length=16, stride=4)
    assert max(map(len, train["input_ids"])) <= 16 and len(evals) >= 2
    assert train["start_positions"][-1] == 0  # the blank context has no tokens: the answer counts as cut off


def test_onnx_export_of_a_bare_encoder_and_a_too_long_sequence(capsys, tmp_path, tiny_models):
    folder = _copy_model(tiny_models, tmp_path)  # a pre-trained-style checkpoint: BertModel, no task head
    _fails(["export", str(folder), "--format", "onnx"], capsys, "--seq-len=128 exceeds the 64 positions")
    assert not (folder / "export-onnx").exists()
    with pytest.raises(SystemExit) as done:
        main(["export", str(folder), "--format", "onnx", "--seq-len", "16"])
    assert done.value.code == 0 and (folder / "export-onnx" / "model.onnx").is_file()


def test_report_html_into_an_existing_folder_is_refused(capsys, tiny_models, tmp_path):
    """Found by the CLI fuzz test: ``--html <folder>`` failed with IsADirectoryError after the report's work."""
    (tmp_path / "model").mkdir()
    _fails(["report", str(tiny_models["bert"]), "--html", str(tmp_path / "model")], capsys, "is a folder; give a file name")
    assert list((tmp_path / "model").iterdir()) == []
