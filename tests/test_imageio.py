"""Image readers and writers: value ranges, DICOM display pipeline, synthetic marking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from boneaug.data.imageio import (
    SYNTHETIC_MARK,
    image_size,
    is_marked_synthetic,
    read_image,
    write_png16,
    write_synthetic_dicom,
)
from boneaug.errors import ImageReadError

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"


def make_dicom(path: Path, pixels: np.ndarray, **attrs) -> Path:
    """A minimal uncompressed single-frame DICOM written with pydicom."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CR_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CR_IMAGE_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "P001"
    ds.PatientName = "Test^Phantom"
    ds.Modality = "CR"
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = attrs.pop("PhotometricInterpretation", "MONOCHROME2")
    ds.BitsAllocated = 16
    ds.BitsStored = attrs.pop("BitsStored", 12)
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def ramp(height: int = 8, width: int = 16, top: int = 4095) -> np.ndarray:
    return np.linspace(0, top, height * width).reshape(height, width).astype(np.uint16)


def test_png8_and_png16_read_to_unit_range(tmp_path):
    arr8 = np.array([[0, 128, 255]], dtype=np.uint8)
    Image.fromarray(arr8).save(tmp_path / "a.png")
    img = read_image(tmp_path / "a.png")
    assert img.dtype == np.float32 and img.shape == (1, 3)
    np.testing.assert_allclose(img, [[0, 128 / 255, 1]], atol=1e-6)

    arr16 = np.array([[0, 1000, 65535]], dtype=np.uint16)
    Image.fromarray(arr16).save(tmp_path / "b.png")
    np.testing.assert_allclose(read_image(tmp_path / "b.png"), [[0, 1000 / 65535, 1]], atol=1e-6)


