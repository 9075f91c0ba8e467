"""DistributedDataParallel: 2 CPU processes on gloo end with the same weights."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.multiprocessing as mp

from boneaug.gan import GENERATOR_FILE, GanConfig, load_generator, train_cyclegan
from conftest import free_port


def _worker(rank: int, world: int, port: int, out: str) -> None:
    # What torchrun would set; train_cyclegan reads it and joins the group itself.
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    healthy = rng.random((6, 32, 32), dtype=np.float32)
    lesion = rng.random((5, 32, 32), dtype=np.float32)
    config = GanConfig(n_blocks=1, ngf=4, ndf=4, iterations=3, batch_size=1, pool_size=2,
                       sample_every=100, checkpoint_every=2, log_every=1, seed=5, device="cpu")
    result = train_cyclegan(healthy, lesion, config, Path(out) / "run", progress=False)
    state = {f"{k}.{n}": t for k, m in result.networks.items()
             for n, t in m.state_dict().items()}
    torch.save({"state": state, "losses": result.final_losses, "rank": result.rank,
                "world_size": result.world_size, "paths": [result.generator_path,
                                                           result.checkpoint_path]},
               Path(out) / f"rank{rank}.pt")


def test_two_process_ddp_ends_with_identical_weights(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=False)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=False)
    assert (r0["rank"], r1["rank"], r0["world_size"]) == (0, 1, 2)
    assert r0["state"].keys() == r1["state"].keys()
    for name, t in r0["state"].items():
        assert torch.equal(t, r1["state"][name]), name
    # each rank trained on its own shard, so their local losses differ
    assert r0["losses"]["g_total"] != r1["losses"]["g_total"]
    # only rank 0 wrote files
    assert r1["paths"] == [None, None]
    generator, info = load_generator(tmp_path / "run" / GENERATOR_FILE)
    assert info["iteration"] == 3
    for name, t in generator.state_dict().items():
        assert torch.equal(t, r0["state"][f"healthy_to_lesion.{name}"]), name
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and len(ckpt["ranks"]) == 2
    # the checkpoint keeps each rank's own history pool
    assert not torch.equal(ckpt["ranks"][0]["pool_lesion"]["images"][0],
                           ckpt["ranks"][1]["pool_lesion"]["images"][0])
