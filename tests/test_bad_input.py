"""Each bad input stops before training, with one message that says how to fix it, and writes nothing."""

import pytest

from bertprune.cli import main

from conftest import save_tiny_model


def _fails(args, capsys, *fragments):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("bertprune: error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    return err


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
    import shutil

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
    import shutil

    for f in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(tiny_models["bert"] / f, folder / f)
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
