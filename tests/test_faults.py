"""Fault injection: a real tiny training, killed with SIGKILL at each named point of the checkpoint
protocol and at random moments (seeded), then ``--resume``d: the final weights, masks, logged
metrics and evaluation equal an uninterrupted run's, and nothing half-written is left behind."""

import pytest

from bertprune import faultpoints
from bertprune.crashtest import NAMED_CRASHES, crash_and_resume, fingerprint, random_delays, run_cli

pytestmark = pytest.mark.slow
RANDOM_KILLS = 3


@pytest.fixture(scope="module")
def crash_run(tiny_models, tiny_glue, tmp_path_factory):
    """The command of a 12-step pruning run that evaluates and checkpoints every 3 steps (dropout on,
    so the RNG state matters), and the fingerprint and duration of its uninterrupted run."""
    root = tmp_path_factory.mktemp("crash")

    def args(name: str) -> list[str]:
        return ["finetune", "--task", "sst2", "--model", str(tiny_models["bert-dropout"]), "--glue-dir", str(tiny_glue),
                "-o", str(root / name), "--max-steps", "12", "--batch-size", "16", "--lr", "3e-3", "--quiet",
                "train.log_every=2", "train.eval_every=3", "train.save_every=3", "data.max_length=32",
                "--method", "gmp", "--sparsity", "0.8", "prune.schedule.every=1"]

    reference = run_cli(args("reference"))
    assert reference.returncode == 0, reference.stderr_tail
    return args, root, fingerprint(root / "reference"), reference.seconds


def test_every_named_point_has_a_crash_test():
    assert set(NAMED_CRASHES) == set(faultpoints.POINTS)


@pytest.mark.parametrize("point", faultpoints.POINTS)
def test_kill_at_a_named_point_then_resume(crash_run, point):
    args, root, reference, _ = crash_run
    outcome = crash_and_resume(args(point), root / point, reference, faults=NAMED_CRASHES[point])
    assert outcome.reached, f"{point} was not reached: {[a.returncode for a in outcome.attempts]}"
    assert outcome.tracebacks == 0, outcome.attempts[-1].stderr_tail
    assert outcome.same_as_uninterrupted, outcome.differences


def test_kill_at_random_moments_then_resume(crash_run):
    args, root, reference, seconds = crash_run
    for i, delay in enumerate(random_delays(RANDOM_KILLS, seconds, seed=19)):
        outcome = crash_and_resume(args(f"random-{i}"), root / f"random-{i}", reference, kill_after=(delay,))
        assert outcome.tracebacks == 0, outcome.attempts[-1].stderr_tail
        assert outcome.same_as_uninterrupted, (outcome.how, outcome.differences)
