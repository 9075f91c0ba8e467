"""boneaug.gan: the per-bone CycleGAN healthy bone patch <-> patch with a lesion.

Public face:
- `GanConfig` (+ `GanConfig.from_dict` for YAML), `train_cyclegan(healthy, lesion, config,
  out_dir, resume=False, progress=True, stop_after=None) -> TrainResult`;
- `load_generator(path, device="cpu") -> (ResnetGenerator, info)` for synthesis;
- the networks `ResnetGenerator`, `PatchGANDiscriminator` and the patch-range helpers
  `to_model_range` ([0, 1] -> [-1, 1]) and `from_model_range`.
"""

from boneaug.gan.networks import (
    PatchGANDiscriminator,
    ResnetGenerator,
    count_parameters,
    from_model_range,
    to_model_range,
)
from boneaug.gan.pool import ImagePool
from boneaug.gan.train import (
    GENERATOR_FILE,
    LOSS_NAMES,
    GanConfig,
    TrainResult,
    bf16_is_fast,
    load_generator,
    train_cyclegan,
)

__all__ = ["GanConfig", "TrainResult", "train_cyclegan", "load_generator", "GENERATOR_FILE",
           "bf16_is_fast",
           "LOSS_NAMES", "ResnetGenerator", "PatchGANDiscriminator", "ImagePool",
           "count_parameters", "to_model_range", "from_model_range"]
