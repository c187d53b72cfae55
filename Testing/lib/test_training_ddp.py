"""DDP on two CPU processes (gloo): gradients are averaged, so both ranks end with the same weights
although each rank trains on its own random crops."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from organseglib.training.checkpoint import read_checkpoint


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from safetensors.torch import save_file

    from organseglib.training.dataset import phantom_cases
    from organseglib.training.distributed import init_distributed, shutdown
    from organseglib.training.trainer import TrainConfig, train

    info = init_distributed("cpu")
    cases = phantom_cases([0, 1], spacing_mm=6.0)
    cfg = TrainConfig(iterations=3, batch_size=2, crop_shape=(16, 32, 32), width=0.0625, learning_rate=1e-2,
                      augment="never", validate_every=100, checkpoint_every=100, seed=0)
    try:
        result = train(cfg, cases, [], Path(out) / "work", info=info, resume=False)
        state = {k: v.detach().contiguous() for k, v in result.model.state_dict().items()}
        save_file(state, str(Path(out) / f"rank{rank}.safetensors"),
                  metadata={"losses": repr(result.state.history["train"])})
    finally:
        shutdown(info)


@pytest.mark.slow
def test_two_gloo_processes_end_with_identical_weights(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    a = load_file(str(tmp_path / "rank0.safetensors"))
    b = load_file(str(tmp_path / "rank1.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # the job's checkpoint (written by rank 0) holds both ranks' generator states and the same weights
    tensors, meta = read_checkpoint(tmp_path / "work" / "checkpoint.safetensors")
    assert len(meta["state"]["rng_states"]) == 2
    assert meta["state"]["rng_states"][0] != meta["state"]["rng_states"][1]  # different crops per rank
    assert torch.equal(tensors["model.interpolate.weight"], a["interpolate.weight"])
    # the logged loss is the mean over ranks, identical on both
    losses = [safe_open(str(tmp_path / f"rank{r}.safetensors"), "pt").metadata()["losses"] for r in (0, 1)]
    assert losses[0] == losses[1]


def _budget_worker(rank: int, world: int, port: int, out: str) -> None:
    """Rank 1's clock runs three times as fast as rank 0's: were each rank to plan and check the
    deadline on its own clock, they would disagree on the iteration count and the job would hang."""
    import os
    import time

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from safetensors.torch import save_file

    from organseglib.training.budget import train_with_budget
    from organseglib.training.dataset import phantom_cases
    from organseglib.training.distributed import init_distributed, shutdown
    from organseglib.training.trainer import TrainConfig

    info = init_distributed("cpu")
    cases = phantom_cases([0, 1], spacing_mm=6.0)
    cfg = TrainConfig(batch_size=2, crop_shape=(16, 32, 32), width=0.0625, learning_rate=1e-2, augment="never",
                      checkpoint_every=10, seed=0)
    t0 = time.monotonic()
    clock = (lambda: time.monotonic()) if rank == 0 else (lambda: t0 + 3 * (time.monotonic() - t0))
    try:
        result = train_with_budget(cfg, cases, [], Path(out) / "work", 30.0, clock=clock, info=info)
        state = {k: v.detach().contiguous() for k, v in result.model.state_dict().items()}
        save_file(state, str(Path(out) / f"rank{rank}.safetensors"),
                  metadata={"iteration": str(result.state.iteration)})
    finally:
        shutdown(info)


@pytest.mark.slow
def test_a_time_budget_is_one_decision_for_all_ranks(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    mp.spawn(_budget_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    iterations = []
    for rank in (0, 1):
        with safe_open(str(tmp_path / f"rank{rank}.safetensors"), framework="pt") as fh:
            iterations.append(int(fh.metadata()["iteration"]))
    assert iterations[0] == iterations[1] >= 1  # one count (planned, or where rank 0's deadline fell)
    a, b = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert all(torch.equal(a[key], b[key]) for key in a)
