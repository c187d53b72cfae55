"""``organseg train --time-budget`` (issue 20): the iterations fitted from a timed warm-up, the plan kept
on resume, a clean stop at the budget with a usable package, and replay when fine-tuning.

Time is a fake clock advanced by the test (10 s per iteration, 30 s per validation): no assertion
ever depends on how fast this machine is.
"""

from __future__ import annotations

import json

import pytest
import torch

from organseglib.errors import InputError
from organseglib.training import budget as budget_module
from organseglib.training import trainer as trainer_module
from organseglib.training.budget import PLAN_NAME, parse_duration, plan_iterations, read_plan, train_with_budget
from organseglib.training.dataset import phantom_cases
from organseglib.training.replay import ReplayConfig, card_sources, mix, repeats
from organseglib.training.trainer import TrainConfig

TINY = dict(batch_size=1, crop_shape=(32, 32, 32), width=0.0625, learning_rate=3e-3, seed=0, augment="never",
            checkpoint_every=10)


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400),
                                           ("1.5h", 5400), (" 45 s ", 45), ("2M", 120)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["30", "abc", "0s", "-5m", "5x", "m30", "", "30m junk"])
def test_bad_durations_are_refused_with_the_rule(text):
    with pytest.raises(InputError, match="--time-budget must be"):
        parse_duration(text)


def test_the_plan_hand_worked():
    # 900 s left; 2 × 8 s for the last validation and the package, 4 validations (0.1 × 900 / 8 = 11 > 4) ×
    # 8 s; 5 % kept back: (900 − 16 − 32) × 0.95 = 809.4 s at 1.5 + 8 / 16 = 2 s per iteration -> 404 more
    plan = plan_iterations(1000.0, 100.0, 5, 1.5, 8.0, checkpoint_every=16)
    assert (plan.iterations, plan.validate_every) == (409, 82)  # ceil(409 / 5)
    # validations capped at a tenth of the time left: 0.1 × 80 / 5 = 1.6 -> 1; (80 − 10 − 5) × 0.95 = 61.75 s at 1 s
    assert plan_iterations(100.0, 20.0, 5, 1.0, 5.0, checkpoint_every=10 ** 9).iterations == 5 + 61
    assert plan_iterations(100.0, 95.0, 5, 1.0, 5.0, checkpoint_every=10).iterations == 5  # nothing more fits


class FakeClock:
    """Seconds that pass only when the test says: per iteration (in the progress callback) and per
    validation (around the trainer's ``validate``)."""

    def __init__(self, per_iteration=10.0, per_validation=30.0):
        self.now, self.per_iteration, self.per_validation = 1000.0, per_iteration, per_validation
        self.records = []

    def __call__(self):
        return self.now

    def progress(self, fraction, message="", **fields):
        self.records.append((fraction, message, fields))
        self.now += self.per_iteration() if callable(self.per_iteration) else self.per_iteration

    progress.accepts_fields = True  # gets eta_s and validation (progress.report)


@pytest.fixture(scope="module")
def cases():
    return phantom_cases([0, 1], spacing_mm=6.0)


@pytest.fixture
def clocked(monkeypatch):
    """A fake clock that also advances by ``per_validation`` for each validation the trainer runs."""
    clock = FakeClock()
    real_validate = trainer_module.validate

    def slow_validate(*args, **kwargs):
        clock.now += clock.per_validation
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "validate", slow_validate)
    return clock


def _run(clock, cases, work, budget_s=1000.0, **kwargs):
    torch.set_num_threads(1)
    return train_with_budget(TrainConfig(**TINY), cases[:1], cases[1:], work, budget_s, clock=clock,
                             progress=clock.progress, **kwargs)


