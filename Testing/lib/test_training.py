"""The training loop, checkpoints (atomic, exact resume after SIGKILL) and the train command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import json

import numpy as np
import pytest
import torch

from organseglib.errors import InputError
from organseglib.network import build_network
from organseglib.training import checkpoint as ck
from organseglib.training.dataset import phantom_cases
from organseglib.training.trainer import TrainConfig, loss_has_plateaued, split_cases, train

TINY = dict(batch_size=2, crop_shape=(16, 32, 32), width=0.0625, learning_rate=3e-3, seed=0)


@pytest.fixture(scope="module")
def cases6():
    return phantom_cases([0, 1, 2], spacing_mm=6.0)


def test_a_few_steps_lower_the_loss_on_a_phantom(tmp_path, cases6):
    torch.set_num_threads(1)
    cfg = TrainConfig(iterations=16, augment="never", validate_every=16, checkpoint_every=16, **TINY)
    before = _val_loss(cfg, cases6[2:], tmp_path / "before")
    result = train(cfg, cases6[:2], cases6[2:], tmp_path / "run", resume=False)
    after = result.state.history["val"][-1]["loss"]
    assert after < before - 0.01
    assert result.state.iteration == 16 and len(result.state.history["train"]) == 16
    assert (tmp_path / "run" / "learning_curve.png").stat().st_size > 1000


def _val_loss(cfg, val, work):
    from organseglib.training.validation import validate

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = build_network(width=cfg.width)
    return validate(model, val, cfg.loss, cfg.crop_shape, torch.device("cpu"))["loss"]


def test_plateau_detection_hand_worked():
    falling = [1.0] * 10 + [0.8] * 10 + [0.6] * 10 + [0.5] * 10
    assert not loss_has_plateaued(falling, 10, 2, 0.01)
    flat = [1.0] * 10 + [0.5] * 10 + [0.5] * 10 + [0.499] * 10
    assert loss_has_plateaued(flat, 10, 2, 0.01)
    assert not loss_has_plateaued(flat[:25], 10, 2, 0.01)  # too few complete windows


def test_staged_augmentation_switches_on_at_the_plateau(tmp_path, cases6):
    calls = []

    def spy(cases, n, crop, rng, device, **kw):
        from organseglib.training.batches import plain_batch

        calls.append(1)
        return plain_batch(cases, n, crop, rng, device, **kw)

    cfg = TrainConfig(iterations=12, augment="plateau", plateau_window=2, plateau_patience=1,
                      plateau_min_improvement=0.9, validate_every=100, checkpoint_every=100, **TINY)
    result = train(cfg, cases6[:2], [], tmp_path / "w", augmenter=spy, resume=False)
    # min_improvement 0.9: the second window can never be 90 % lower, so it switches at iteration 4
    assert result.state.augment_start == 4 and len(calls) == 8


def test_config_validation():
    with pytest.raises(InputError, match="multiples of 8"):
        TrainConfig(crop_shape=(10, 16, 16))
    with pytest.raises(InputError, match="augment"):
        TrainConfig(augment="sometimes")
    with pytest.raises(InputError, match="loss"):
        TrainConfig(loss="mse")
    assert TrainConfig(finetune=True, learning_rate=1e-3).effective_lr == pytest.approx(1e-4)  # Roth et al.
    assert TrainConfig().batch_size == 4 and TrainConfig().crop_shape == (160, 120, 120)


def test_split_cases_is_seeded_and_keeps_a_training_case():
    items = list(range(10))
    tr, val = split_cases(items, 0.2, seed=1)
    assert len(val) == 2 and sorted(tr + val) == items and split_cases(items, 0.2, seed=1) == (tr, val)
    assert split_cases([1], 0.5) == ([1], [])


def _model_and_opt(seed=0):
    torch.manual_seed(seed)
    model = build_network(width=0.0625)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(2, 1, 16, 16, 16)).mean().backward()
    opt.step()
    return model, opt


def test_checkpoint_round_trip_restores_everything(tmp_path):
    model, opt = _model_and_opt()
    rng = np.random.default_rng(5)
    rng.random(3)
    state = ck.TrainingState(iteration=7, augmenting=True, augment_start=5, rng_states=[rng.bit_generator.state],
                             history={"train": [0.5, 0.4], "val": [{"iteration": 7, "loss": 0.3, "dice": {}}]})
    path = ck.save_checkpoint(tmp_path / "c.safetensors", model, opt, state, {"loss": "iou"})
    model2, opt2 = _model_and_opt(seed=1)
    got, cfg = ck.load_checkpoint(path, model2, opt2)
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for k in s1["state"]:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(s1["state"][k][name], s2["state"][k][name])
    assert (got.iteration, got.augmenting, got.augment_start, cfg) == (7, True, 5, {"loss": "iou"})
    rng2 = np.random.default_rng(0)
    rng2.bit_generator.state = got.rng_states[0]
    assert rng2.random() == rng.random()


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    model, opt = _model_and_opt()
    path = ck.save_checkpoint(tmp_path / "c.safetensors", model, opt, ck.TrainingState(iteration=3), {})
    original = path.read_bytes()

    def crash(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise KeyboardInterrupt  # as if killed mid-write

    monkeypatch.setattr(ck, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint(path, model, opt, ck.TrainingState(iteration=4), {})
    assert path.read_bytes() == original and sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]
    with pytest.raises(InputError, match="not a readable training checkpoint"):
        (tmp_path / "bad.safetensors").write_bytes(b"junk")
        ck.read_checkpoint(tmp_path / "bad.safetensors")


def test_resume_refuses_a_checkpoint_from_other_settings(tmp_path, cases6):
    cfg = TrainConfig(iterations=2, augment="never", validate_every=10, checkpoint_every=1, **TINY)
    train(cfg, cases6[:1], [], tmp_path / "w", resume=False)
    other = TrainConfig(iterations=2, augment="never", validate_every=10, checkpoint_every=1,
                        **{**TINY, "learning_rate": 0.1})
    with pytest.raises(InputError, match="learning_rate"):
        train(other, cases6[:1], [], tmp_path / "w")


def test_resume_refuses_a_checkpoint_trained_on_other_data_or_from_another_model(tmp_path, cases6):
    # a finished run's checkpoint must not be "resumed" (zero iterations) onto new data or a new
    # starting model, which would save the old weights under the new run's description
    cfg = TrainConfig(iterations=2, augment="never", validate_every=10, checkpoint_every=1, **TINY)
    train(cfg, cases6[:1], [], tmp_path / "w", resume=False)
    with pytest.raises(InputError, match="training data or initial model"):
        train(cfg, cases6[1:2], [], tmp_path / "w")
    start = build_network(width=TINY["width"])
    with pytest.raises(InputError, match="training data or initial model"):
        train(cfg, cases6[:1], [], tmp_path / "w", init_model=start)
    again = train(cfg, cases6[:1], [], tmp_path / "w")  # the same data resumes (already complete)
    assert again.state.iteration == 2


def test_the_training_time_is_summed_over_resumes_and_reaches_the_card(tmp_path, cases6, monkeypatch):
    """The card's training time counts every run of a resumed training, each once (issue 22: the card
    said "this session N min", the last session's share): a clock that ticks 10 s per reading."""
    import itertools

    import organseglib.training.trainer as trainer_mod
    from organseglib.training.export import card_fields

    ticks = itertools.count(0.0, 10.0)
    monkeypatch.setattr(trainer_mod, "_clock", lambda: next(ticks))
    cfg = TrainConfig(iterations=4, augment="never", validate_every=10, checkpoint_every=2, **TINY)
    first = train(cfg, cases6[:1], [], tmp_path / "w", resume=False, stop_after=2)
    assert first.state.extra == {"train_seconds_from_iteration": 0, "train_seconds": 10.0}
    second = train(cfg, cases6[:1], [], tmp_path / "w")
    assert second.state.iteration == 4
    assert second.state.extra == {"train_seconds_from_iteration": 0, "train_seconds": 20.0}
    provenance = card_fields(second, "phantoms", 6.0, 1, 0)["provenance"]
    assert provenance["train_minutes"] == round(20.0 / 60, 1) and provenance["train_minutes_from_iteration"] == 0
    _, meta = ck.read_checkpoint(tmp_path / "w" / "checkpoint.safetensors")
    assert meta["state"]["extra"]["train_seconds"] == 20.0


