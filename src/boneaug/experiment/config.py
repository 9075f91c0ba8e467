"""The experiment's YAML config: plain dataclasses, validated with one-line errors.

A config has the sections ``data``, ``assign``, ``matching``, ``probe``, ``patches``,
``gan``, ``synthesis``, ``realism``, ``classifier``, ``regions`` and ``protocol`` plus
``name`` and ``seed``; see configs/phantom-demo.yaml for every key with a comment. Unknown keys are
refused (a typo must not silently run the default).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from boneaug.classify import STRATEGIES, ClassifierConfig
from boneaug.classify.bones import BonesConfig
from boneaug.classify.regions import RegionConfig
from boneaug.classify.strategies import REFERENCE, SWEEPABLE, TABLE
from boneaug.config import check_choice, check_known, check_number, config_error, load_yaml
from boneaug.data.matching import MatchingConfig
from boneaug.errors import BoneaugError
from boneaug.gan import GanConfig
from boneaug.synth.realism import RealismConfig

LEVELS = ("image", "region")


def _take(cls: type, values: Any, where: str) -> Any:
    if values is None:
        return cls()
    if not isinstance(values, dict):
        raise BoneaugError(f"{where}: must be a mapping of settings")
    check_known(cls, values, where)
    for f in fields(cls):
        if f.name in values:
            _check_type(values[f.name], str(f.type), f"{where}.{f.name}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise BoneaugError(f"{where}: {exc}") from None


_SCALARS = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}
_NAMES = {"str": "text", "int": "a whole number", "float": "a number", "bool": "true or false"}


def _check_type(value: Any, annotation: str, where: str) -> None:
    """`value` against a field's annotation (``int``, ``float | None``, ``list[str]``,
    ``dict[str, list[str]]``, ...), so that a YAML typo is one line, never a traceback
    later (a string where a list belongs would otherwise be read letter by letter)."""
    optional = annotation.endswith("| None")
    kind = annotation[: -len("| None")].strip() if optional else annotation.strip()
    if value is None and optional:
        return
    if kind.startswith("list["):
        inner = kind[5:-1]
        if not isinstance(value, list):
            raise BoneaugError(f"{where}: must be a list ([a, b]), got {value!r}")
        for item in value:
            _check_type(item, inner, where)
        return
    if kind.startswith("dict["):
        if not isinstance(value, dict):
            raise BoneaugError(f"{where}: must be a mapping, got {value!r}")
        inner = kind[5:-1].split(",", 1)[1].strip()
        for key, item in value.items():
            _check_type(item, inner, f"{where}.{key}")
        return
    expected = _SCALARS.get(kind)
    if expected is None:
        return  # a nested config: checked by its own dataclass
    bad_bool = isinstance(value, bool) and kind in ("int", "float")
    if bad_bool or not isinstance(value, expected):
        raise BoneaugError(f"{where}: must be {_NAMES[kind]}, got {value!r}")


@dataclass
class DataConfig:
    """Where the radiographs come from and how rarity is simulated."""

    source: str = "phantom"          # "phantom" or "manifest"
    manifest: str | None = None      # source: manifest -> a boneaug manifest (e.g. imported BTXRD)
    bones: list[str] = field(default_factory=lambda: ["femur", "tibia", "humerus"])
    # phantom only (per bone): normal and lesion images, side, difficulty, distractors
    normal: int = 300
    lesion: int = 200
    size: int = 256
    difficulty: float = 0.0          # calibrated: docs/phantom.md, "Classifier calibration"
    distractors: bool = True
    # the patient-level split (when the manifest has none, or always for the phantom)
    val: float = 0.2
    test: float = 0.3
    group_by: str | None = None
    # training positives of each bone subsampled to this share of its training images;
    # val and test keep every image. null keeps every positive.
    prevalence: float | None = 0.03
    # which films show which bone (boneaug.classify.bones): "auto" learns it when the
    # manifest has films labelled only by region or "unknown", "always", or "never"
    assign: str = "auto"
    # bone -> bone/region names whose normals are also normals of that bone: the older
    # "all normals of the limb" rule, which lets a classifier use anatomy as a shortcut
    negatives_from: dict[str, list[str]] = field(default_factory=dict)
    # phantom only: further `PhantomConfig` settings (e.g. films: mixed)
    phantom: dict[str, Any] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        check_choice(where, "source", self.source, ("phantom", "manifest"))
        if self.source == "manifest" and not self.manifest:
            raise BoneaugError(f"{where}.manifest: needed when source is manifest")
        if not self.bones or not all(isinstance(b, str) for b in self.bones):
            raise BoneaugError(f"{where}.bones: a non-empty list of bone names")
        self.bones = [b.strip().lower() for b in self.bones]
        if self.prevalence is not None:
            check_number(where, "prevalence", self.prevalence, 0, 1, bounds="()")
        check_number(where, "val", self.val, 0, 1, bounds="[)")
        check_number(where, "test", self.test, 0, 1, bounds="()")
        if self.val + self.test >= 1:
            raise config_error(where, "val", self.val, f"and test ({self.test}) must add up "
                               "to less than 1")
        for key in ("normal", "lesion", "size"):
            check_number(where, key, getattr(self, key), 1, integer=True)
        check_choice(where, "assign", self.assign, ("auto", "always", "never"))


@dataclass
class PatchesConfig:
    size: int = 64
    per_lesion: int = 24
    healthy_per_image: int = 6
    context: float = 0.5


@dataclass
class SynthesisConfig:
    feather: float = 0.25
    margin: float = 0.5
    batch_size: int = 16
    # the generator bone's lesion sizes place transferred lesions ("generator"), or the
    # target bone's own real lesion statistics ("target")
    transfer_lesion_stats: str = "target"


@dataclass
class GateConfig:
    """The quality gate on synthetic positives (strategy gan-gated)."""

    # keep a synthetic image if the real-data classifier scores it above this quantile
    # of its scores on the real val normals ...
    normal_quantile: float = 0.5
    # ... and its lesion box differs from the source by at least this mean |change|
    min_change: float = 0.01
    # ... and (if not "any") its lesion box got darker ("darker": lytic lesions remove
    # bone) or brighter ("brighter": sclerotic / blastic lesions) on average
    direction: str = "any"


@dataclass
class ProbeConfig:
    """The shortcut probe (`boneaug.classify.probe`): a lesion-blind classifier of the
    bone's training films and one of their metadata, patient-grouped cross-validation."""

    enabled: bool = True
    side: int = 16                   # thumbnail side of the lesion-blind classifier
    folds: int = 5

    def validate(self, where: str) -> None:
        check_number(where, "side", self.side, 4, integer=True)
        check_number(where, "folds", self.folds, 2, integer=True)


