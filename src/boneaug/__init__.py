"""boneaug: per-bone CycleGAN lesion synthesis for bone-lesion classifier augmentation."""

from boneaug.errors import BoneaugError

__version__ = "0.1.0"
__all__ = ["BoneaugError", "__version__"]