@pytest.mark.slow
def test_the_warm_up_fits_the_iterations_to_the_budget_and_the_progress_shows_the_eta(clocked, cases, tmp_path):
    result = _run(clocked, cases, tmp_path / "w")
    # warm-up: iterations 1..5 read the clock at 0, 10, 20, 30 s and, after the 30 s validation, 70 s:
    # 10 s per iteration (2..4), 70 − 30 − 10 = 30 s for a validation and checkpoint; 80 s spent.
    # 920 s left: 2 × 30 kept for the end, 3 validations (0.1 × 920 / 30), 5 %: 731.5 s at 10 + 30 / 10 s
    plan = read_plan(tmp_path / "w")
    assert (plan.seconds_per_iteration, plan.overhead_s) == (10.0, 30.0)
    assert (plan.iterations, plan.validate_every) == (5 + 56, 16)
    assert result.state.iteration == result.config.iterations == 61 and not result.stopped_at_deadline
    assert [v["iteration"] for v in result.state.history["val"]] == [5, 16, 32, 48, 61]
    etas = [fields["eta_s"] for _, _, fields in clocked.records]
    assert etas[5] == (61 - 6) * 10 + (55 // 16 + 2) * 30  # after the plan: iterations and validations left
    assert etas[-1] == 60.0 and etas == sorted(etas, reverse=True)
    fractions = [f for f, _, _ in clocked.records]
    assert fractions == sorted(fractions) and fractions[-1] < 1.0
    assert clocked.records[0][1].startswith("timing this machine: iteration 1/5")
    assert any("validation" in fields for _, _, fields in clocked.records)  # the Dice as it goes


@pytest.mark.slow
def test_the_budget_stops_training_cleanly_with_a_usable_package(clocked, cases, tmp_path, tiny_abdomen):
    """Iterations that turn four times slower after the plan (as augmentation may): the deadline stops
    the run, that iteration is validated and checkpointed, and the package it writes segments."""
    from organseglib.model_package import load_model_package
    from organseglib.segment import SegmentConfig, segment_ct
    from organseglib.training.export import save_trained_model

    calls = []
    clocked.per_iteration = lambda: 10.0 if len(calls.append(1) or calls) <= 20 else 40.0
    result = _run(clocked, cases, tmp_path / "w")
    stop = result.state.iteration
    # deadline 1000 − 2 × 30 = 940 s after the start; after iteration 20: 80 + 15 × 10 + 30 (at 16) = 260 s;
    # then 40 s each and 30 s for the validation at 32: checked after iteration 38, 290 + 17 × 40 = 970 s
    assert result.stopped_at_deadline and stop == 38 < result.config.iterations == 61
    assert result.state.history["val"][-1]["iteration"] == stop
    from organseglib.training.checkpoint import read_checkpoint

    assert read_checkpoint(tmp_path / "w" / "checkpoint.safetensors")[1]["state"]["iteration"] == stop
    package = save_trained_model(tmp_path / "model", result, data_description="phantoms", spacing_mm=6.0,
                                 n_train=1, n_val=1)
    model, card = load_model_package(package)
    assert card.provenance["iterations"] == stop
    labels = segment_ct(tiny_abdomen.ct, (model, card), SegmentConfig(autolabel_organs=()), device="cpu")
    assert labels.shape == tiny_abdomen.ct.shape


@pytest.mark.slow
def test_a_resumed_run_keeps_the_iteration_count_chosen_when_it_started(clocked, cases, tmp_path):
    """Stopped at 30 (as a kill would), resumed on a machine three times faster: the stored plan's 61
    iterations, not a new pick, and the same weights as the uninterrupted run."""
    _run(clocked, cases, tmp_path / "a", stop_after=30)
    assert read_plan(tmp_path / "a").iterations == 61
    faster = FakeClock(per_iteration=10.0 / 3)
    resumed = train_with_budget(TrainConfig(**TINY), cases[:1], cases[1:], tmp_path / "a", 1000.0, clock=faster,
                                progress=faster.progress)
    assert resumed.state.iteration == 61 and json.loads((tmp_path / "a" / PLAN_NAME).read_text())["iterations"] == 61
    clocked.now, clocked.records = 1000.0, []  # the same machine as the first run, uninterrupted
    whole = _run(clocked, cases, tmp_path / "b")
    assert whole.state.iteration == 61
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_the_warm_up_cut_by_the_budget_still_ends_with_a_run_to_export(clocked, cases, tmp_path):
    clocked.per_iteration = 100.0  # a 100 s budget at 100 s per iteration: after the first, 90 % is spent
    result = _run(clocked, cases, tmp_path / "w", budget_s=100.0)
    assert result.stopped_at_deadline and result.state.iteration == result.config.iterations == 2
    assert read_plan(tmp_path / "w") is None


# --- replay --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("users, replayed, fraction, expected", [
    (2, 12, 0.5, (6, 1)),     # 12 user entries, 12 replay entries: half
    (3, 12, 0.5, (4, 1)),
    (2, 12, 0.25, (2, 1)),    # 4 user entries of 16
    (2, 0, 0.5, (1, 0)),      # nothing to replay
    (2, 12, 1.0, (1, 0)),     # no replay asked
])
def test_replay_repeats_give_the_user_fraction_exactly(users, replayed, fraction, expected):
    a, b = repeats(users, replayed, fraction)
    assert (a, b) == expected
    if b:
        assert users * a / (users * a + replayed * b) == fraction