@dataclass(frozen=True)
class RealismSection(RealismConfig):
    """The realism measure of every synthesis (`boneaug.synth.realism`, docs/synthesis.md):
    its settings, and whether the experiment measures it."""

    enabled: bool = True


@dataclass
class ProtocolConfig:
    strategies: list[str] = field(default_factory=lambda: list(STRATEGIES))
    ratios: list[float] = field(default_factory=lambda: [1.0, 3.0, 10.0])
    main_ratio: float = 3.0          # the ratio of strategies that are not swept
    sweep: list[str] = field(default_factory=lambda: [s.name for s in TABLE
                                                      if s.swept_by_default])
    seeds: int = 3
    transfer_from: list[str] | None = None   # generator bones for gan-transfer (None: all)
    bones: list[str] | None = None   # the bones to train and test classifiers of (None: all
                                     # of data.bones; the data of all of them is made alike)
    gate: GateConfig = field(default_factory=GateConfig)
    n_boot: int = 2000
    # what a classifier sees: "image" (the whole film: the bone's crop) and/or "region"
    # (lesion-scale regions, tested within the same films: film style cannot win)
    levels: list[str] = field(default_factory=lambda: ["image"])

    def validate(self, where: str) -> None:
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown:
            raise BoneaugError(f"{where}.strategies: unknown {unknown[0]!r} (known: "
                               f"{', '.join(STRATEGIES)})")
        if REFERENCE.name not in self.strategies:
            raise BoneaugError(f"{where}.strategies: must include {REFERENCE.name} (every "
                               "test is against it)")
        bad_sweep = [s for s in self.sweep if s not in SWEEPABLE]
        if bad_sweep:
            raise BoneaugError(f"{where}.sweep: {bad_sweep[0]!r} has no ratio (sweepable: "
                               f"{', '.join(SWEEPABLE)})")
        for r in self.ratios:
            check_number(where, "ratios", r, 0, bounds="()")
        check_number(where, "main_ratio", self.main_ratio, 0, bounds="()")
        check_number(where, "seeds", self.seeds, 1, integer=True)
        bad_level = [v for v in self.levels if v not in LEVELS]
        if bad_level or not self.levels:
            raise BoneaugError(f"{where}.levels: a non-empty list of {', '.join(LEVELS)}, "
                               f"got {self.levels!r}")


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    patches: PatchesConfig = field(default_factory=PatchesConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)
    realism: RealismSection = field(default_factory=RealismSection)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    assign: BonesConfig = field(default_factory=BonesConfig)
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    regions: RegionConfig = field(default_factory=RegionConfig)
    note: str = ""                   # printed at the start (e.g. "smaller than the benchmark")
    source: str = ""                 # the YAML file it came from

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["gan"] = self.gan.to_dict()
        return out


