"""Seamless paste-back: feathered residual blending and the seam measure."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from boneaug.patches import resize_to as resize
from boneaug.synth.blend import feather_mask, paste_change, seam_ratio


def textured(shape=(96, 96), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = ndimage.gaussian_filter(rng.random(shape), 2.0)
    return ((img - img.min()) / (img.max() - img.min()) * 0.6 + 0.2).astype(np.float32)


def test_feather_mask_is_one_inside_zero_at_the_border():
    m = feather_mask(32, 40, 0.25)
    assert m.shape == (32, 40) and m.dtype == np.float32
    assert m[16, 20] == pytest.approx(1.0)
    assert m[0].max() < 0.05 and m[:, 0].max() < 0.05
    assert np.all(np.diff(m[16, :20]) >= 0)  # rises monotonically to the middle
    with pytest.raises(ValueError):
        feather_mask(8, 8, 0.0)


def test_paste_change_adds_lesion_and_keeps_source():
    image = textured()
    before = image.copy()
    box = (20, 30, 68, 78)
    src_patch = resize(image[30:78, 20:68], 32, 32)
    yy, xx = np.mgrid[:32, :32]
    lesion = ((yy - 16) ** 2 + (xx - 16) ** 2 < 36).astype(np.float32)
    translated = np.clip(src_patch - 0.3 * lesion, 0, 1)  # a dark lucent disc
    out = paste_change(image, box, src_patch, translated)
    np.testing.assert_array_equal(image, before)  # input not modified
    assert out[54, 44] < image[54, 44] - 0.2  # lesion centre darker
    outside = np.ones_like(image, dtype=bool)
    outside[30:78, 20:68] = False
    np.testing.assert_array_equal(out[outside], image[outside])  # nothing outside the crop
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_feathered_paste_leaves_no_seam_while_hard_paste_does():
    image = textured(seed=1)
    box = (24, 24, 72, 72)
    src_patch = resize(image[24:72, 24:72], 32, 32)
    other = textured(seed=7)[:32, :32] * 0.5 + 0.4  # a translation that changes everything
    soft = paste_change(image, box, src_patch, other)
    hard = image.copy()
    hard[24:72, 24:72] = resize(other, 48, 48)
    assert seam_ratio(soft, image, box) < 1.5
    assert seam_ratio(hard, image, box) > 2.0


def test_bad_crop_box_is_refused():
    with pytest.raises(ValueError, match="not inside"):
        paste_change(np.zeros((10, 10)), (5, 5, 12, 9), np.zeros((4, 4)), np.zeros((4, 4)))
