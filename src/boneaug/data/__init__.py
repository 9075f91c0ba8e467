"""Data layer: manifest, image I/O, importers, splits, statistics and phantom radiographs."""

from boneaug.data.imageio import image_size, read_image, write_png16, write_synthetic_dicom
from boneaug.data.manifest import (
    BONES,
    COLUMNS,
    REGIONS,
    Manifest,
    Problem,
    load_manifest,
    new_table,
    read_manifest,
    save_manifest,
    validate_manifest,
)

__all__ = [
    "BONES", "COLUMNS", "REGIONS", "Manifest", "Problem", "image_size", "load_manifest",
    "new_table", "read_manifest", "read_image", "save_manifest", "validate_manifest",
    "write_png16", "write_synthetic_dicom",
]
