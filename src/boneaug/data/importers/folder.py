"""Class folders: ``root/<class>/…`` or ``root/<bone>/<class>/…``; labels only, no boxes."""

from __future__ import annotations

from pathlib import Path

from boneaug.data.imageio import DICOM_SUFFIXES, RASTER_SUFFIXES
from boneaug.data.importers.common import ImportReport, bone_name, finish, require_bone
from boneaug.errors import BoneaugError

NEGATIVE_NAMES = frozenset({"normal", "healthy", "negative", "0"})
POSITIVE_NAMES = frozenset({"lesion", "abnormal", "positive", "tumor", "tumour", "1"})
IMAGE_SUFFIXES = RASTER_SUFFIXES | DICOM_SUFFIXES


def class_label(name: str) -> int | None:
    """0 or 1 for a class folder name (case-insensitive), None if it is not one."""
    name = name.strip().lower()
    if name in NEGATIVE_NAMES:
        return 0
    if name in POSITIVE_NAMES:
        return 1
    return None


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def import_folder(root: Path, out: Path, *, bone: str | None) -> ImportReport:
    """Import images sorted into class folders into a manifest at `out`.

    Class folder names (case-insensitive): ``normal, healthy, negative, 0`` -> label 0;
    ``lesion, abnormal, positive, tumor, tumour, 1`` -> label 1. Either the class folders
    sit directly under `root` (then `bone` names the bone of every image), or under bone
    folders ``root/<bone>/<class>/`` (then the bone comes from the folder and `bone` must
    be None). Images are found recursively inside a class folder (PNG, JPEG, TIFF, BMP,
    DICOM by suffix); ``image_id`` is the path under `root` without suffix. No boxes: the
    positives train a classifier but cannot give lesion patches (a warning counts them).
    """
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise BoneaugError(f"{root}: no such folder")
    top = _subfolders(root)
    if not top:
        raise BoneaugError(f"{root}: has no sub-folders; expected class folders (normal/, "
                           "lesion/) or bone folders (femur/normal/, ...)")
    accepted = ", ".join(sorted(NEGATIVE_NAMES | POSITIVE_NAMES))
    # One class folder at the top means the class layout; a stray folder beside it is
    # then a misspelt class, not a bone.
    if any(class_label(p.name) is not None for p in top):
        if bone is None:
            raise BoneaugError(f"{root}: class folders without bone folders; pass --bone")
        groups = [(require_bone(bone, "--bone"), p) for p in top]
    else:
        bones = {bone_dir: bone_name(bone_dir.name) for bone_dir in top}
        for bone_dir, name in bones.items():
            if name is None:
                raise BoneaugError(f"{bone_dir}: neither a class folder ({accepted}) nor a "
                                   "bone folder (femur, tibia, ...)")
        if bone is not None:
            raise BoneaugError(f"{root}: has bone folders ({', '.join(p.name for p in top)}); "
                               "the bone comes from them, drop --bone")
        groups = []
        for bone_dir, name in bones.items():
            class_dirs = _subfolders(bone_dir)
            if not class_dirs:
                raise BoneaugError(f"{bone_dir}: a bone folder needs class sub-folders "
                                   f"({accepted})")
            groups += [(str(name), class_dir) for class_dir in class_dirs]
    rows, where = [], []
    warnings: list[str] = []
    for row_bone, class_dir in groups:
        label = class_label(class_dir.name)
        if label is None:
            raise BoneaugError(f"{class_dir}: not a class folder name; expected one of "
                               f"{accepted} (case-insensitive)")
        images = _images(class_dir)
        if not images:
            warnings.append(f"{class_dir}: no images")
        for image in images:
            rel = image.relative_to(root).as_posix()
            rows.append({"image_id": str(Path(rel).with_suffix("").as_posix()), "path": rel,
                         "bone": row_bone, "label": label, "boxes": []})
            where.append(str(image))
    if not rows:
        raise BoneaugError(f"{root}: no images found in its class folders")
    warnings.append("class folders have no patient ids: each image is its own patient; if a "
                    "patient has several images, add a patient_id column before splitting")
    return finish(rows, root=root, out=out, where=where, warnings=warnings,
                  inputs=[Path(r) for r in where])
