"""Seamless paste-back: the blend mask, residual pasting and the seam measure."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from boneaug.patches import resize_to as resize
from boneaug.synth.blend import (
    blend_mask,
    feather_mask,
    painted_mask,
    paste_change,
    seam_ratio,
)


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


def test_blend_mask_covers_the_lesion_and_fades_beyond_the_margin():
    m = blend_mask(48, 48, lesion_box=(16, 12, 32, 36), margin=0.5)
    assert m[24, 24] == pytest.approx(1.0, abs=1e-3)        # box centre
    assert m[12:36, 20:28].min() > 0.9                      # along the box's long axis
    assert m[24, 38] == 0.0 and m[2, 24] == 0.0             # beyond 1.5x the half-axes
    assert m[0].max() == 0.0 and m[:, -1].max() == 0.0      # never at the crop border
    with pytest.raises(ValueError):
        blend_mask(8, 8, lesion_box=(2, 2, 6, 6), margin=0.0)


def test_paste_change_adds_lesion_and_keeps_source():
    image = textured()
    before = image.copy()
    box = (20, 30, 68, 78)
    src_patch = resize(image[30:78, 20:68], 32, 32)
    yy, xx = np.mgrid[:32, :32]
    lesion = ((yy - 16) ** 2 + (xx - 16) ** 2 < 36).astype(np.float32)
    translated = np.clip(src_patch - 0.3 * lesion, 0, 1)  # a dark lucent disc
    mask = blend_mask(48, 48, lesion_box=(14, 14, 34, 34))
    out = paste_change(image, box, src_patch, translated, mask)
    np.testing.assert_array_equal(image, before)  # input not modified
    assert out[54, 44] < image[54, 44] - 0.2  # lesion centre darker
    outside = np.ones_like(image, dtype=bool)
    outside[30:78, 20:68] = False
    np.testing.assert_array_equal(out[outside], image[outside])  # nothing outside the crop
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_a_global_brightness_shift_stays_inside_the_blend_region():
    image = textured(seed=3)
    box = (24, 24, 72, 72)
    src_patch = resize(image[24:72, 24:72], 32, 32)
    brighter = np.clip(src_patch + 0.2, 0, 1)  # a generator that brightens everything
    mask = blend_mask(48, 48, lesion_box=(18, 18, 30, 30), margin=0.5)
    out = paste_change(image, box, src_patch, brighter, mask)
    changed = np.abs(out - image) > 1e-6
    crop_changed = changed[24:72, 24:72]
    assert not changed.sum() - crop_changed.sum()
    assert not crop_changed[mask == 0].any()
    assert crop_changed.sum() < 0.5 * crop_changed.size


def test_smooth_paste_leaves_no_seam_while_hard_paste_does():
    image = textured(seed=1)
    box = (24, 24, 72, 72)
    src_patch = resize(image[24:72, 24:72], 32, 32)
    other = textured(seed=7)[:32, :32] * 0.5 + 0.4  # a translation that changes everything
    mask = blend_mask(48, 48, lesion_box=(12, 12, 36, 36))
    soft = paste_change(image, box, src_patch, other, mask)
    hard = image.copy()
    hard[24:72, 24:72] = resize(other, 48, 48)
    edge = np.ones((48, 48), np.float32)  # a hard paste's boundary: the crop's edge pixels
    edge[:2], edge[-2:], edge[:, :2], edge[:, -2:] = 0.3, 0.3, 0.3, 0.3
    assert seam_ratio(soft, image, box, mask) < 1.5
    assert seam_ratio(hard, image, box, edge) > 2.0


def test_bad_crop_box_or_mask_is_refused():
    with pytest.raises(ValueError, match="not inside"):
        paste_change(np.zeros((10, 10)), (5, 5, 12, 9), np.zeros((4, 4)), np.zeros((4, 4)),
                     np.ones((4, 7)))
    with pytest.raises(ValueError, match="mask shape"):
        paste_change(np.zeros((10, 10)), (0, 0, 4, 4), np.zeros((4, 4)), np.zeros((4, 4)),
                     np.ones((3, 3)))


def test_painted_mask_is_the_change_that_touches_the_lesion():
    before = np.full((40, 50), 0.5, np.float32)
    after = before.copy()
    yy, xx = np.mgrid[0:40, 0:50]
    lesion = ((xx - 20) / 5.0) ** 2 + ((yy - 18) / 4.0) ** 2 < 1
    after[lesion] -= 0.2                  # the lesion: darker
    after[30:32, 38:40] += 0.1            # texture elsewhere in the crop: strong but apart
    after[10, 30] += 0.01                 # faint: below a quarter of the largest change
    mask, how = painted_mask(before, after, (5, 5, 45, 38), (14, 13, 26, 23))
    assert how == "change" and (mask == lesion).all()
    # a change too faint to show a shape: the lesion box
    mask, how = painted_mask(before, before + 1e-4, (5, 5, 45, 38), (14, 13, 26, 23))
    assert how == "box" and mask.sum() == 12 * 10 and mask[13:23, 14:26].all()
