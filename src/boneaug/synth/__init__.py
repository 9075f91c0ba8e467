"""boneaug.synth: paint generated lesions onto normal radiographs, and transfer across bones.

Public face: `synthesize` (and its `SynthReport`), `translate` (generator on a patch
stack), and the blending pieces `paste_change`, `feather_mask`, `seam_ratio`.
"""

from boneaug.synth.blend import feather_mask, paste_change, seam_ratio
from boneaug.synth.synthesize import SynthReport, synthesize, translate

__all__ = ["SynthReport", "feather_mask", "paste_change", "seam_ratio", "synthesize",
           "translate"]
