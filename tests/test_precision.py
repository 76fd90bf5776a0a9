"""train.mixed_precision=auto: bf16 where the hardware runs it natively, fp32 elsewhere (precision.py)."""

from pathlib import Path

import pytest

import bertprune
from bertprune import precision
from bertprune.config import DistillRunConfig, load_config, save_config
from bertprune.errors import BertpruneError
from bertprune.train import make_accelerator

RECIPES = Path(bertprune.__file__).parent / "recipes"


@pytest.mark.parametrize("value, native, expected", [
    ("auto", True, "bf16"), ("auto", False, "no"),
    ("bf16", False, "bf16"), ("no", True, "no"), ("fp16", False, "fp16"),  # explicit values are kept
])
def test_auto_resolves_to_bf16_only_where_it_is_native(value, native, expected):
    assert precision.resolve(value, native=native) == expected


def test_an_explicit_bf16_warns_only_where_it_is_emulated():
    assert "auto" in precision.slow_bf16_warning("bf16", native=False)
    assert precision.slow_bf16_warning("bf16", native=True) is None
    assert precision.slow_bf16_warning("no", native=False) is None


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "no")])
def test_the_recipes_say_auto_and_the_saved_config_names_the_resolved_precision(monkeypatch, tmp_path, native, expected):
    monkeypatch.setattr(precision, "native_bf16", lambda: native)
    for name in ("sparse-kd", "teacher", "demo"):
        assert "mixed_precision: auto" in (RECIPES / f"{name}.yaml").read_text()
    cfg = load_config(RECIPES / "sparse-kd.yaml", ["distill.teacher=t"], schema=DistillRunConfig)
    assert cfg.train.mixed_precision == expected
    save_config(cfg, tmp_path / "config.yaml")  # what a resume reads back: concrete, not auto
    assert "auto" not in (tmp_path / "config.yaml").read_text()
    again = load_config(tmp_path / "config.yaml", schema=DistillRunConfig)
    assert again.train.mixed_precision == expected


def test_an_unknown_precision_is_one_clear_error_naming_the_choices():
    with pytest.raises(BertpruneError, match="no, fp16, bf16, auto"):
        load_config(None, ["train.mixed_precision=fp8"])


def test_the_accelerator_warns_of_emulated_bf16_and_stays_quiet_in_fp32(monkeypatch, recwarn):
    monkeypatch.setattr(precision, "native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="emulated"):
        make_accelerator(load_config(None, ["train.mixed_precision=bf16"]))
    recwarn.clear()
    make_accelerator(load_config(None, ["train.mixed_precision=auto"]))
    assert not [w for w in recwarn if "emulated" in str(w.message)]


def test_a_config_built_in_code_with_auto_gets_the_resolved_precision_from_the_accelerator():
    from types import SimpleNamespace

    cfg = SimpleNamespace(train=SimpleNamespace(mixed_precision="auto", grad_accum=1))  # never validated
    assert make_accelerator(cfg).mixed_precision == precision.resolve("auto")
