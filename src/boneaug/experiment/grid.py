"""An experiment spread over several processes (torchrun ranks) that share a run folder.

Processes wait for each other through marker files in ``stages/grid/`` (no process group:
a phase may take hours, longer than a collective's time-out). A rank that cannot go on
says so, and the others stop instead of waiting for it forever:

- a rank that fails (any exception) leaves ``failed.rank<N>.json`` with its error line;
  a rank waiting for a phase sees it and raises `BoneaugError` naming the rank and error;
- a rank that is killed (out of memory, a lost node) cannot write anything, so every rank
  keeps a heartbeat file fresh from a background thread (``alive.rank<N>.json``, every
  `BEAT` seconds); a rank waiting on one whose heartbeat is older than `STALE` seconds
  stops with the same kind of error.

Every marker carries the launch's token (rank 0's, broadcast once at the start), so the
markers an earlier launch left behind are never taken for this launch's.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch

from boneaug.errors import BoneaugError
from boneaug.files import write_json_atomic

__all__ = ["Grid"]


@dataclass
class Grid:
    """This process's place in a grid of experiment processes (torchrun sets RANK and
    WORLD_SIZE; every process sees the run folder), and the files through which the
    processes wait for each other (module doc). Each stage runs as a lone process
    (`alone`)."""

    rank: int
    world: int
    local_rank: int
    folder: Path
    launch: str = ""
    POLL = 1.0     # seconds between looks at the other ranks' markers
    BEAT = 30.0    # seconds between heartbeats
    STALE = 600.0  # a peer silent this long is taken for dead
    _beating: threading.Event | None = field(default=None, repr=False)

    @classmethod
    def from_environment(cls, run_dir: Path) -> Grid | None:
        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
            return None
        world = int(os.environ["WORLD_SIZE"])
        if world < 2:
            return None
        rank = int(os.environ["RANK"])
        # one collective, at the start: rank 0's token names this launch in every marker,
        # so that the markers an earlier launch left behind are never taken for its own
        import torch.distributed as dist

        dist.init_process_group("gloo", rank=rank, world_size=world,
                                timeout=timedelta(minutes=10))
        token = [uuid.uuid4().hex if rank == 0 else ""]
        dist.broadcast_object_list(token, src=0)
        dist.destroy_process_group()
        return cls(rank, world, int(os.environ.get("LOCAL_RANK", rank)),
                   run_dir / "stages" / "grid", token[0])

    def share(self, items: list) -> list:
        """This rank's items: the i-th of them on rank i mod the world size."""
        return [item for i, item in enumerate(items) if i % self.world == self.rank]

    @contextlib.contextmanager
    def alone(self) -> Iterator[None]:
        """Hide the torchrun variables, so that each stage runs as one process (a
        CycleGAN on one rank is the single process's CycleGAN, not a DDP share of it);
        on a GPU machine, this rank's GPU. A failure is left for the other ranks to see;
        the heartbeat (started once the run folder is open, `barrier`) stops on leaving."""
        saved = {k: os.environ.pop(k) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")
                 if k in os.environ}
        if torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank % torch.cuda.device_count())
        try:
            yield
        except BaseException as exc:
            self.fail(exc)
            raise
        finally:
            self._stop_heartbeat()
            os.environ.update(saved)

    def barrier(self, phase: str, fresh: bool = False) -> None:
        """Mark this rank past `phase` and wait for every rank to be past it. "open" is
        the first: rank 0 has made the run folder (and with `fresh` emptied it) first,
        so the markers of this launch are written after that. The heartbeat starts after
        the first barrier: a file written into the run folder before rank 0 has opened it
        would make it refuse the folder as not a run's."""
        if phase == "open" and self.rank != 0:
            self._wait(phase, [0])
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self._marker(phase, self.rank), {"launch": self.launch})
        self._wait(phase, range(self.world))
        if self._beating is None:
            self._start_heartbeat()

    def fail(self, exc: BaseException) -> None:
        """Leave this rank's failure for the others (best effort: the folder may be gone)."""
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        with contextlib.suppress(OSError):
            self.folder.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self._marker("failed", self.rank),
                              {"launch": self.launch,
                               "error": f"{type(exc).__name__}: {line}".rstrip(": ")})

    # --- files -----------------------------------------------------------------------------

    def _marker(self, phase: str, rank: int) -> Path:
        return self.folder / f"{phase.replace(' ', '-')}.rank{rank}.json"

    def _read(self, path: Path) -> dict[str, Any] | None:
        """A marker of this launch, or None (absent, half-written, an earlier launch's)."""
        with contextlib.suppress(OSError, json.JSONDecodeError, AttributeError):
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("launch") == self.launch:
                return doc
        return None

    def _wait(self, phase: str, ranks: Any) -> None:
        ranks = list(ranks)
        while True:
            missing = [r for r in ranks if self._read(self._marker(phase, r)) is None]
            if not missing:
                return
            self._check_peers(phase, missing)
            time.sleep(self.POLL)

    def _check_peers(self, phase: str, ranks: list[int]) -> None:
        """Raise when a rank this one waits for has failed or gone silent."""
        for r in range(self.world):
            failed = self._read(self._marker("failed", r))
            if failed is not None and r != self.rank:
                raise BoneaugError(f"rank {r} of {self.world} failed ({failed.get('error')}), "
                                   f"so rank {self.rank} stops before {phase!r}; see rank "
                                   f"{r}'s output")
        now = time.time()
        for r in ranks:
            beat = self._read(self._marker("alive", r))
            if beat is not None and now - float(beat.get("time", now)) > self.STALE:
                raise BoneaugError(f"rank {r} of {self.world} has been silent for "
                                   f"{now - float(beat['time']):.0f} s (killed?), so rank "
                                   f"{self.rank} stops waiting for {phase!r}")

    # --- heartbeat -------------------------------------------------------------------------

    def _beat(self) -> None:
        with contextlib.suppress(OSError):
            self.folder.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self._marker("alive", self.rank),
                              {"launch": self.launch, "time": time.time()})

    def _start_heartbeat(self) -> None:
        stop = threading.Event()
        self._beating = stop
        self._beat()  # the first at once, then every BEAT seconds

        def loop() -> None:
            while not stop.wait(self.BEAT):
                self._beat()

        threading.Thread(target=loop, name=f"grid-heartbeat-{self.rank}", daemon=True).start()

    def _stop_heartbeat(self) -> None:
        if self._beating is not None:
            self._beating.set()
            self._beating = None