def _train_cmd(out: Path, iterations: int) -> list[str]:
    return [sys.executable, "-m", "organseglib", "train", "--data", "phantoms:2", "--spacing", "6",
            "--crop", "16", "32", "32", "--width", "0.0625", "--batch-size", "2", "--lr", "0.003",
            "--iterations", str(iterations), "--checkpoint-every", "3", "--validate-every", "1000",
            "--val-fraction", "0", "--augment", "at:6", "--threads", "1", "--progress", "none",
            "--out", str(out)]


def _final_tensors(out: Path):
    tensors, meta = ck.read_checkpoint(out.parent / f"{out.name}.training" / "checkpoint.safetensors")
    return tensors, meta["state"]


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path):
    """Kill -9 after the first checkpoint, run the same command again: nothing is lost."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    iterations = 24
    killed = tmp_path / "killed"
    ckpt = tmp_path / "killed.training" / "checkpoint.safetensors"
    proc = subprocess.Popen(_train_cmd(killed, iterations), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    interrupted_at = ck.read_checkpoint(ckpt)[1]["state"]["iteration"]
    assert 3 <= interrupted_at < iterations
    done = subprocess.run(_train_cmd(killed, iterations), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    clean = tmp_path / "clean"
    ref = subprocess.run(_train_cmd(clean, iterations), env=env, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr[-2000:]
    (a, sa), (b, sb) = _final_tensors(killed), _final_tensors(clean)
    assert sa["iteration"] == sb["iteration"] == iterations
    assert sa["augment_start"] == sb["augment_start"] == 6
    assert sa["history"]["train"] == pytest.approx(sb["history"]["train"], rel=1e-5)
    assert a.keys() == b.keys()
    for key in a:  # weights, batch-norm buffers, Adam moments and step counts
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    assert int(a["optim.0.step"]) == iterations
    assert (tmp_path / "killed").exists() and (tmp_path / "clean").exists()  # model packages written


def _cli_args(out: Path, *extra: str) -> list[str]:
    return ["train", "--data", "phantoms:2", "--spacing", "6", "--crop", "16", "32", "32", "--width", "0.0625",
            "--batch-size", "2", "--iterations", "2", "--checkpoint-every", "1", "--validate-every", "100",
            "--val-fraction", "0.5", "--augment", "never", "--threads", "1", "--progress", "none",
            "--out", str(out), *extra]


def test_train_command_reports_validation_as_a_progress_field(tmp_path, capsys):
    """The Slicer Retrain panel reads validation Dice from these records, not from the log."""
    from organseglib import cli

    args = _cli_args(tmp_path / "m")
    args[args.index("--validate-every") + 1] = "1"
    args[args.index("--progress") + 1] = "json"
    assert cli.main(args) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    validations = [r["validation"] for r in records if "validation" in r and "status" not in r]
    assert [v["iteration"] for v in validations] == [1, 2]
    assert set(validations[-1]["dice"]) >= {"liver", "lungs", "bone"} and isinstance(validations[-1]["loss"], float)


def test_train_command_writes_a_package_and_fine_tunes_with_a_tenth_of_the_rate(tmp_path):
    from organseglib import cli
    from organseglib.model_package import load_model_package

    base = tmp_path / "base"
    assert cli.main(_cli_args(base, "--lr", "0.002")) == 0
    model, card = load_model_package(base)
    assert card.width == 0.0625 and card.provenance["iterations"] == 2 and card.spacing_mm == 6.0
    from organseglib.training.dataset import TRAINING_ORIENTATION
    assert card.orientation == TRAINING_ORIENTATION == "LPS"
    assert (tmp_path / "base.training" / "learning_curve.png").exists()
    assert cli.main(_cli_args(base)) == 2  # refuses to overwrite without --overwrite
    tuned = tmp_path / "tuned"
    assert cli.main(_cli_args(tuned, "--lr", "0.002", "--init", str(base))) == 0
    _, meta = ck.read_checkpoint(tmp_path / "tuned.training" / "checkpoint.safetensors")
    assert meta["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0002)  # Roth et al.: 10× lower
    assert meta["config"]["finetune"] is True
    assert load_model_package(tuned)[1].provenance["fine_tuned_from"] == "base"


def test_train_command_mirrors_crops_when_asked_and_the_card_says_so(tmp_path):
    from organseglib import cli
    from organseglib.model_package import load_model_package

    plain, mirrored = tmp_path / "plain", tmp_path / "mirrored"
    assert cli.main(_cli_args(plain)) == 0
    assert cli.main(_cli_args(mirrored, "--mirror", "0.5")) == 0
    assert load_model_package(plain)[1].provenance["mirror_left_right"] is None
    assert load_model_package(mirrored)[1].provenance["mirror_left_right"] == {
        "probability": 0.5, "unannotated_when_mirrored": ["liver"]}
    _, meta = ck.read_checkpoint(tmp_path / "mirrored.training" / "checkpoint.safetensors")
    assert meta["config"]["mirror"] == 0.5
    assert cli.main(_cli_args(tmp_path / "bad", "--mirror", "2")) == 2


DEMO = Path(__file__).resolve().parents[2] / "Resources" / "Models" / "demo"


@pytest.mark.slow
def test_shipped_demo_model_says_it_is_synthetic_and_segments_a_phantom():
    """The demo model (scripts/train_demo_model.py) is small, honest about its data, and works on an
    unseen phantom."""
    from organseglib.metrics import dice
    from organseglib.model_package import load_model_package
    from organseglib.training.validation import predict_case

    if not (DEMO / "card.json").exists():
        pytest.skip(f"demo model not trained yet: run scripts/train_demo_model.py to create {DEMO}")
    assert (DEMO / "model.safetensors").stat().st_size < 5 * 2**20
    model, card = load_model_package(DEMO)
    assert "synthetic" in card.training_data.lower() or "phantom" in card.training_data.lower()
    assert "not for clinical use" in card.intended_use.lower() and "not a clinical model" in card.description.lower()
    case = phantom_cases([4242], region="abdomen")[0]
    torch.set_num_threads(1)
    pred, _ = predict_case(model, case, card.tile_shape, torch.device("cpu"), card.window_hu)
    assert dice(pred == 1, case.labels == 1) > 0.7  # liver
    assert dice(pred == 5, case.labels == 5) > 0.5  # bone


class _ConstantClass(torch.nn.Module):
    """A stand-in network that predicts one class everywhere (logit 10 for it, 0 for the others)."""

    def __init__(self, cls: int, num_classes: int = 6) -> None:
        super().__init__()
        self.cls, self.num_classes = cls, num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros((x.shape[0], self.num_classes) + tuple(x.shape[2:]), dtype=x.dtype)
        out[:, self.cls] = 10.0
        return out


def test_validation_dice_per_organ_is_hand_worked_for_an_all_liver_prediction():
    """Predicting liver everywhere: liver Dice = 2|L| / (|L| + N), every other organ 0, and the
    validation loss is the mean over tiles of the loss of that prediction."""
    from organseglib.losses import segmentation_loss
    from organseglib.training.dataset import TrainingCase
    from organseglib.training.validation import validate

    labels = np.zeros((8, 16, 16), dtype=np.uint8)
    labels[2:6, 4:12, 4:12] = 1  # 256 liver voxels
    labels[0, 0, :4] = 2  # 4 bladder voxels; no lungs, kidneys or bone
    case = TrainingCase("hand", np.zeros(labels.shape, np.float32), labels, 3.0)
    v = validate(_ConstantClass(1), [case], "iou", (8, 16, 16), torch.device("cpu"))
    n = labels.size
    assert v["dice"] == {"liver": pytest.approx(2 * 256 / (256 + n)), "bladder": 0.0}
    logits = _ConstantClass(1)(torch.zeros(1, 1, 8, 16, 16))
    expected = float(segmentation_loss("iou", logits, torch.from_numpy(labels[None].astype(np.int64))))
    assert v["loss"] == pytest.approx(expected, rel=1e-6)


def test_bfloat16_autocast_step_on_cpu_keeps_float32_weights_and_loss():
    """The mixed-precision path (used on CUDA) run on the CPU: bf16 activations, float32 loss and
    gradients, and a loss within a few per cent of the float32 step from the same weights."""
    from organseglib.losses import segmentation_loss

    from organseglib.training.batches import plain_batch

    torch.set_num_threads(1)
    case = phantom_cases([0], spacing_mm=6.0)[0]
    x, y = plain_batch([case], 2, (16, 32, 32), np.random.default_rng(0), torch.device("cpu"))
    losses = {}
    for amp in (False, True):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = build_network(width=0.0625).train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            logits = net(x)
        assert logits.dtype == (torch.bfloat16 if amp else torch.float32)
        loss = segmentation_loss("iou", logits, y)
        loss.backward()
        assert loss.dtype == torch.float32
        grads = [p.grad for p in net.parameters()]
        assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
        losses[amp] = float(loss.detach())
    assert losses[True] == pytest.approx(losses[False], rel=0.05)
