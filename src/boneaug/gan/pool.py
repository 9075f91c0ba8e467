"""The history pool of generated images (Shrivastava et al. 2017), as the reference uses it.

The discriminator is trained on a mix of the newest fakes and fakes from earlier
iterations, which damps oscillation between G and D. Rule (the reference's `ImagePool`):
until the pool holds `size` images, every new image is stored and returned; after that,
with probability 1/2 a new image replaces a random stored one and the stored one is
returned, else the new image is returned and the pool is left alone.

The coin flips come from a `torch.Generator` the pool owns and seeds, and `state_dict`
holds both the images and that generator's state, so a resumed run draws exactly what an
uninterrupted run would have drawn.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["ImagePool"]


class ImagePool:
    """A buffer of up to `size` past generated images, each `(C, P, P)`.

    Args:
        size: capacity; 0 disables the pool (`query` returns its input).
        seed: seed of the pool's own random generator.
    """

    def __init__(self, size: int = 50, seed: int = 0) -> None:
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.size = size
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        """`images`: `(B, C, P, P)` new fakes (detached here) -> `(B, C, P, P)` to show D."""
        images = images.detach()
        if self.size == 0:
            return images
        out = []
        for image in images:
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
                continue
            # The draws are made on the CPU generator whatever the device: identical
            # sequences on CPU and CUDA, and no device sync beyond this scalar.
            if torch.rand((), generator=self.generator).item() > 0.5:
                slot = int(torch.randint(0, self.size, (), generator=self.generator).item())
                out.append(self.images[slot].clone())
                self.images[slot] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, dim=0)

    def state_dict(self) -> dict[str, Any]:
        """Images (moved to CPU) and the generator state; loadable with `weights_only=True`."""
        return {"size": self.size, "images": [im.cpu() for im in self.images],
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        if int(state["size"]) != self.size:
            raise ValueError(f"pool size {state['size']} in the checkpoint, {self.size} here")
        self.images = [im.to(device) for im in state["images"]]
        self.generator.set_state(state["generator"])