def test_mix_and_the_card_say_what_was_replayed(tmp_path):
    user, extra = ["u1", "u2"], [f"p{n}" for n in range(12)]
    mixed = mix(user, extra, 0.5)
    assert mixed.count("u1") == mixed.count("u2") == 6 and all(mixed.count(p) == 1 for p in extra)
    (tmp_path / "base_set").mkdir()
    sources, phrase = card_sources(ReplayConfig(phantoms=12, folders=(tmp_path / "base_set",)), 3)
    assert [s["name"] for s in sources] == ["replay phantoms", "replay: base_set"]
    assert all(s["licence"] for s in sources) and "50 % of the crops" in sources[0]["role"]
    assert phrase.startswith("replay of 12 patient-like phantoms and 3 real cases from")
    with pytest.raises(InputError, match="--user-fraction"):
        ReplayConfig(user_fraction=0)
    with pytest.raises(InputError, match="is not a folder"):
        ReplayConfig(folders=(tmp_path / "missing",))
    assert not ReplayConfig(user_fraction=1.0).active and not ReplayConfig(phantoms=0).active


@pytest.mark.slow
def test_fine_tuning_replays_phantoms_and_the_card_says_so(tmp_path, capsys):
    """``organseg train --init --time-budget``: the package's card names the replay and keeps the base
    model's data sources and weights licence; progress records carry eta_s."""
    from organseglib.cli import main
    from organseglib.model_package import ModelCard, read_card, save_model_package
    from organseglib.network import build_network
    from organseglib.phantom import make_phantom
    from organseglib.training_set import export_training_case

    torch.manual_seed(0)
    base = save_model_package(tmp_path / "base", build_network(width=0.0625), ModelCard(
        name="base", width=0.0625, data_sources=[{"name": "ircad1_07", "licence": "CC BY-NC-ND 4.0"}],
        weights_licence="non-commercial research use only"))
    phantom = make_phantom(seed=3, region="abdomen", size="tiny")
    export_training_case(phantom.ct, phantom.labels, tmp_path / "mine", source="a corrected case")
    rc = main(["train", "--data", str(tmp_path / "mine"), "--out", str(tmp_path / "tuned"), "--init", str(base),
               "--time-budget", "20s", "--replay-phantoms", "2", "--batch-size", "1", "--crop", "32", "32", "32",
               "--spacing", "6", "--cache", str(tmp_path / "cache"), "--device", "cpu", "--progress", "json"])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert rc == 0 and records[-1]["output"] == str(tmp_path / "tuned")
    assert any("eta_s" in r for r in records)
    card = read_card(tmp_path / "tuned")[0]
    assert [s["name"] for s in card.data_sources] == ["ircad1_07", "replay phantoms"]
    assert card.weights_licence == "non-commercial research use only"
    assert "replay of 2 patient-like phantoms" in card.training_data
    assert "held-out phantoms" in card.training_data  # one case of mine: validated on phantoms


def test_time_budget_and_iterations_together_are_refused(tmp_path, capsys):
    from organseglib.cli import main

    assert main(["train", "--data", "phantoms:1", "--out", str(tmp_path / "m"), "--time-budget", "10m",
                 "--iterations", "5", "--progress", "none"]) == 2
    assert "not both" in capsys.readouterr().err and not (tmp_path / "m").exists()
