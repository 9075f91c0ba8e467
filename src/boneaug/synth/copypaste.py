"""Copy-paste: the honest non-generative baseline for synthetic positives.

Instead of translating the healthy patch at a site, paste a *real* lesion patch of the
train split there, with exactly the blending of the CycleGAN synthesis (same sites, same
mask around the lesion box, same feathering), so that the two strategies differ only in
where the lesion pixels come from. The lesion patch is shifted to the mean brightness of
the patch it replaces, so that a lesion cut from a bright metaphysis does not paste a
bright square onto a dark shaft; its contrast against its own surroundings is kept.

`copy_paste_translator` returns a (module, info) pair for `synthesize(translator=...)`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from boneaug.gan import to_model_range
from boneaug.patches import load_domains
from boneaug.patches.store import read_json_object

# The `method` of copy-paste provenance (and the name of its synthesis folders).
METHOD = "copypaste"


class RealLesionPaste(nn.Module):
    """Maps a batch of healthy patches `(B, 1, P, P)` in [-1, 1] to real lesion patches.

    Which lesion a patch gets is a hash of the patch's pixels and the seed: reproducible,
    independent of the batch size and of how torchrun shares the images out (a patch is
    the same whichever process paints it), and uniform over the real lesions.
    """

    def __init__(self, lesion_patches: np.ndarray, seed: int = 0) -> None:
        super().__init__()
        if lesion_patches.ndim != 3 or len(lesion_patches) == 0:
            raise ValueError("lesion_patches must be a non-empty (N, P, P) stack")
        lesions = to_model_range(torch.from_numpy(np.asarray(lesion_patches, np.float32)))
        self.register_buffer("lesions", lesions[:, None])
        self.seed = int(seed)

    def choose(self, healthy: torch.Tensor) -> list[int]:
        """The lesion index of each patch of the batch."""
        picked = []
        for patch in healthy.detach().float().cpu().numpy():
            digest = hashlib.sha256(np.ascontiguousarray(patch).tobytes()
                                    + self.seed.to_bytes(8, "little", signed=True)).digest()
            picked.append(int.from_bytes(digest[:8], "little") % len(self.lesions))
        return picked

    def forward(self, healthy: torch.Tensor) -> torch.Tensor:
        picked = self.lesions[self.choose(healthy)].to(healthy.dtype)
        shift = healthy.mean(dim=(1, 2, 3), keepdim=True) - picked.mean(dim=(1, 2, 3),
                                                                         keepdim=True)
        return (picked + shift).clamp(-1.0, 1.0)


def copy_paste_translator(bone_dir: str | Path, seed: int = 0
                          ) -> tuple[RealLesionPaste, dict[str, Any]]:
    """The copy-paste "generator" of one bone's patch folder (``<patches>/<bone>``).

    The info carries what `synthesize` needs: the patch size, the bone, its real lesion
    statistics (where to place lesions), the patch context, and a hash of the lesion
    patches in place of a generator checkpoint hash.
    """
    bone_dir = Path(bone_dir)
    _, lesion, info = load_domains(bone_dir)
    stats = read_json_object(bone_dir / "lesion_stats.json")
    digest = hashlib.sha256(np.ascontiguousarray(lesion.patches).tobytes()).hexdigest()
    translator = RealLesionPaste(lesion.patches, seed=seed)
    return translator, {
        "method": METHOD,
        "sha256": digest,
        "patch_size": int(lesion.size),
        "bone": str(info.get("bone") or stats.get("bone") or bone_dir.name),
        "lesion_stats": stats,
        "patches": info.get("settings", {}),
        "lesion_patches": str(lesion.path),
        "description": json.dumps({"lesion_patches": len(lesion)}),
    }
