"""Online lesion painting inside someone else's training loop.

`LesionPainter` paints, with probability `prob`, a synthetic lesion onto a lesion-free
radiograph as it is loaded: a bone's generator file (`boneaug gan train`) or the real
lesions of a bone's patch folder (copy-paste), placed, blended and masked exactly as
`boneaug synthesize` does it (`boneaug.synth`). `RandLesiond` wraps it as a MONAI
dictionary transform that also sets the sample's label, box and mask keys.

- **Reproducible per sample**: every draw (whether to paint, where, which real lesion)
  comes from a generator seeded by (`seed`, the epoch, the sample's key), never from a
  shared random state, so the painted samples do not depend on the number of DataLoader
  workers, their order or the batch size. Call `set_epoch(e)` each epoch to paint other
  lesions on the same films (as `DistributedSampler.set_epoch`).
- **Safe in workers**: the translator runs with one intra-op thread inside the call
  (`fixed_threads(1)`: the same pixels whatever the process; several workers do not
  oversubscribe the cores); the painter holds no open files.
- **Device**: ``device="cpu"`` (the default) in DataLoader workers; on a GPU, paint in
  the main process with ``device="cuda"`` (one patch per call, then the film goes back to
  the host as the rest of the pipeline expects).

A sample whose label is already 1, or on which no lesion site fits the bone, is returned
unchanged. Cost per sample: docs/performance.md ("Online lesion transform").
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from boneaug.errors import BoneaugError
from boneaug.gan.masks import site_mask
from boneaug.patches import estimate_bone_region, resize_square, where_bone_lies
from boneaug.patches.location import BoneLocator
from boneaug.synth.blend import blend_mask, painted_mask, paste_change
from boneaug.synth.sites import draw_site, usable_stats
from boneaug.synth.synthesize import (
    DEFAULT_CONTEXT,
    choose_translator,
    lesion_stats_of,
    translate,
)

__all__ = ["LesionPainter", "Painted", "RandLesiond"]


@dataclass
class Painted:
    """What `LesionPainter` returns: the film (float32 ``(H, W)`` in [0, 1]), whether a
    lesion was painted, its box ``[x0, y0, x1, y1]`` (None when not) and its mask (bool
    ``(H, W)``; all False when not)."""

    image: np.ndarray
    painted: bool
    box: list[float] | None
    mask: np.ndarray


class LesionPainter:
    """Paint a synthetic lesion on a lesion-free film with probability `prob` (see the
    module doc). Exactly one of `generator` (a generator file) and `copy_paste` (a bone's
    patch folder)."""

    def __init__(self, generator: str | Path | None = None, *,
                 copy_paste: str | Path | None = None, prob: float = 0.5, seed: int = 0,
                 device: str = "cpu", margin: float = 0.5, feather: float = 0.25,
                 locate: bool = True) -> None:
        if not 0 <= prob <= 1:
            raise BoneaugError(f"prob must be in [0, 1], got {prob!r}")
        self.device = torch.device(device)
        source, self.model, info = choose_translator(generator, copy_paste, None, seed,
                                                   self.device)
        stats_doc, where = lesion_stats_of(info, source, None)
        self.stats = usable_stats(stats_doc, where)
        # the bone whose lesions it paints (None where the file does not say)
        self.bone = str(info.get("bone") or stats_doc.get("bone") or "").lower() or None
        self.context = float((info.get("patches") or {}).get("context", DEFAULT_CONTEXT))
        self.patch_size = int(info["patch_size"])
        self.locator = BoneLocator.from_stats(self.stats) if locate else None
        self.prob, self.seed, self.margin, self.feather = prob, int(seed), margin, feather
        self.method = str(info.get("method", "cyclegan"))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Other draws for the same samples from now on (call once per epoch)."""
        self.epoch = int(epoch)

    def _rng(self, key: Any) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch,
                                      zlib.crc32(str(key).encode("utf-8"))])

    def __call__(self, image: np.ndarray, key: Any, bone_mask: np.ndarray | None = None
                 ) -> Painted:
        """Paint (or not) the film `image` ``(H, W)`` in [0, 1] of the sample `key` (any
        stable id: an image id, a dataset index). `bone_mask`: where the bone is, when
        known; else it is estimated from the film."""
        image = np.asarray(image, np.float32)
        if image.ndim != 2:
            raise BoneaugError(f"expected a (H, W) film, got shape {image.shape}")
        untouched = Painted(image, False, None, np.zeros(image.shape, bool))
        rng = self._rng(key)
        if rng.random() >= self.prob:
            return untouched
        if bone_mask is not None:
            region, source = np.asarray(bone_mask) > 0, "mask"
        else:
            region, source = estimate_bone_region(image), "estimated"
        centres = where_bone_lies(image, region, source, self.locator)
        try:
            site = draw_site(region, self.stats, self.context, rng, centres=centres)
        except BoneaugError:  # no bone to put a lesion on: the film stays as it is
            return untouched
        x0, y0, x1, y1 = site.crop_box
        patch = resize_square(image[y0:y1, x0:x1], self.patch_size)
        mask = site_mask(site.lesion_box, site.crop_box, self.patch_size)
        out = translate(self.model, patch[None], self.device, mask[None], threads=1,
                        bf16=False)
        lx0, ly0, lx1, ly1 = site.lesion_box
        weights = blend_mask(y1 - y0, x1 - x0, (lx0 - x0, ly0 - y0, lx1 - x0, ly1 - y0),
                             margin=self.margin, feather=self.feather)
        result = paste_change(image, site.crop_box, patch, out[0], weights)
        mask, _ = painted_mask(image, result, site.crop_box, site.lesion_box)
        return Painted(result.astype(np.float32), True, [float(v) for v in site.lesion_box],
                       mask)


