"""Square crops that may leave the image, and antialiased resizing.

Shapes: images are ``(H, W)`` float32 in ``[0, 1]``; a crop box is ``(x0, y0, x1, y1)``
in integer source pixels with ``x1``/``y1`` exclusive, and may extend past the image.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def crop_reflect(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The `(y1 - y0, x1 - x0)` crop of `image` at `box`, reflected where it leaves the image.

    Only the part inside the image is copied and then padded, so a small crop of a large
    radiograph never pads the whole radiograph. Reflection (not zeros) keeps the texture
    statistics at the border, which a GAN would otherwise learn as a fake black edge.
    """
    height, width = image.shape
    x0, y0, x1, y1 = (int(v) for v in box)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty crop box {box}")
    ix0, iy0 = min(max(x0, 0), width - 1), min(max(y0, 0), height - 1)
    ix1, iy1 = max(min(x1, width), ix0 + 1), max(min(y1, height), iy0 + 1)
    inside = image[iy0:iy1, ix0:ix1]
    pad = ((iy0 - y0, y1 - iy1), (ix0 - x0, x1 - ix1))
    if any(p < 0 for pair in pad for p in pair):  # box entirely outside on one side
        raise ValueError(f"crop box {box} does not touch the {width}x{height} image")
    if not any(p for pair in pad for p in pair):
        return inside.astype(np.float32, copy=True)
    # A one-pixel strip cannot be reflected; repeat its edge instead.
    mode = "reflect" if min(inside.shape) > 1 else "edge"
    return np.pad(inside, pad, mode=mode).astype(np.float32, copy=False)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a 2-D float image to `(size, size)`, float32 clipped to `[0, 1]`.

    Pillow's bicubic filter widens its support by the reduction factor, so downscaling is
    antialiased (a plain zoom would alias the trabecular texture into moire).
    """
    if image.shape == (size, size):
        return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)
    pil = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32))
    out = np.asarray(pil.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)
    return np.clip(out, 0.0, 1.0)


def resize_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a 2-D float image to `(height, width)` (antialiased bicubic), float32."""
    pil = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32))
    return np.asarray(pil.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
