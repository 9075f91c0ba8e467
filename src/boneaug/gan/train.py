"""Kept so that `boneaug.gan.train` imports keep working: the CycleGAN's training now lives
in `config` (GanConfig), `stream` (the data), `step` (one iteration, the losses),
`checkpoint` (resume, the generator file) and `loop` (`train_cyclegan`). New code imports
from `boneaug.gan` or from those modules."""

from boneaug.gan.checkpoint import GENERATOR_FILE, load_generator
from boneaug.gan.config import GanConfig, lr_factor
from boneaug.gan.loop import TrainResult, train_cyclegan
from boneaug.gan.step import LOSS_NAMES, Discriminators, Generators, make_adam, train_step

__all__ = ["GanConfig", "TrainResult", "train_cyclegan", "load_generator", "train_step",
           "Generators", "Discriminators", "LOSS_NAMES", "lr_factor", "make_adam",
           "GENERATOR_FILE"]
