"""The files through which an experiment's processes wait for each other
(`boneaug.experiment.grid.Grid`): a peer that fails or goes silent stops the others
instead of leaving them waiting forever. The whole two-process run is in
tests/test_experiment_grid.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from boneaug.errors import BoneaugError
from boneaug.experiment.grid import Grid
from boneaug.files import write_json_atomic


def _pair(folder: Path, launch: str = "L1") -> tuple[Grid, Grid]:
    grids = Grid(0, 2, 0, folder, launch), Grid(1, 2, 1, folder, launch)
    for g in grids:
        g.POLL, g.BEAT = 0.01, 0.05
    return grids


def test_ranks_meet_at_a_barrier_and_ignore_an_earlier_launchs_markers(tmp_path: Path
                                                                       ) -> None:
    zero, one = _pair(tmp_path)
    # an earlier launch failed and left its markers: not this launch's
    Grid(1, 2, 1, tmp_path, "L0").fail(RuntimeError("old"))
    write_json_atomic(tmp_path / "data.rank1.json", {"launch": "L0"})
    done: list[str] = []
    t = threading.Thread(target=lambda: (zero.barrier("data"), done.append("zero")))
    t.start()
    time.sleep(0.2)
    assert not done  # rank 0 waits for rank 1 of *this* launch
    one.barrier("data")
    t.join(5)
    assert done == ["zero"]
    for g in (zero, one):  # past their first barrier both beat; stop the threads
        assert (tmp_path / f"alive.rank{g.rank}.json").exists()
        g._stop_heartbeat()


def test_a_failed_peer_stops_the_waiting_rank_with_its_error(tmp_path: Path) -> None:
    zero, one = _pair(tmp_path)
    with pytest.raises(ValueError), one.alone():
        raise ValueError("femur: no lesion patches\nmore detail")
    start = time.time()
    with pytest.raises(BoneaugError, match=r"rank 1 of 2 failed \(ValueError: femur: no "
                                           r"lesion patches\), so rank 0 stops before "
                                           r"'generators'"):
        zero.barrier("generators")
    assert time.time() - start < 5


def test_a_silent_peer_is_taken_for_dead_and_a_live_one_keeps_beating(tmp_path: Path
                                                                      ) -> None:
    zero, one = _pair(tmp_path)
    zero.STALE = 0.5
    with one.alone():  # rank 1 alive: its heartbeat stays fresh while rank 0 waits
        assert not (tmp_path / "alive.rank1.json").exists()  # not before the folder is open
        t = threading.Thread(target=one.barrier, args=("open",))
        t.start()
        zero.barrier("open")
        t.join(5)
        assert (tmp_path / "alive.rank1.json").exists()
        t = threading.Thread(target=zero.barrier, args=("classifiers",))
        t.start()
        time.sleep(1.0)
        assert t.is_alive()  # still waiting, not stopped: the peer beats
        one.barrier("classifiers")
        t.join(5)
        assert not t.is_alive()
    # killed: its last heartbeat grows old and nobody writes a failure
    write_json_atomic(one._marker("alive", 1), {"launch": "L1", "time": time.time() - 5})
    with pytest.raises(BoneaugError, match=r"rank 1 of 2 has been silent for \d+ s"):
        zero.barrier("report")
    zero._stop_heartbeat()
    assert not (tmp_path / "failed.rank1.json").exists()
