"""The main job, end to end on a tiny model: dense, then the high-sparsity recipe from it, then the engine timed."""

import pytest

from bertprune.demo import demo, side_by_side, speed_table


@pytest.mark.slow
def test_demo_runs_the_recipe_and_times_the_engine(tiny_models, tiny_glue, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BERTPRUNE_GLUE_DIR", str(tiny_glue))  # as scripts/demo.sh is run: the folder from the env
    rows, speed = demo(str(tmp_path / "demo"), glue_dir=None, model=str(tiny_models["bert"]), quiet=True,
                       sparse_epochs=1, time_batches=(1, 4))
    dense, sparse = rows["dense"], rows["90% sparse"]
    assert dense[1]["sparsity"]["targeted"] == 0.0
    assert sparse[1]["sparsity"]["targeted"] == pytest.approx(0.9, abs=2e-3)  # counted in the saved weights
    assert sparse[0]["method_summary"]["pruning"] == "gradual"
    assert [s["batch"] for s in speed] == [1, 4]
    assert all(s["pytorch_ms"] > 0 and s["accelerate_ms"] > 0 for s in speed)
    assert all(s["max_logit_diff"] < 1e-3 for s in speed)  # the engine computes the same model
    printed = capsys.readouterr().out
    assert side_by_side(rows) in printed and speed_table(speed) in printed
    assert "accuracy kept" in printed