def experiment_config(values: dict[str, Any], where: str = "config") -> ExperimentConfig:
    """Build and validate an `ExperimentConfig` from a YAML mapping."""
    known = {f.name for f in fields(ExperimentConfig)} - {"source"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise BoneaugError(f"{where}: unknown section {unknown[0]!r} (known: "
                           f"{', '.join(sorted(known))})")
    data = _take(DataConfig, values.get("data"), f"{where}: data")
    data.validate(f"{where}: data")
    protocol_values = dict(values.get("protocol") or {})
    gate = _take(GateConfig, protocol_values.pop("gate", None), f"{where}: protocol.gate")
    protocol = _take(ProtocolConfig, protocol_values, f"{where}: protocol")
    protocol.gate = gate
    check_choice(f"{where}: protocol.gate", "direction", gate.direction,
                 ("any", "darker", "brighter"))
    check_number(f"{where}: protocol.gate", "normal_quantile", gate.normal_quantile, 0, 1)
    protocol.validate(f"{where}: protocol")
    outside = [b for b in (protocol.bones or []) if b not in data.bones]
    if outside:
        raise BoneaugError(f"{where}: protocol.bones: {outside[0]!r} is not in data.bones")
    gan_values = values.get("gan") or {}
    if not isinstance(gan_values, dict):
        raise BoneaugError(f"{where}: gan must be a mapping of settings")
    classifier_values = values.get("classifier") or {}
    if not isinstance(classifier_values, dict):
        raise BoneaugError(f"{where}: classifier must be a mapping of settings")
    seed = values.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):  # top level: "<file>: seed"
        raise BoneaugError(f"{where}: seed: must be an integer (got {seed!r})")
    matching = _take(MatchingConfig, values.get("matching"), f"{where}: matching")
    matching.validate(f"{where}: matching")
    probe = _take(ProbeConfig, values.get("probe"), f"{where}: probe")
    probe.validate(f"{where}: probe")
    regions = _take(RegionConfig, values.get("regions"), f"{where}: regions")
    regions.validate(f"{where}: regions")
    realism = _take(RealismSection, values.get("realism"), f"{where}: realism")
    realism.validate(f"{where}: realism")
    classifier = ClassifierConfig.from_dict(classifier_values, f"{where}: classifier")
    # the region classifiers' own members, checked against the classifier they extend
    regions.classifier(classifier).validate(f"{where}: regions")
    return ExperimentConfig(
        name=str(values.get("name", "experiment")), seed=seed, data=data,
        patches=_take(PatchesConfig, values.get("patches"), f"{where}: patches"),
        gan=GanConfig.from_dict({"seed": seed, **gan_values}, f"{where}: gan"),
        synthesis=_take(SynthesisConfig, values.get("synthesis"), f"{where}: synthesis"),
        realism=realism,
        classifier=classifier, protocol=protocol,
        assign=_assign(values.get("assign"), seed, f"{where}: assign"),
        matching=matching, probe=probe, regions=regions, note=str(values.get("note", "")))


def _assign(values: Any, seed: int, where: str) -> BonesConfig:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise BoneaugError(f"{where}: must be a mapping of settings")
    for f in fields(BonesConfig):
        if f.name in values:
            _check_type(values[f.name], str(f.type), f"{where}.{f.name}")
    return BonesConfig.from_dict({"seed": seed, **values}, where)


def load_experiment_config(path: str | Path, overrides: dict[str, Any] | None = None
                           ) -> ExperimentConfig:
    """Read a YAML config; `overrides` are dotted keys (``protocol.seeds=1``)."""
    values = load_yaml(path)
    for key, value in (overrides or {}).items():
        node = values
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise BoneaugError(f"--set {key}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    config = experiment_config(values, str(path))
    config.source = str(path)
    return config
