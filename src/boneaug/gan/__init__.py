"""boneaug.gan: the per-bone CycleGAN healthy bone patch <-> patch with a lesion.

Public face:
- `GanConfig` (+ `GanConfig.from_dict` for YAML), `train_bone_generator(patch_dir, config,
  out_dir)`: the one entry of `gan train` and the experiment (a bone's patch folder, its
  lesion statistics and patch settings into the generator file), on `train_cyclegan(healthy,
  lesion, config, out_dir, resume=False, progress=True, stop_after=None) -> TrainResult`;
- `load_generator(path, device="cpu") -> (ResnetGenerator, info)` for synthesis;
- `bf16_is_fast(device)` (from `boneaug.distributed`, kept here for its callers);
- the modules of training: `config` (GanConfig), `stream` (patch stacks and their seeded
  streams), `step` (one iteration, the losses), `checkpoint` (checkpoints, the generator
  file), `loop` (`train_cyclegan`);
- the networks `ResnetGenerator`, `PatchGANDiscriminator` and the patch-range helpers
  `to_model_range` ([0, 1] -> [-1, 1]) and `from_model_range`.
"""

from boneaug.distributed import bf16_is_fast
from boneaug.gan.checkpoint import GENERATOR_FILE, load_generator
from boneaug.gan.config import GanConfig
from boneaug.gan.loop import TrainResult, train_bone_generator, train_cyclegan
from boneaug.gan.networks import (
    PatchGANDiscriminator,
    ResnetGenerator,
    count_parameters,
    from_model_range,
    to_model_range,
)
from boneaug.gan.pool import ImagePool
from boneaug.gan.step import LOSS_NAMES

__all__ = [
    "GanConfig", "TrainResult", "train_bone_generator", "train_cyclegan", "load_generator",
    "GENERATOR_FILE", "bf16_is_fast", "LOSS_NAMES", "ResnetGenerator", "PatchGANDiscriminator",
    "ImagePool", "count_parameters", "to_model_range", "from_model_range",
]
