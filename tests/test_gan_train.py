"""CycleGAN training: config validation, outputs, exact resume, learning, the generator file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from boneaug.errors import BoneaugError
from boneaug.gan import (
    GENERATOR_FILE,
    LOSS_NAMES,
    GanConfig,
    ResnetGenerator,
    from_model_range,
    load_generator,
    to_model_range,
    train_cyclegan,
)
from boneaug.gan.config import lr_factor
from boneaug.gan.stream import PatchStream
from conftest import smooth_patches

P = 32


def _patches(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, P, P), dtype=np.float32)


def _tiny(**kw) -> GanConfig:
    base = dict(n_blocks=1, ngf=4, ndf=4, iterations=6, pool_size=2, batch_size=2,
                sample_every=1000, checkpoint_every=1000, log_every=2, seed=3)
    base.update(kw)
    return GanConfig(**base)


# --- config ---------------------------------------------------------------------------------

def test_config_defaults_are_the_reference() -> None:
    c = GanConfig()
    assert (c.n_blocks, c.ngf, c.ndf, c.batch_size, c.lr, c.beta1, c.beta2) == \
        (9, 64, 64, 1, 2e-4, 0.5, 0.999)
    assert (c.lambda_cycle, c.lambda_identity, c.pool_size) == (10.0, 0.5, 50)
    assert c.decay_start == c.iterations // 2 and c.compile is False


def test_config_from_yaml() -> None:
    c = GanConfig.from_dict(yaml.safe_load("n_blocks: 6\nlr: 1.0e-4\namp: true\n"
                                           "channels_last: false\niterations: 100\n"))
    assert (c.n_blocks, c.lr, c.amp, c.channels_last, c.decay_start) == \
        (6, 1e-4, "bf16", False, 50)
    assert GanConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize(("values", "fragment"), [
    ({"n_block": 9}, "gan: unknown setting 'n_block'"),
    ({"n_blocks": 0}, "gan.n_blocks: must be an integer >= 1 (got 0)"),
    ({"ngf": 8.5}, "gan.ngf: must be an integer >= 1 (got 8.5)"),
    ({"batch_size": True}, "gan.batch_size: must be an integer >= 1 (got True)"),
    ({"lr": "fast"}, "gan.lr: must be a number > 0 (got 'fast')"),
    ({"lr": 0}, "gan.lr: must be a number > 0 (got 0)"),
    ({"beta1": 1.0}, "gan.beta1: must be a number in [0, 1) (got 1.0)"),
    ({"lambda_cycle": -1}, "gan.lambda_cycle: must be a number >= 0 (got -1)"),
    ({"pool_size": -1}, "gan.pool_size: must be an integer >= 0 (got -1)"),
    ({"iterations": 10, "decay_start": 11}, "gan.decay_start: must be an integer in [0, 10]"),
    ({"device": "tpu"}, "gan.device: must be one of auto, cpu, cuda, cuda:N (got 'tpu')"),
    ({"amp": "fp16"}, "gan.amp: must be one of auto, bf16, off (or true / false) (got 'fp16')"),
    ({"channels_last": "yes"}, "gan.channels_last: must be one of auto, true, false"),
    ({"compile": "no"}, "gan.compile: must be one of true, false (got 'no')"),
    ({"threads": 0}, "gan.threads: must be an integer in [1, 256] (got 0)"),
])
def test_config_errors_are_one_line(values: dict, fragment: str) -> None:
    with pytest.raises(BoneaugError) as err:
        GanConfig.from_dict(values)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_train_checks_a_config_built_directly(tmp_path: Path) -> None:
    """A GanConfig made in code is checked where it is used: `train_cyclegan`."""
    with pytest.raises(BoneaugError, match=r"^gan.n_blocks: must be an integer >= 1"):
        train_cyclegan(_patches(3, 0), _patches(3, 1), _tiny(n_blocks=0), tmp_path / "run",
                       progress=False)
    assert not (tmp_path / "run").exists()


def test_config_from_non_mapping() -> None:
    with pytest.raises(BoneaugError, match="expected a mapping"):
        GanConfig.from_dict([1, 2])  # type: ignore[arg-type]


def test_lr_schedule_constant_then_linear_to_zero() -> None:
    c = GanConfig(iterations=10, decay_start=6)
    f = [lr_factor(i, c) for i in range(10)]
    assert f[:6] == [1.0] * 6
    assert all(a > b for a, b in zip(f[5:], f[6:], strict=False))
    assert f[-1] == pytest.approx(1 / 5) and f[6] == pytest.approx(4 / 5)


def test_patch_stream_covers_every_patch_each_epoch_and_shards() -> None:
    s = PatchStream(7, seed=1, domain=0)
    first, second = s.next(7), s.next(7)
    assert sorted(first) == list(range(7)) and sorted(second) == list(range(7))
    assert not np.array_equal(first, second)
    r0, r1 = PatchStream(7, 1, 0, 0, 2), PatchStream(7, 1, 0, 1, 2)
    a, b = r0.next(4), r1.next(4)
    assert set(a) | set(b) == set(range(7))  # padded by wrapping: one repeat
    again = PatchStream(7, 1, 0, 0, 2)
    again.position = 2
    assert np.array_equal(again.next(2), a[2:])


# --- input validation ---------------------------------------------------------------------

@pytest.mark.parametrize(("healthy", "fragment"), [
    (np.zeros((0, P, P), np.float32), "empty"),
    (np.zeros((3, P, P + 4), np.float32), "shape (N, P, P)"),
    (np.zeros((3, 20, 20), np.float32), "multiple of 4"),
    (np.full((3, P, P), 1.5, np.float32), "in [0, 1]"),
    (np.full((3, P, P), np.nan, np.float32), "finite"),
    ([[0.0]], "numpy array"),
])
def test_bad_patches_are_rejected(tmp_path: Path, healthy, fragment: str) -> None:
    with pytest.raises(BoneaugError, match=r"^healthy patches") as err:
        train_cyclegan(healthy, _patches(3, 1), _tiny(), tmp_path / "run", progress=False)
    assert fragment in str(err.value)
    assert not (tmp_path / "run").exists()


def test_patch_sizes_must_agree(tmp_path: Path) -> None:
    with pytest.raises(BoneaugError, match="patch sizes differ"):
        train_cyclegan(_patches(3, 0), np.zeros((3, 36, 36), np.float32), _tiny(),
                       tmp_path, progress=False)


def test_a_batch_larger_than_the_patches_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BoneaugError,
                       match=r"gan.batch_size: must be at most the 3 lesion patches \(got 5\)"):
        train_cyclegan(_patches(4, 0), _patches(3, 1), _tiny(batch_size=5), tmp_path / "run",
                       progress=False)
    assert not (tmp_path / "run").exists()


def test_a_resumed_run_removes_what_a_killed_write_left(tmp_path: Path) -> None:
    healthy, lesion = _patches(4, 0), _patches(4, 1)
    out = tmp_path / "run"
    train_cyclegan(healthy, lesion, _tiny(), out, progress=False, stop_after=1)
    left = [out / "checkpoints" / ".last.k2j4x9ab.pt", out / ".losses.a1b2c3d4.csv"]
    for path in left:  # as `kill -9` during a checkpoint write leaves them
        path.write_bytes(b"half a checkpoint")
    kept = out / "checkpoints" / "notes.v2.txt"
    kept.write_text("not a temporary file")
    train_cyclegan(healthy, lesion, _tiny(), out, resume=True, progress=False)
    assert not any(path.exists() for path in left) and kept.is_file()


def test_an_incomplete_checkpoint_is_one_line(tmp_path: Path) -> None:
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    last.parent.mkdir(parents=True)
    torch.save({"format": "boneaug-cyclegan-checkpoint", "iteration": 1}, last)
    with pytest.raises(BoneaugError, match="incomplete boneaug CycleGAN checkpoint \\(no "
                       "'config'\\)"):
        train_cyclegan(_patches(4, 0), _patches(4, 1), _tiny(), tmp_path / "run",
                       resume=True, progress=False)


@pytest.mark.parametrize("case", ["file", "their folder"])
def test_cli_gan_train_never_writes_among_someone_s_files(tmp_path: Path, case: str) -> None:
    from typer.testing import CliRunner

    from boneaug.cli import app

    out = tmp_path / "out"
    if case == "file":
        out.write_text("mine")
    else:
        out.mkdir()
        (out / "losses.csv").write_text("mine")
    result = CliRunner().invoke(app, ["gan", "train", "--patches", str(tmp_path / "p"),
                                      "--out", str(out)])
    assert isinstance(result.exception, BoneaugError), result.output
    assert ("not a folder" if case == "file" else "not empty") in str(result.exception)
    assert (out if case == "file" else out / "losses.csv").read_text() == "mine"


# --- a run, its files, exact resume ---------------------------------------------------------

def _state(result) -> dict[str, torch.Tensor]:
    return {f"{k}.{n}": t for k, m in result.networks.items()
            for n, t in m.state_dict().items()}


@pytest.mark.parametrize(("amp", "channels_last"), [("off", False), ("bf16", True)])
def test_stopped_and_resumed_run_is_bitwise_identical(tmp_path: Path, amp: str,
                                                      channels_last: bool) -> None:
    healthy, lesion = _patches(5, 0), _patches(3, 1)  # epochs wrap across the stop
    config = _tiny(amp=amp, channels_last=channels_last, checkpoint_every=2, sample_every=4)
    whole = train_cyclegan(healthy, lesion, config, tmp_path / "whole", progress=False)
    assert whole.completed and whole.iterations == 6

    part = train_cyclegan(healthy, lesion, config, tmp_path / "split", progress=False,
                          stop_after=3)
    assert not part.completed and part.iterations == 3 and part.generator_path is None
    assert not (tmp_path / "split" / GENERATOR_FILE).exists()
    rest = train_cyclegan(healthy, lesion, config, tmp_path / "split", resume=True,
                          progress=False)
    assert rest.completed and rest.iterations == 6

    a, b = _state(whole), _state(rest)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    _, info_a = load_generator(whole.generator_path)
    _, info_b = load_generator(rest.generator_path)
    assert info_a["sha256"] == info_b["sha256"]
    la = pd.read_csv(whole.losses_path)
    lb = pd.read_csv(rest.losses_path)
    assert list(la.columns) == ["iteration", *LOSS_NAMES, "lr", "seconds"]
    assert list(la["iteration"]) == list(range(1, 7))
    pd.testing.assert_frame_equal(la.drop(columns="seconds"), lb.drop(columns="seconds"))
    assert np.isfinite(la[list(LOSS_NAMES)].to_numpy()).all()

    ckpts = sorted(p.name for p in (tmp_path / "whole" / "checkpoints").iterdir())
    assert ckpts == ["iter_000002.pt", "iter_000004.pt", "iter_000006.pt", "last.pt"]
    sheet = Image.open(tmp_path / "whole" / "samples.png")
    k = 3  # min(4, 5 healthy, 3 lesion) sample columns, 6 rows, 2-pixel gaps
    assert sheet.size == (k * P + (k - 1) * 2, 6 * P + 5 * 2)
    assert (tmp_path / "whole" / "samples" / "iter_000004.png").is_file()
    assert (tmp_path / "whole" / "run.json").is_file()
    assert not list((tmp_path / "whole").rglob(".*"))  # no temporary files left


def test_resume_refuses_a_different_run(tmp_path: Path) -> None:
    healthy, lesion = _patches(4, 0), _patches(4, 1)
    out = tmp_path / "run"
    train_cyclegan(healthy, lesion, _tiny(), out, progress=False, stop_after=1)
    with pytest.raises(BoneaugError, match="already holds a run"):
        train_cyclegan(healthy, lesion, _tiny(), out, progress=False)
    with pytest.raises(BoneaugError, match="cannot resume with ngf=8"):
        train_cyclegan(healthy, lesion, _tiny(ngf=8), out, resume=True, progress=False)
    with pytest.raises(BoneaugError, match="patches differ"):
        train_cyclegan(healthy, _patches(4, 2), _tiny(), out, resume=True, progress=False)
    with pytest.raises(BoneaugError, match="nothing to resume"):
        train_cyclegan(healthy, lesion, _tiny(), tmp_path / "none", resume=True,
                       progress=False)


# --- the generator file ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def generator_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen")
    result = train_cyclegan(_patches(4, 0), _patches(4, 1), _tiny(iterations=2), out,
                            progress=False)
    return result.generator_path


def test_load_generator_round_trip(generator_file: Path) -> None:
    g, info = load_generator(generator_file)
    assert isinstance(g, ResnetGenerator) and not g.training
    assert info["patch_size"] == P and info["direction"] == "healthy_to_lesion"
    assert info["network"] == {"n_blocks": 1, "ngf": 4, "in_channels": 1, "out_channels": 1}
    assert len(info["sha256"]) == 64 and info["iteration"] == 2
    with torch.no_grad():
        y = g(to_model_range(torch.rand(1, 1, P, P)))
    assert y.shape == (1, 1, P, P)


def test_load_generator_errors(generator_file: Path, tmp_path: Path) -> None:
    def check(path: Path, fragment: str) -> None:
        with pytest.raises(BoneaugError) as err:
            load_generator(path)
        msg = str(err.value)
        assert fragment in msg and str(path) in msg and "\n" not in msg

    check(tmp_path / "missing.pt", "not found")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    check(junk, "not a readable torch checkpoint")
    blob = torch.load(generator_file, weights_only=True)
    other = tmp_path / "other.pt"
    torch.save({"format": "something else"}, other)
    check(other, "not a boneaug generator checkpoint")
    missing = tmp_path / "nokey.pt"
    torch.save({k: v for k, v in blob.items() if k != "patch_size"}, missing)
    check(missing, "lacks 'patch_size'")
    tampered = tmp_path / "tampered.pt"
    state = {k: v.clone() for k, v in blob["state_dict"].items()}
    state["model.1.conv.weight"] += 1.0
    torch.save({**blob, "state_dict": state}, tampered)
    check(tampered, "do not match their sha256")
    badnet = tmp_path / "badnet.pt"
    torch.save({**blob, "network": {"n_blocks": 0, "ngf": 4}}, badnet)
    check(badnet, "bad network settings")


# --- it learns ------------------------------------------------------------------------------

def test_tiny_cyclegan_learns_to_paint_a_disc(tmp_path: Path) -> None:
    """healthy = smooth noise; lesion = other smooth noise + a bright central disc.

    After 250 iterations G(healthy) should be healthy + disc: bright in the disc, unchanged
    around it, and the generator loss should have fallen.
    """
    yy, xx = np.mgrid[:P, :P]
    disc = ((yy - P / 2 + 0.5) ** 2 + (xx - P / 2 + 0.5) ** 2 <= 36).astype(np.float32)
    healthy, held_out = smooth_patches(64, 0, P), smooth_patches(16, 2, P)
    lesion = smooth_patches(64, 1, P) + 0.35 * disc
    config = GanConfig(n_blocks=2, ngf=8, ndf=8, iterations=250, decay_start=250, lr=2e-3,
                       batch_size=4, pool_size=10, sample_every=1000, checkpoint_every=1000,
                       seed=0)

    def translate(g: torch.nn.Module) -> np.ndarray:
        with torch.no_grad():
            x = to_model_range(torch.from_numpy(held_out)[:, None])
            return from_model_range(g(x))[:, 0].numpy()

    torch.manual_seed(config.seed)
    error_before = np.abs(translate(ResnetGenerator(2, 8)) - (held_out + 0.35 * disc)).mean()
    result = train_cyclegan(healthy, lesion, config, tmp_path, progress=False)
    out = translate(result.networks["healthy_to_lesion"])
    error_after = np.abs(out - (held_out + 0.35 * disc)).mean()
    copy_error = np.abs(held_out - (held_out + 0.35 * disc)).mean()  # doing nothing
    assert error_after < 0.4 * error_before
    assert error_after < 0.9 * copy_error
    gain = out - held_out
    inside, outside = gain[:, disc > 0].mean(), gain[:, disc == 0].mean()
    assert inside > 0.2 and abs(outside) < 0.05
    losses = pd.read_csv(result.losses_path)
    assert losses["g_total"].iloc[-50:].mean() < 0.7 * losses["g_total"].iloc[:50].mean()


def test_ctrl_c_checkpoints_then_resume_finishes(tmp_path: Path, monkeypatch) -> None:
    """The first Ctrl-C finishes the iteration, writes last.pt and stops; resume completes."""
    import signal

    import boneaug.gan.loop as loop_mod

    healthy, lesion = _patches(4, 0), _patches(4, 1)
    whole = train_cyclegan(healthy, lesion, _tiny(), tmp_path / "whole", progress=False)
    real_step, calls = loop_mod.train_step, []

    def interrupted_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            signal.raise_signal(signal.SIGINT)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop_mod, "train_step", interrupted_step)
    handler_before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match="stopped at iteration 2"):
        train_cyclegan(healthy, lesion, _tiny(), tmp_path / "cut", progress=False)
    monkeypatch.setattr(loop_mod, "train_step", real_step)
    ckpt = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["iteration"] == 2
    assert signal.getsignal(signal.SIGINT) is handler_before  # restored
    rest = train_cyclegan(healthy, lesion, _tiny(), tmp_path / "cut", resume=True,
                          progress=False)
    for name, t in _state(whole).items():
        assert torch.equal(t, _state(rest)[name]), name


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_requested_without_cuda(tmp_path: Path) -> None:
    with pytest.raises(BoneaugError, match="gan.device: names CUDA, but CUDA is not available"):
        train_cyclegan(_patches(3, 0), _patches(3, 1), _tiny(device="cuda"), tmp_path,
                       progress=False)


def test_progress_is_reported_at_each_checkpoint(tmp_path: Path) -> None:
    """Where no progress bar shows (an experiment's log), each checkpoint reports how far
    the run is and how fast it goes."""
    heard: list[tuple[int, int, float]] = []
    train_cyclegan(_patches(4, 0), _patches(4, 1), _tiny(checkpoint_every=2), tmp_path / "r",
                   progress=False, report=lambda *args: heard.append(args))
    assert [(done, total) for done, total, _ in heard] == [(2, 6), (4, 6)]
    assert all(rate > 0 for _, _, rate in heard)


def test_the_upsampling_choice_reaches_the_generator_file(tmp_path: Path) -> None:
    from boneaug.gan import load_generator

    assert "upsample" not in _tiny().to_dict()  # older runs' records and keys unchanged
    assert _tiny(upsample="resize").to_dict()["upsample"] == "resize"
    with pytest.raises(BoneaugError, match=r"gan.upsample: must be one of transpose, resize"):
        _tiny(upsample="bilinear").validate()
    result = train_cyclegan(_patches(4, 0), _patches(4, 1), _tiny(upsample="resize"),
                            tmp_path / "r", progress=False)
    generator, info = load_generator(result.generator_path)
    assert info["network"]["upsample"] == "resize"
    assert any(isinstance(m, torch.nn.Upsample) for m in generator.modules())


def test_the_judge_setting_is_recorded_only_when_it_differs_and_is_checked() -> None:
    assert "judge" not in _tiny().to_dict()  # older runs' records and keys unchanged
    assert _tiny(judge="contrast").to_dict()["judge"] == "contrast"
    with pytest.raises(BoneaugError, match=r"gan.judge: must be one of grey, contrast"):
        _tiny(judge="relative").validate()
