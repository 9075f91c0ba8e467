"""Per-bone patch domains for the CycleGAN: healthy (A) and lesion (B) patch stores.

`extract_patches` cuts both domains of one bone from the train split of a manifest and
writes them under ``<out>/<bone>/``; `load_domains` / `load_patch_store` read them back.
`estimate_bone_region` finds the bone in a radiograph when no bone mask is given.
`read_film`, `square_box`, `draw_healthy_crops` and `boxes_overlap` are the crop helpers
that the region classifier (`boneaug.classify.regions`) shares with the extraction;
`lesion_crops` cuts a lesion's jittered crops as the lesion domain has them (the realism
measure cuts its reference with it, `boneaug.synth.realism`).
"""

from boneaug.patches.crop import crop_reflect, resize_square, resize_to
from boneaug.patches.extract import (
    PatchReport,
    boxes_overlap,
    draw_healthy_crops,
    extract_patches,
    lesion_crops,
    read_film,
    square_box,
)
from boneaug.patches.region import (
    bone_region,
    estimate_bone_region,
    overlap_scores,
    region_bbox,
    where_bone_lies,
)
from boneaug.patches.store import (
    PatchStore,
    load_domains,
    load_patch_store,
    read_json_object,
    write_patch_store,
)

__all__ = [
    "PatchReport", "PatchStore", "bone_region", "boxes_overlap", "crop_reflect",
    "draw_healthy_crops", "estimate_bone_region", "extract_patches", "lesion_crops",
    "load_domains", "load_patch_store", "overlap_scores", "read_film", "read_json_object",
    "region_bbox", "resize_square", "resize_to", "square_box", "where_bone_lies",
    "write_patch_store",
]
