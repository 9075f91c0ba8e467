"""Read radiographs as float32 images in [0, 1]; write synthetic ones marked as such.

Internally an image is a `float32` array of shape `(H, W)` with values in `[0, 1]`, at
native resolution, where brighter means more attenuation (bone is bright), as a
radiologist views it. Readers handle:

- DICOM: modality LUT (rescale slope/intercept), then the VOI LUT or the first window
  (linear, linear-exact or sigmoid), then MONOCHROME1 inversion. Multi-frame files are
  refused: a radiograph is one frame.
- PNG (8- and 16-bit), JPEG (RGB becomes gray by ITU-R 601 luma), TIFF and BMP, with the
  EXIF orientation applied, as annotation tools (LabelMe) apply it when boxes are drawn.

Writers produce 16-bit PNG, or DICOM derived from a source DICOM with new UIDs and marked
DERIVED / SECONDARY and synthetic, so that no one mistakes it for an acquisition.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from boneaug.errors import ImageReadError
from boneaug.files import atomic_path

DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}
RASTER_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
SYNTHETIC_MARK = "SYNTHETIC IMAGE made by boneaug - not an acquisition"


def is_dicom(path: str | Path) -> bool:
    """True if `path` has a DICOM suffix or the DICM magic at byte 128."""
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def read_image(path: str | Path) -> np.ndarray:
    """Read a radiograph as a `float32` array of shape `(H, W)` in `[0, 1]`.

    Raises `ImageReadError` (one line naming the file) for anything that is not a
    readable single-frame image.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such image file")
    if is_dicom(path):
        return _read_dicom(path)
    return _read_raster(path)


