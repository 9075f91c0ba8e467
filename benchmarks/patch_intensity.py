"""Are a run's lesion patches brighter than its healthy patches? (issue 12: brightening)

    .venv/bin/python benchmarks/patch_intensity.py runs/phantom-full

Per bone, the mean grey value of the healthy and the lesion patches (whole patch, and the
central quarter where a lesion patch has its lesion), and the healthy patches' mean bone
share. A CycleGAN matches the lesion domain's statistics; if lesion patches were brighter
than healthy ones, brightening would be what the data asks for.
"""

from __future__ import annotations

import sys
from pathlib import Path

from boneaug.patches import load_domains


def main() -> None:
    run = Path(sys.argv[1])
    print("| bone | healthy patch mean | lesion patch mean | healthy centre | lesion centre "
          "| healthy bone share |")
    print("|---|---|---|---|---|---|")
    for folder in sorted(p for p in (run / "patches").iterdir() if p.is_dir()):
        healthy, lesion, _ = load_domains(folder)
        size = lesion.size
        centre = slice(size // 3, size - size // 3)
        hm, lm = healthy.patches.mean((1, 2)), lesion.patches.mean((1, 2))
        hc = healthy.patches[:, centre, centre].mean((1, 2))
        lc = lesion.patches[:, centre, centre].mean((1, 2))
        share = healthy.index["bone_fraction"].astype(float).mean()
        print(f"| {folder.name} | {hm.mean():.3f} ± {hm.std():.3f} | {lm.mean():.3f} ± "
              f"{lm.std():.3f} | {hc.mean():.3f} | {lc.mean():.3f} | {share:.2f} |")


if __name__ == "__main__":
    main()
