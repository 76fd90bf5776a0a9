from pathlib import Path

import pytest
import yaml

from bertprune.config import RunConfig, load_config, save_config, to_dict
from bertprune.errors import BertpruneError


def test_defaults_then_yaml_then_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  lr: 1.0e-4\n  epochs: 5\nprune:\n  method: gmp\n  sparsity: 0.5\n")
    cfg = load_config(recipe, ["train.lr=2e-5", "prune.schedule.every=3", "targets.roles=[query,key]"])
    assert isinstance(cfg, RunConfig)
    assert cfg.train.lr == 2e-5  # override beats recipe
    assert cfg.train.epochs == 5  # recipe beats default
    assert cfg.train.batch_size == 32  # default
    assert (cfg.prune.method, cfg.prune.sparsity, cfg.prune.schedule.every) == ("gmp", 0.5, 3)
    assert cfg.targets.roles == ["query", "key"]
    out = tmp_path / "config.yaml"
    save_config(cfg, out)
    assert yaml.safe_load(out.read_text()) == to_dict(cfg)
    assert load_config(out) == cfg  # the saved config reproduces the run


@pytest.mark.parametrize("override, message", [
    ("train.lrr=1e-4", "Key 'lrr' not in 'TrainConfig'"),
    ("trainer.lr=1e-4", "Key 'trainer' not in 'RunConfig'"),
    ("train.lr=fast", "could not be converted"),
    ("prune.sparsity=1.0", r"must be in \[0, 1\)"),
    ("prune.sparsity=-0.1", r"must be in \[0, 1\)"),
    ("data.task=sst3", "unknown task"),
    ("prune.method=magic", "unknown pruning method"),
    ("targets.roles=[query,keys]", "unknown role"),
    ("train.lr", "not of the form key.sub=value"),
])
def test_bad_config_is_a_clear_error(override, message):
    extra = ["prune.method=gmp"] if override.startswith("prune.sparsity") else []
    with pytest.raises(BertpruneError, match=message):
        load_config(None, extra + [override])


def test_unknown_key_in_recipe(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  learning_rate: 1.0e-4\n")
    with pytest.raises(BertpruneError, match="learning_rate"):
        load_config(recipe)


def test_method_and_sparsity_must_agree():
    with pytest.raises(BertpruneError, match="prunes nothing"):
        load_config(None, ["prune.sparsity=0.5"])
    with pytest.raises(BertpruneError, match="needs a target"):
        load_config(None, ["prune.method=gmp"])


def test_glue_dir_from_environment(monkeypatch):
    monkeypatch.setenv("BERTPRUNE_GLUE_DIR", "/data/glue")
    assert load_config().data.glue_dir == "/data/glue"
    assert load_config(None, ["data.glue_dir=/elsewhere"]).data.glue_dir == "/elsewhere"


@pytest.mark.parametrize("name,schema", [("gmp-glue", "RunConfig"), ("rpp-pretrain", "PretrainConfig"),
                                         ("distill-glue", "DistillRunConfig"), ("squad-gmp", "RunConfig")])
def test_shipped_recipes_load(name, schema):
    import bertprune.config as config

    path = Path(__file__).resolve().parents[1] / "recipes" / f"{name}.yaml"
    overrides = ["distill.teacher=runs/teacher-mrpc/final"] if name.startswith("distill") else []  # the teacher is the user's
    cfg = load_config(path, overrides, schema=getattr(config, schema))
    assert cfg.prune.sparsity == 0.9 and cfg.prune.method in ("gmp", "rpp")


@pytest.mark.parametrize("name,schema,extra", [("sparse-kd", "DistillRunConfig", ["distill.teacher=runs/teacher"]),
                                               ("teacher", "RunConfig", ["prune.sparsity=0"])])
def test_packaged_recipes_fit_squad_as_well_as_glue(name, schema, extra):
    """No sequence length pinned: GLUE gets its 128 tokens and SQuAD its 384-token windows (a pinned 128
    would refuse SQuAD's stride of 128)."""
    import bertprune.config as config
    from bertprune.recipes import recipe_file

    for task in ("squad", "mrpc"):
        cfg = load_config(recipe_file(name), [f"data.task={task}", *extra], schema=getattr(config, schema))
        assert cfg.data.max_length is None  # the task's own default