def image_size(path: str | Path) -> tuple[int, int]:
    """The `(H, W)` of an image without decoding its pixels (EXIF orientation applied)."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such image file")
    if is_dicom(path):
        ds = _dcmread(path, stop_before_pixels=True)
        try:
            rows, columns = int(ds.Rows), int(ds.Columns)
            frames = int(ds.get("NumberOfFrames", 1) or 1)
        except Exception as exc:  # absent, or a corrupt element that fails to decode
            raise ImageReadError(f"{path}: DICOM has no Rows/Columns (not an image)") from exc
        if frames > 1:
            raise ImageReadError(f"{path}: multi-frame DICOM ({frames} frames); boneaug "
                                 "reads single radiographs")
        return rows, columns
    try:
        with Image.open(path) as img:
            width, height = img.size
            orientation = img.getexif().get(0x0112, 1)
            frames = getattr(img, "n_frames", 1)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ImageReadError(f"{path}: not a readable image ({exc})") from exc
    if frames > 1:
        raise ImageReadError(f"{path}: has {frames} frames; a radiograph must have one")
    if orientation in (5, 6, 7, 8):  # rotated by 90 degrees: width and height swap
        width, height = height, width
    return height, width


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PIXEL_DATA = 0x7FE00010        # the DICOM tag (7FE0,0010)
UNDEFINED_LENGTH = 0xFFFFFFFF  # an element whose length is not given (encapsulated)
JPEG_TAIL = 4096  # bytes at a JPEG's end searched for its end-of-image marker


def cut_short(path: str | Path) -> str | None:
    """Why the image file `path` is cut short (a copy or download that stopped), or None:
    an uncompressed DICOM with less pixel data than its header promises, a PNG without its
    closing IEND chunk, a JPEG without its end-of-image marker. Decodes no pixels; other
    formats (and compressed DICOM) are not judged here but when read."""
    path = Path(path)
    if is_dicom(path):
        # values over 1 KB are not read (deferred): the pixel data's place and declared
        # length are enough, so a folder of large films is not read whole
        ds = _dcmread(path, defer_size=1024)
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        raw = getattr(ds, "_dict", {}).get(PIXEL_DATA)  # the element as read, not decoded
        length, start = getattr(raw, "length", None), getattr(raw, "value_tell", None)
        if (syntax is None or syntax.is_encapsulated or length is None or start is None
                or length == UNDEFINED_LENGTH):
            return None
        have = min(length, path.stat().st_size - start)
        try:
            promised = (int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1))
                        * int(ds.get("NumberOfFrames", 1) or 1) * int(ds.BitsAllocated) // 8)
        except Exception:  # a corrupt element: judged (and refused) when the pixels are read
            return None
        return (f"DICOM pixel data is {have} bytes of the {promised} its header gives: the "
                "file is cut short") if have < promised else None
    with open(path, "rb") as fh:
        head = fh.read(8)
        fh.seek(0, os.SEEK_END)
        fh.seek(max(fh.tell() - JPEG_TAIL, 0))
        tail = fh.read()
    if head == PNG_SIGNATURE and b"IEND" not in tail[-12:]:
        return "PNG is cut short (it does not end in an IEND chunk)"
    if head[:2] == b"\xff\xd8" and b"\xff\xd9" not in tail:
        return "JPEG is cut short (no end-of-image marker at its end)"
    return None


# --------------------------------------------------------------------------- raster


def _read_raster(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            return _pil_to_unit_float(img, path)
    # Pillow refuses images over ~179 Mpx as decompression bombs; radiographs are far below.
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError(f"{path}: not a readable image ({exc})") from exc


def _pil_to_unit_float(img: Image.Image, path: Path) -> np.ndarray:
    if getattr(img, "n_frames", 1) > 1:
        raise ImageReadError(f"{path}: has {img.n_frames} frames; a radiograph must have one")
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(img, dtype=np.uint16).astype(np.float32) / 65535.0
    elif mode == "I":
        raw = np.asarray(img, dtype=np.int64)
        # 16-bit PNGs often open as mode "I"; anything wider is scaled by its own range.
        top = 65535.0 if raw.min() >= 0 and raw.max() <= 65535 else float(raw.max() - raw.min())
        arr = ((raw - min(raw.min(), 0)) / max(top, 1.0)).astype(np.float32)
    elif mode == "F":
        raw = np.asarray(img, dtype=np.float32)
        lo, hi = float(raw.min()), float(raw.max())
        arr = (raw - lo) / (hi - lo) if hi > lo else np.zeros_like(raw)
    elif mode in ("L", "1", "LA", "PA"):
        arr = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    else:  # RGB, RGBA, P, CMYK, YCbCr: luminance, alpha dropped
        rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        arr = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(arr, 0.0, 1.0).astype(np.float32, copy=False)


# --------------------------------------------------------------------------- DICOM


def _dcmread(path: Path, stop_before_pixels: bool = False, defer_size: int | None = None):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=True,
                               defer_size=defer_size)
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise ImageReadError(f"{path}: not a readable DICOM file ({exc})") from exc
    except Exception as exc:  # a corrupt file raises many pydicom-internal types
        raise ImageReadError(f"{path}: not a readable DICOM file ({type(exc).__name__}: "
                             f"{exc})") from exc


def _first(value) -> float:
    """DICOM multi-valued window attributes: the first value is the default window."""
    try:
        return float(value[0])
    except (TypeError, IndexError):
        return float(value)


def _read_dicom(path: Path) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ds = _dcmread(path)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ImageReadError(
            f"{path}: multi-frame DICOM ({frames} frames); boneaug reads single radiographs"
        )
    if "PixelData" not in ds:
        raise ImageReadError(f"{path}: DICOM has no pixel data")
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for missing codecs
        raise ImageReadError(
            f"{path}: cannot decode DICOM pixel data ({type(exc).__name__}: {exc}); "
            "compressed transfer syntaxes may need pylibjpeg or gdcm"
        ) from exc
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if pixels.ndim == 3 and photometric not in ("MONOCHROME1", "MONOCHROME2"):
        rgb = pixels.astype(np.float32)
        top = float(2 ** int(ds.get("BitsStored", 8)) - 1)
        gray = (rgb / top) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.clip(gray, 0, 1).astype(np.float32)
    if pixels.ndim != 2:
        raise ImageReadError(f"{path}: DICOM pixel array has shape {pixels.shape}; expected 2-D")

    values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence) > 0:
        item = ds.VOILUTSequence[0]
        # A VOI LUT is indexed by integer modality values; rescaling usually keeps them
        # integral, and pydicom warns (rightly) when it is handed floats.
        lut_input = np.rint(values).astype(np.int64) if np.all(values == np.rint(values)) \
            else values
        lut = np.asarray(apply_voi_lut(lut_input, ds, prefer_lut=True), dtype=np.float64)
        out_bits = int(item.LUTDescriptor[2])
        unit = lut / float(2**out_bits - 1)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        unit = _window(values, _first(ds.WindowCenter), _first(ds.WindowWidth),
                       str(ds.get("VOILUTFunction", "LINEAR")).upper())
    else:
        lo, hi = float(values.min()), float(values.max())
        unit = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    unit = np.clip(unit, 0.0, 1.0)
    if photometric == "MONOCHROME1":  # low values are bright: invert to bone-is-bright
        unit = 1.0 - unit
    return unit.astype(np.float32)


def _window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 windowing, mapped to [0, 1]."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        return (values - (center - width / 2.0)) / width
    if width < 1:
        raise ImageReadError("DICOM WindowWidth below 1 with a LINEAR VOI function")
    return (values - (center - 0.5)) / (width - 1.0) + 0.5


# --------------------------------------------------------------------------- writers


def _to_uint16(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected an (H, W) image, got shape {image.shape}")
    if not np.all(np.isfinite(image)):
        raise ValueError("image has NaN or infinite values")
    return np.round(np.clip(image, 0.0, 1.0) * 65535.0).astype(np.uint16)


def write_png16(path: str | Path, image: np.ndarray) -> Path:
    """Write an `(H, W)` float image in [0, 1] as a 16-bit grayscale PNG, atomically."""
    path = Path(path)
    data = _to_uint16(image)
    with atomic_path(path) as tmp:
        Image.fromarray(data).save(tmp, format="PNG")
    return path


def write_synthetic_dicom(
    path: str | Path, image: np.ndarray, source: str | Path, description: str
) -> Path:
    """Write `image` as a DICOM derived from the DICOM file `source`, marked synthetic.

    The patient and study context is kept (the synthetic image is about the source's
    patient); the Study, Series and SOP Instance UIDs are new, `ImageType` is
    `DERIVED\\SECONDARY`, `DerivationDescription`, `ImageComments` and the series
    description say it is synthetic, and `SourceImageSequence` points at the source. The
    pixels are 16-bit MONOCHROME2 in display orientation (bone bright), with no rescale
    and an exact full-range window instead of the source's: they no longer mean the
    source's values.
    """
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    path = Path(path)
    source = Path(source)
    data = _to_uint16(image)
    ds = _dcmread(source)
    source_sop_class = ds.get("SOPClassUID")
    source_sop_instance = ds.get("SOPInstanceUID")
    for keyword in ("RescaleSlope", "RescaleIntercept", "RescaleType", "ModalityLUTSequence",
                    "VOILUTSequence", "WindowCenter", "WindowWidth", "VOILUTFunction",
                    "WindowCenterWidthExplanation", "NumberOfFrames", "PixelPaddingValue",
                    "SmallestImagePixelValue", "LargestImagePixelValue", "LossyImageCompression",
                    "LossyImageCompressionRatio", "LossyImageCompressionMethod"):
        if keyword in ds:
            delattr(ds, keyword)

    now = _dt.datetime.now()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.ImageType = ["DERIVED", "SECONDARY", "SYNTHETIC"]
    ds.DerivationDescription = f"{SYNTHETIC_MARK}. {description}"[:1024]
    ds.ImageComments = SYNTHETIC_MARK
    ds.SeriesDescription = ("SYNTHETIC " + str(ds.get("SeriesDescription", ""))).strip()[:64]
    ds.BurnedInAnnotation = "NO"
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    if source_sop_class and source_sop_instance:
        ref = Dataset()
        ref.ReferencedSOPClassUID = source_sop_class
        ref.ReferencedSOPInstanceUID = source_sop_instance
        ds.SourceImageSequence = Sequence([ref])

    ds.Rows, ds.Columns = data.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    if "PlanarConfiguration" in ds:
        del ds.PlanarConfiguration
    # The pixels are display values in [0, 1] scaled to 16 bits; an exact full-range
    # window tells every viewer (and read_image) to show them as they are.
    ds.WindowCenter = 32767.5
    ds.WindowWidth = 65535
    ds.VOILUTFunction = "LINEAR_EXACT"
    ds.PixelData = data.tobytes()
    ds["PixelData"].VR = "OW"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if source_sop_class:
        ds.file_meta.MediaStorageSOPClassUID = source_sop_class
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return path


def is_marked_synthetic(path: str | Path) -> bool:
    """True if a DICOM file carries boneaug's synthetic marking."""
    ds = _dcmread(Path(path), stop_before_pixels=True)
    return "SYNTHETIC" in list(ds.get("ImageType", [])) and SYNTHETIC_MARK in str(
        ds.get("DerivationDescription", "")
    )
