"""Two CPU processes (gloo) under torchrun: the masks equal those of one process, on every rank."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from bertprune.cli import run


def _torchrun(args, cwd, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_two_processes_give_the_masks_of_one(run_args, tmp_path):
    extra = ("--method", "gmp", "--sparsity", "0.8", "prune.schedule.every=1")
    assert run(run_args("one", "bert", "sst2", *extra)) == 0
    _torchrun(["-m", "bertprune", *run_args("two", "bert", "sst2", *extra)], cwd=tmp_path)

    one, two = tmp_path / "one" / "final", tmp_path / "two" / "final"
    import json

    assert json.loads((tmp_path / "two" / "results.json").read_text())["processes"] == 2
    m1, m2 = load_file(str(one / "mask.safetensors")), load_file(str(two / "mask.safetensors"))
    assert m1.keys() == m2.keys() and all(torch.equal(m1[k], m2[k]) for k in m1)
    w1, w2 = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    for k in w1:  # same global batches, gradients averaged over processes: same training up to rounding
        torch.testing.assert_close(w1[k], w2[k], rtol=0, atol=1e-5)


@pytest.mark.slow
def test_broadcast_makes_every_rank_hold_rank0_masks(tmp_path):
    script = tmp_path / "bcast.py"
    script.write_text(textwrap.dedent("""
        import torch, torch.distributed as dist
        from bertprune.masks import Masks
        dist.init_process_group("gloo")
        rank = dist.get_rank()
        g = torch.Generator().manual_seed(rank)  # different masks on each rank
        masks = Masks({"a": torch.rand(7, 5, generator=g) > 0.5, "b": torch.rand(3, generator=g) > 0.5})
        masks.broadcast_()
        fp = masks.fingerprint().reshape(1)
        all_fp = [torch.zeros_like(fp) for _ in range(2)]
        dist.all_gather(all_fp, fp)
        ref = torch.Generator().manual_seed(0)
        expected = Masks({"a": torch.rand(7, 5, generator=ref) > 0.5, "b": torch.rand(3, generator=ref) > 0.5})
        assert masks.equal(expected), rank
        assert all_fp[0] == all_fp[1]
        open(f"ok-{rank}", "w").close()  # a file per rank: printed lines of two processes interleave
        dist.destroy_process_group()
    """))
    _torchrun([str(script)], cwd=tmp_path)
    assert (tmp_path / "ok-0").exists() and (tmp_path / "ok-1").exists()
