"""Every path of an experiment run, named in one place.

The experiment (`boneaug.experiment.protocol`) writes through `RunPaths` and the report
(`boneaug.experiment.report`) reads through it, so the layout below is stated once; the
report finds synthesis folders by the names `SynthFolder` gives them, never by guessing.

```
config.yaml  run.json  stages/<stage>.json        the config, provenance, finished stages
phantom/                                          rendered radiographs (phantom source)
data/manifest.csv  data/oracle-pool.csv           the split, rarity-subsampled manifest and
data/stats.txt  data/skipped.csv                  the held-back real train positives;
data/bones.json  data/bones-sheet.png             films skipped; which bone each film shows
cache/                                            decoded films shared by the stages
patches/<bone>/   gan/<bone>/                     per-bone patch domains and CycleGAN
synth/gan/<bone>-s<seed>/                         synthetic positives of the bone's generator
synth/gan/<bone>-from-<g>-s<seed>/                ... of bone g's generator (transfer)
synth/copypaste/<bone>-s<seed>/                   real lesions pasted (copy-paste)
gate/<bone>/                                      quality-gate scores and the kept rows
realism/<bone>.json                               realism of every synthesis of the bone
cls/<bone>/<condition>/seed<k>/                   one classifier (`boneaug.classify.classify`)
cls-region/<bone>/<condition>/seed<k>/            one region-level classifier (levels: region)
evaluation/predictions.csv runs.csv gate.json     every test prediction, every run (first level)
evaluation/predictions-<level>.csv runs-<level>.csv   ... of the other level
evaluation/probe.json levels.json skipped.csv     shortcut probes, levels, skipped films
results.csv  results-<level>.csv  report.html     the report (figures/: its figures)
headline.csv                                      per level and bone: probe, baseline, best
                                                  strategies, oracle and the verdict
```

These names are what runs on disk hold: changing one would orphan every earlier run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from boneaug.classify.strategies import Extra
from boneaug.data.skips import SKIPPED_FILE
from boneaug.synth.copypaste import METHOD as COPY_PASTE

# Where each level's classifiers go (also the prefix of their stage names), and the
# suffix of its evaluation files when it is not the run's first level.
LEVEL_FOLDER = {"image": "cls", "region": "cls-region"}
LEVEL_SUFFIX = {"image": "-image", "region": "-region"}
# The CycleGAN stage's folder, and the synthesis method (folder) of its images.
GAN = "gan"
SYNTHETIC = "synthetic.csv"


@dataclass(frozen=True)
class SynthFolder:
    """One synthesis output: ``synth/<method>/<bone>[-from-<generator>]-s<seed>/``.

    `generator` is the bone whose generator painted the lesions when it is another bone
    (transfer); empty for the bone's own generator and for copy-paste.
    """

    method: str
    bone: str
    seed: int
    generator: str = ""

    @property
    def _tail(self) -> str:
        return f"-from-{self.generator}" if self.generator else ""

    @property
    def relative(self) -> str:
        """The folder relative to the run folder (also its key among the stages' inputs)."""
        return f"synth/{self.method}/{self.bone}{self._tail}-s{self.seed}"

    @property
    def stage(self) -> str:
        """The name of the stage that writes it."""
        return f"synth:{self.method}:{self.bone}{self._tail}"

    @classmethod
    def parse(cls, method: str, bone: str, name: str) -> SynthFolder | None:
        """The folder `name` under ``synth/<method>/`` when it is one of `bone`'s."""
        own = re.match(rf"^{re.escape(bone)}-s(\d+)$", name)
        if own:
            return cls(method, bone, int(own.group(1)))
        other = re.match(rf"^{re.escape(bone)}-from-(.+)-s(\d+)$", name)
        if other:
            return cls(method, bone, int(other.group(2)), other.group(1))
        return None


@dataclass(frozen=True)
class RunPaths:
    """The paths of the run in folder `root` (the layout in the module doc)."""

    root: Path

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    # ------------------------------------------------------------------ the run
    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    def stage_file(self, name: str) -> Path:
        return self.root / "stages" / (re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + ".json")

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def phantom(self) -> Path:
        return self.root / "phantom"

    # ------------------------------------------------------------------ data
    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def manifest(self) -> Path:
        return self.data / "manifest.csv"

    @property
    def oracle_pool(self) -> Path:
        return self.data / "oracle-pool.csv"

    @property
    def stats(self) -> Path:
        return self.data / "stats.txt"

    @property
    def bones_json(self) -> Path:
        return self.data / "bones.json"

    @property
    def bones_sheet(self) -> Path:
        return self.data / "bones-sheet.png"

    # ------------------------------------------------------------------ patches, GAN
    @property
    def patches_root(self) -> Path:
        return self.root / "patches"

    def patches(self, bone: str) -> Path:
        return self.patches_root / bone

    def lesion_stats(self, bone: str) -> Path:
        return self.patches(bone) / "lesion_stats.json"

    def lesion_patches(self, bone: str) -> Path:
        return self.patches(bone) / "lesion" / "patches.npy"

    def gan(self, bone: str) -> Path:
        return self.root / GAN / bone

    def generator(self, bone: str) -> Path:
        return self.gan(bone) / "generator_healthy_to_lesion.pt"

    def gan_checkpoint(self, bone: str) -> Path:
        return self.gan(bone) / "checkpoints" / "last.pt"

    def gan_key(self, bone: str) -> Path:
        """The stage key of the training in the folder (an interrupted one resumes)."""
        return self.gan(bone) / "stage_key.txt"

    # ------------------------------------------------------------------ synthesis, gate
    @property
    def synth_root(self) -> Path:
        return self.root / "synth"

    @staticmethod
    def own_synth(bone: str, seed: int) -> SynthFolder:
        return SynthFolder(GAN, bone, seed)

    @staticmethod
    def transfer_synth(bone: str, generator: str, seed: int) -> SynthFolder:
        return SynthFolder(GAN, bone, seed, generator)

    @staticmethod
    def paste_synth(bone: str, seed: int) -> SynthFolder:
        return SynthFolder(COPY_PASTE, bone, seed)

    def folder(self, synth: SynthFolder) -> Path:
        return self.root / synth.relative

    def synthetic(self, synth: SynthFolder) -> Path:
        """The folder's manifest of synthetic positives."""
        return self.folder(synth) / SYNTHETIC

    def found_synth(self, bone: str) -> list[SynthFolder]:
        """The synthesis folders of `bone` in the run that hold a manifest, by method,
        generator and seed (of any seed: a run may hold earlier seeds' too)."""
        found: list[SynthFolder] = []
        for method in (GAN, COPY_PASTE):
            root = self.synth_root / method
            names = [f.name for f in root.iterdir()] if root.is_dir() else []
            parsed = [SynthFolder.parse(method, bone, name) for name in names]
            found += sorted((f for f in parsed if f is not None and self.synthetic(f).is_file()),
                            key=lambda f: (f.generator, f.seed))
        return found

    def gate(self, bone: str) -> Path:
        return self.root / "gate" / bone

    def realism(self, bone: str) -> Path:
        """The realism measure of the bone's synthesis folders (`boneaug.synth.realism`)."""
        return self.root / "realism" / f"{bone}.json"

    def gated(self, bone: str) -> Path:
        """The synthetic positives the quality gate kept."""
        return self.gate(bone) / "gated.csv"

    def extra_positives(self, source: Extra, bone: str, seed: int, generator: str = ""
                        ) -> Path | None:
        """The manifest a strategy's extra positives come from (`Extra`); `generator`: the
        generator's bone of a transfer."""
        if source is Extra.PASTE:
            return self.synthetic(self.paste_synth(bone, seed))
        if source is Extra.GENERATOR:
            return self.synthetic(self.own_synth(bone, seed))
        if source is Extra.GATED:
            return self.gated(bone)
        if source is Extra.TRANSFER:
            return self.synthetic(self.transfer_synth(bone, generator, seed))
        if source is Extra.POOL:
            return self.oracle_pool
        return None

    # ------------------------------------------------------------------ classifiers
    def classifier(self, level: str, bone: str, condition: str, seed: int) -> Path:
        return self.root / LEVEL_FOLDER[level] / bone / condition / f"seed{seed}"

    @staticmethod
    def classifier_stage(level: str, bone: str, condition: str, seed: int) -> str:
        return f"{LEVEL_FOLDER[level]}:{bone}:{condition}:s{seed}"

    # ------------------------------------------------------------------ evaluation, report
    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation"

    def predictions(self, suffix: str = "") -> Path:
        """A level's test predictions (`suffix`: "" for the first level, `LEVEL_SUFFIX`)."""
        return self.evaluation / f"predictions{suffix}.csv"

    def runs(self, suffix: str = "") -> Path:
        return self.evaluation / f"runs{suffix}.csv"

    @property
    def levels(self) -> Path:
        return self.evaluation / "levels.json"

    @property
    def probes(self) -> Path:
        return self.evaluation / "probe.json"

    @property
    def gates(self) -> Path:
        return self.evaluation / "gate.json"

    @property
    def skipped(self) -> Path:
        return self.evaluation / SKIPPED_FILE

    def results(self, suffix: str = "") -> Path:
        return self.root / f"results{suffix}.csv"

    @property
    def headline(self) -> Path:
        return self.root / "headline.csv"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def figures(self) -> Path:
        return self.root / "figures"