class RandLesiond:
    """A MONAI-style dictionary transform around a `LesionPainter`.

    Reads ``data[image_key]`` (``(H, W)`` or ``(1, H, W)``, numpy or torch, values in
    [0, 1]) of a sample whose ``data[label_key]`` is 0, and on the samples it paints sets
    the label to 1, appends the lesion box to ``data[box_key]`` (a list of
    ``[x0, y0, x1, y1]``) and ORs the lesion into ``data[mask_key]`` (created when absent),
    each in the type and shape it came in. ``data[id_key]`` keys the draw (see the module
    doc); ``data[bone_mask_key]``, if given, says where the bone is.

    ``data[bone_key]`` (default ``"bone"``; a manifest's bone, or ``;``-separated bones
    such as ``assigned_bones``, or a list): a sample that names its bones and not the
    painter's bone is left unchanged, so a femur generator never paints a tibia film in a
    mixed data set. A sample without the key is painted (nothing says it is another
    bone); ``bone_key=None`` paints every lesion-free sample.
    """

    def __init__(self, painter: LesionPainter, image_key: str = "image",
                 label_key: str = "label", box_key: str = "boxes", mask_key: str = "mask",
                 id_key: str = "image_id", bone_mask_key: str | None = None,
                 bone_key: str | None = "bone") -> None:
        self.painter = painter
        self.image_key, self.label_key, self.box_key = image_key, label_key, box_key
        self.mask_key, self.id_key, self.bone_mask_key = mask_key, id_key, bone_mask_key
        self.bone_key = bone_key

    def _other_bone(self, data: dict[str, Any]) -> bool:
        """Whether the sample names its bones and the painter's is not among them."""
        if self.bone_key is None or self.bone_key not in data or self.painter.bone is None:
            return False
        named = data[self.bone_key]
        if isinstance(named, str):
            named = named.split(";")
        bones = {str(b).strip().lower() for b in named if str(b).strip()}
        return self.painter.bone not in bones

    def set_epoch(self, epoch: int) -> None:
        self.painter.set_epoch(epoch)

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        if int(_plain(data[self.label_key]).reshape(-1)[0]) != 0:
            return data  # already a lesion film
        if self._other_bone(data):
            return data  # a film of another bone
        if self.id_key not in data:
            raise BoneaugError(f"RandLesiond: the sample has no {self.id_key!r} key to seed "
                               "its draw by")
        original = data[self.image_key]
        film = _plain(original)
        squeezed = film[0] if film.ndim == 3 and film.shape[0] == 1 else film
        bone = (_plain(data[self.bone_mask_key]).reshape(squeezed.shape)
                if self.bone_mask_key else None)
        result = self.painter(squeezed, data[self.id_key], bone)
        if not result.painted:
            return data
        out = dict(data)
        out[self.image_key] = _like(result.image.reshape(film.shape), original)
        out[self.label_key] = _like(np.ones_like(_plain(data[self.label_key])),
                                    data[self.label_key])
        out[self.box_key] = [*list(data.get(self.box_key) or []), result.box]
        before = data.get(self.mask_key)
        mask = result.mask.reshape(film.shape)
        if before is not None:
            mask = mask | (_plain(before).reshape(film.shape) > 0)
        out[self.mask_key] = _like(mask.astype(np.float32), before if before is not None
                                   else original)
        return out


def _plain(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _like(array: np.ndarray, template: Any) -> Any:
    """`array` as the type (tensor or array), dtype and device of `template`."""
    if isinstance(template, torch.Tensor):
        return torch.as_tensor(array).to(dtype=template.dtype, device=template.device)
    return np.asarray(array).astype(np.asarray(template).dtype, copy=False)