def test_png16_round_trip_is_exact_to_16_bits(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.random((20, 30)).astype(np.float32)
    write_png16(tmp_path / "x.png", image)
    back = read_image(tmp_path / "x.png")
    assert back.shape == (20, 30)
    assert np.max(np.abs(back - image)) <= 0.5 / 65535 + 1e-7
    with Image.open(tmp_path / "x.png") as im:
        assert im.mode.startswith("I")  # stored as 16-bit, not 8-bit


def test_jpeg_rgb_becomes_gray(tmp_path):
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[..., 0] = 255  # pure red
    Image.fromarray(rgb).save(tmp_path / "r.jpg", quality=100)
    img = read_image(tmp_path / "r.jpg")
    assert img.shape == (16, 16)
    assert abs(float(img.mean()) - 0.299) < 0.02


def test_exif_rotation_is_applied_to_pixels_and_size(tmp_path):
    im = Image.fromarray(np.zeros((10, 30), dtype=np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6  # rotated 90 degrees
    im.save(tmp_path / "rot.jpg", exif=exif)
    assert image_size(tmp_path / "rot.jpg") == (30, 10)
    assert read_image(tmp_path / "rot.jpg").shape == (30, 10)


def test_tiff_reads(tmp_path):
    Image.fromarray(np.full((5, 6), 200, dtype=np.uint8)).save(tmp_path / "t.tif")
    np.testing.assert_allclose(read_image(tmp_path / "t.tif"), 200 / 255, atol=1e-6)


def test_dicom_window_and_rescale(tmp_path):
    pixels = ramp()
    path = make_dicom(tmp_path / "w.dcm", pixels, RescaleSlope=2, RescaleIntercept=-100,
                      WindowCenter=4000, WindowWidth=2000)
    img = read_image(path)
    values = pixels.astype(float) * 2 - 100
    expected = np.clip((values - (4000 - 0.5)) / (2000 - 1) + 0.5, 0, 1)
    np.testing.assert_allclose(img, expected, atol=1e-6)
    assert img.dtype == np.float32


def test_dicom_without_window_uses_full_range(tmp_path):
    pixels = ramp(top=1000)
    img = read_image(make_dicom(tmp_path / "n.dcm", pixels))
    assert img.min() == 0.0 and img.max() == 1.0


def test_dicom_monochrome1_is_inverted(tmp_path):
    pixels = ramp()
    mono2 = read_image(make_dicom(tmp_path / "m2.dcm", pixels))
    mono1 = read_image(make_dicom(tmp_path / "m1.dcm", pixels,
                                  PhotometricInterpretation="MONOCHROME1"))
    np.testing.assert_allclose(mono1, 1 - mono2, atol=1e-6)


def test_dicom_voi_lut_sequence(tmp_path):
    pixels = ramp(top=255)
    lut_item = Dataset()
    lut_item.LUTDescriptor = [256, 0, 8]
    lut_data = (255 - np.arange(256)).astype(np.uint16)  # an inverting LUT
    lut_item.add_new(0x00283006, "US", lut_data.tolist())  # LUTData
    path = make_dicom(tmp_path / "lut.dcm", pixels, BitsStored=8, VOILUTSequence=[lut_item])
    img = read_image(path)
    np.testing.assert_allclose(img, (255 - pixels) / 255.0, atol=1e-6)


def test_multiframe_dicom_is_refused(tmp_path):
    frames = np.stack([ramp(), ramp()])
    path = make_dicom(tmp_path / "mf.dcm", frames, NumberOfFrames=2)
    with pytest.raises(ImageReadError, match="multi-frame"):
        read_image(path)


def test_unreadable_files_give_one_line(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    for path in (tmp_path / "bad.png", tmp_path / "missing.png"):
        with pytest.raises(ImageReadError) as info:
            read_image(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_real_cr_radiograph_with_bone_lesion():
    """RG3_UNCR.dcm: a real 10-bit MONOCHROME1 CR of a distal tibia (non-ossifying fibroma)."""
    data = pytest.importorskip("pydicom.data")
    try:
        path = data.get_testdata_file("RG3_UNCR.dcm")
    except Exception:  # pydicom-data absent: the download is not allowed here
        path = None
    if path is None:
        pytest.skip("pydicom-data is not installed")
    img = read_image(path)
    assert img.shape == (1760, 1760) and img.dtype == np.float32
    assert img.min() >= 0.0 and img.max() <= 1.0
    # MONOCHROME1 is inverted so that bone is bright: the bright (bone) region is small
    # against a large dark background of air, as on a displayed radiograph.
    assert float(np.median(img)) < float(img.mean()) + 0.2
    assert float(np.percentile(img, 99)) - float(np.percentile(img, 1)) > 0.3
    assert image_size(path) == (1760, 1760)


def test_synthetic_dicom_is_marked_and_new(tmp_path):
    source = make_dicom(tmp_path / "src.dcm", ramp(), WindowCenter=2000, WindowWidth=4000,
                        RescaleSlope=1, RescaleIntercept=0)
    before = source.read_bytes()
    image = np.random.default_rng(1).random((8, 16)).astype(np.float32)
    out = write_synthetic_dicom(tmp_path / "out" / "syn.dcm", image, source,
                                "lesion painted at [1, 2, 5, 6] by generator abc")
    assert source.read_bytes() == before  # the source is never modified
    src, syn = pydicom.dcmread(source), pydicom.dcmread(out)
    for uid in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert getattr(syn, uid) != getattr(src, uid)
    assert list(syn.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert SYNTHETIC_MARK in syn.DerivationDescription
    assert "generator abc" in syn.DerivationDescription
    assert syn.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    assert syn.PatientID == src.PatientID
    assert is_marked_synthetic(out) and not is_marked_synthetic(source)
    assert np.max(np.abs(read_image(out) - image)) < 1e-4


def test_write_png16_rejects_bad_arrays(tmp_path):
    with pytest.raises(ValueError):
        write_png16(tmp_path / "a.png", np.zeros((2, 2, 2)))
    with pytest.raises(ValueError):
        write_png16(tmp_path / "b.png", np.full((2, 2), np.nan))
    assert not list(tmp_path.iterdir())  # nothing half-written
