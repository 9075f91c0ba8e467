"""The CycleGAN's settings (`GanConfig`) and the learning-rate schedule they define."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from boneaug.config import (
    build_config,
    check_amp,
    check_choice,
    check_device,
    check_number,
    normalise_amp,
    settings_dict,
)
from boneaug.distributed import DEFAULT_THREADS
from boneaug.errors import BoneaugError

__all__ = ["SECTION", "GanConfig", "lr_factor"]

SECTION = "gan"  # the settings' section in a config file, and their name in messages
UPSAMPLING = ("transpose", "resize")
JUDGING = ("grey", "contrast")
AREAS = ("patch", "lesion")
# setting -> its default (see `to_dict`)
ADDED_LATER = {"upsample": "transpose", "mask": False, "judge": "grey", "judge_area": "patch",
               "d_augment": False, "lambda_darken": 0.0}


@dataclass
class GanConfig:
    """CycleGAN training settings; the defaults are the reference's.

    `iterations` counts optimiser steps (one batch of each domain each). The learning rate
    is `lr` until `decay_start` (default: half of `iterations`, as the reference's n epochs
    constant + n epochs decay), then falls linearly towards 0. `amp`: "auto" (bf16 autocast
    on CUDA, and on CPUs with native bf16 convolutions), "bf16" or "off" (YAML true / false
    mean bf16 / off); `channels_last`: "auto" (off: it measured slower everywhere), True or
    False.

    Checked by `validate` (which `from_dict` and `train_cyclegan` call), as every stage's
    config is (`boneaug.config.check_number`).
    """

    n_blocks: int = 9
    ngf: int = 64
    ndf: int = 64
    batch_size: int = 1
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    iterations: int = 20000
    decay_start: int | None = None
    sample_every: int = 1000
    checkpoint_every: int = 1000
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    amp: str | bool = "auto"
    channels_last: str | bool = "auto"
    compile: bool = False
    threads: int = DEFAULT_THREADS  # intra-op threads (pinned: results depend on the count)
    # how the generator upsamples back to the patch size: "transpose" (the reference's
    # stride-2 transposed convolutions) or "resize" (nearest-neighbour x2, then a 3x3
    # convolution: no checkerboard pattern from uneven kernel overlap; Odena et al. 2016)
    upsample: str = "transpose"
    # a mask-conditioned generator (networks.MaskedGenerator, gan/masks.py): it is given
    # where the lesion is to be (an ellipse in a real lesion's box) and changes the patch
    # only there; False: the reference CycleGAN, which changes the whole patch
    mask: bool = False
    # what the discriminators judge: "grey" (the reference: the patch as it is) or
    # "contrast" (each patch less its own mean grey value), so that a fake lesion is judged
    # by how it stands out from its surroundings, not by the lesion domain's grey level
    # (docs/synthesis.md, "Brightening")
    judge: str = "grey"
    # how much of a patch the discriminators see: "patch" (the reference: all of it) or
    # "lesion" (mask-conditioned runs only: the lesion's mask and a rim of a few pixels
    # around it, the rest blanked). The generator of a mask-conditioned run cannot change a
    # patch outside its mask, and the real lesion patches are crops of a few lesions: a
    # discriminator that sees the whole patch can tell real from fake by the surroundings it
    # has learned by heart, and the generator has no answer (docs/synthesis.md)
    judge_area: str = "patch"
    # the discriminators see every patch, real and fake, through random flips, shifts,
    # contrast, brightness and cut-outs that the generator's gradient passes through
    # (gan/augment.py; DiffAugment, Zhao et al. 2020), so that they cannot learn the few
    # real lesions by heart; False: the reference
    d_augment: bool = False
    # the weight of a hinge that asks each fake lesion to be darker than its healthy source
    # at the lesion's site (its mask, or the patch's centre) by a small margin
    # (gan/losses.py `darken_loss`): for bones whose real lesions are lytic, as the
    # phantom's all are; training refuses it where the bone's real lesion patches are not
    # darker at their centre than its healthy ones (sclerotic, bone-forming lesions
    # brighten the film). 0: off (the reference)
    lambda_darken: float = 0.0

    def __post_init__(self) -> None:
        self.amp = normalise_amp(self.amp)
        if self.decay_start is None and isinstance(self.iterations, int):
            self.decay_start = self.iterations // 2

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = SECTION) -> GanConfig:
        """Build from a plain mapping (e.g. a YAML section); unknown keys and bad values
        raise `BoneaugError` with one line naming the key."""
        if not isinstance(values, dict):
            raise BoneaugError(f"{where}: expected a mapping of settings, got "
                               f"{type(values).__name__}")
        return build_config(cls, values, where)

    def to_dict(self) -> dict[str, Any]:
        """The settings; one added after runs existed is left out at its default, so that
        those runs' records and stage keys stay what they were."""
        return settings_dict(self, ADDED_LATER)

    def validate(self, where: str = SECTION) -> None:
        for key in ("n_blocks", "ngf", "ndf", "batch_size", "iterations", "sample_every",
                    "checkpoint_every", "log_every"):
            check_number(where, key, getattr(self, key), 1, integer=True)
        for key in ("pool_size", "seed"):
            check_number(where, key, getattr(self, key), 0, integer=True)
        check_number(where, "decay_start", self.decay_start, 0, self.iterations, integer=True)
        check_number(where, "lr", self.lr, 0, bounds="()")
        for key in ("beta1", "beta2"):
            check_number(where, key, getattr(self, key), 0, 1, bounds="[)")
        for key in ("lambda_cycle", "lambda_identity", "lambda_darken"):
            check_number(where, key, getattr(self, key), 0)
        check_device(where, "device", self.device)
        check_amp(where, self.amp)
        check_choice(where, "channels_last", self.channels_last, ("auto", True, False))
        check_choice(where, "compile", self.compile, (True, False))
        check_choice(where, "upsample", self.upsample, UPSAMPLING)
        check_choice(where, "mask", self.mask, (True, False))
        check_choice(where, "judge", self.judge, JUDGING)
        check_choice(where, "judge_area", self.judge_area, AREAS)
        check_choice(where, "d_augment", self.d_augment, (True, False))
        if self.judge_area == "lesion" and not self.mask:
            raise BoneaugError(f"{where}.judge_area: 'lesion' needs a lesion mask: set "
                               f"{where}.mask: true, or judge_area: patch")
        check_number(where, "threads", self.threads, 1, 256, integer=True)


def lr_factor(iteration: int, config: GanConfig) -> float:
    """Multiplier of `config.lr` at 0-based `iteration`: 1 before `decay_start`, then
    linear towards 0 (the reference's `1 - max(0, e - n) / (n_decay + 1)` per iteration)."""
    assert config.decay_start is not None
    span = config.iterations - config.decay_start + 1
    return 1.0 - max(0, iteration - config.decay_start + 1) / span
