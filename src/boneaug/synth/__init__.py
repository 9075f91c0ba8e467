"""boneaug.synth: paint generated lesions onto normal radiographs, and transfer across bones.

Public face: `synthesize` (and its `SynthReport`), `translate` (generator on a patch
stack), `copy_paste_translator` (real lesions pasted with the same blending), and the
blending pieces `paste_change`, `feather_mask`, `seam_ratio`.
"""

from boneaug.synth.blend import feather_mask, paste_change, seam_ratio
from boneaug.synth.copypaste import RealLesionPaste, copy_paste_translator
from boneaug.synth.synthesize import SynthReport, synthesize, translate

__all__ = ["RealLesionPaste", "SynthReport", "copy_paste_translator", "feather_mask",
           "paste_change", "seam_ratio", "synthesize", "translate"]
