"""The whole protocol from one config: data -> per-bone GANs -> synthesis -> classifiers ->
evaluation -> report, resumable stage by stage.

Run folder layout (`run_experiment(config, out_dir)`): `boneaug.experiment.paths`, whose
`RunPaths` names every file and folder of a run for the stages here and for the report.

**Stages and their inputs.** A finished stage is recorded in ``stages/`` with a key: the
settings it used and the keys (or content) of what it read. Run again, a stage is skipped
when its key is unchanged and redone when it changed, with everything that read it. So a
finished run can be *extended*: adding strategies, ratios, seeds or bones runs only what
is new, and changing the classifier retrains classifiers without retraining a CycleGAN.
An interrupted stage is redone (the CycleGAN resumes from its last checkpoint).

**Films of a bone.** A bone's positives are its lesion films; its negatives are the normal
films of that bone (`boneaug.data.films`): the bone column, or for films labelled only by
region or not at all, the bones `boneaug.classify.bones` assigns (``assign`` section;
``data.assign: auto`` runs it when the manifest has such films).

**Rarity** is simulated honestly: after the patient-level split, the *training* positives
of each bone are subsampled to `data.prevalence` of its training images; val and test
keep every image. The held-back training positives are real films of training patients:
the oracle's extra positives (phantom and real data alike), never used by another
strategy.

**Evidence about lesions** (`boneaug.experiment.evidence`): before any strategy is
compared, each bone's shortcut probe measures how well a classifier that cannot see a
lesion separates its training positives from its negatives (and the metadata alone);
``matching`` chooses each bone's negatives to match its positives in every split; the
``region`` level compares strategies on lesion-scale regions of the same films. The
headline puts probe, baseline and best strategies side by side.

**Awkward films** cost themselves, never the run: a film that cannot be read is dropped
at the data stage, one on which a stage finds no bone is skipped by that stage; all are
listed in ``evaluation/skipped.csv`` and the report (`boneaug.data.skips`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import shutil
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from boneaug.classify import (
    ClassifierConfig,
    classify,
    format_goal,
    format_table,
    goal_check,
    load_inputs,
    predict,
    summarise,
)
from boneaug.classify.augment import AUGMENTATION
from boneaug.classify.bones import assign_bones, format_bones, write_bones_sheet
from boneaug.classify.model import build_classifier
from boneaug.classify.probe import ProbeResult, format_probe
from boneaug.classify.regions import _survey, classify_regions, region_set
from boneaug.classify.strategies import FOCUS, REFERENCE, TABLE, Extra, Strategy, known_strategy
from boneaug.classify.tiles import score_films
from boneaug.data import Manifest, load_manifest, new_table, read_image, save_manifest
from boneaug.data.films import is_region, normals_of, positives_of
from boneaug.data.manifest import check_manifest
from boneaug.data.matching import apply_matching, format_matching
from boneaug.data.phantom import PhantomConfig, make_phantom, validate_config
from boneaug.data.skips import SKIPPED_FILE, Skips, read_skipped
from boneaug.data.splits import split_manifest
from boneaug.data.stats import describe_manifest
from boneaug.errors import BoneaugError
from boneaug.experiment.config import ExperimentConfig, experiment_config
from boneaug.experiment.evidence import (
    format_headline,
    headline,
    image_probes,
    region_probe,
    verdict,
)
from boneaug.experiment.grid import Grid
from boneaug.experiment.paths import GAN, LEVEL_SUFFIX, RunPaths, SynthFolder
from boneaug.files import check_out_dir, write_json_atomic, write_text_atomic
from boneaug.gan import train_bone_generator
from boneaug.gan.networks import check_patch_size
from boneaug.patches import extract_patches
from boneaug.patches.extract import check_patch_fits
from boneaug.runinfo import write_run_json
from boneaug.synth import synthesize
from boneaug.synth.realism import format_realism, measure_sets

Say = Callable[[str], None]


@dataclass
class Condition:
    """One classifier set-up of one bone (run for every seed)."""

    bone: str
    name: str                  # unique within the bone, e.g. "gan-r3", "gan-transfer-r3-from-tibia"
    strategy: str
    ratio: float | None = None
    generator_bone: str = ""
    extra: str = ""            # the extra-positives manifest, relative to the run folder

    @property
    def kind(self) -> Strategy:
        """The record of its strategy (`boneaug.classify.strategies`)."""
        return known_strategy(self.strategy)


@dataclass
class ExperimentResult:
    run_dir: Path
    summary: pd.DataFrame
    table: str
    report: Path | None
    seconds: float


def stage_key(**parts: Any) -> str:
    """A short digest of what a stage read: its settings and its inputs' keys."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


class Stages:
    """Which stages of a run are finished, and with which inputs: a JSON file per stage in
    ``stages/`` holding the stage's info and its key (`stage_key`)."""

    def __init__(self, run_dir: Path, say: Say) -> None:
        self.paths, self.say = RunPaths(run_dir), say
        self.started = time.time()

    def _saved(self, name: str) -> dict[str, Any] | None:
        path = self.paths.stage_file(name)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, OSError):
            return None  # a damaged marker: the stage is simply redone

    def done(self, name: str, key: str | None = None) -> dict[str, Any] | None:
        """The stage's info if it finished with this key (any key when `key` is None)."""
        saved = self._saved(name)
        if saved is None or (key is not None and saved.get("stage_key") != key):
            return None
        return saved

    def redoing(self, name: str, key: str) -> bool:
        """True when the stage finished earlier, with other inputs."""
        saved = self._saved(name)
        return saved is not None and saved.get("stage_key") != key

    def mark(self, name: str, key: str, info: dict[str, Any]) -> None:
        write_json_atomic(self.paths.stage_file(name), {**info, "stage_key": key})

    def elapsed(self) -> str:
        return _duration(time.time() - self.started)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


# --------------------------------------------------------------------------- run folder


def _open_run(config: ExperimentConfig, out_dir: Path, fresh: bool, say: Say = print) -> None:
    """Make or reopen the run folder; record the config. A changed config is not refused:
    the stages whose inputs it changes are redone (`Stages`)."""
    check_out_dir(out_dir, "experiment")
    wanted = json.loads(json.dumps(_comparable(config.to_dict())))
    saved = RunPaths(out_dir).config
    if fresh and out_dir.exists():
        _check_fresh(config, out_dir)
        shutil.rmtree(out_dir)
    if saved.is_file():
        try:
            have = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
            # through the dataclasses: a setting added since (with its default) is no change
            have = json.loads(json.dumps(_comparable(experiment_config(have, str(saved))
                                                     .to_dict())))
        except (BoneaugError, yaml.YAMLError, UnicodeDecodeError, AttributeError):
            have = {}
        changed = sorted(k for k in set(have) | set(wanted) if have.get(k) != wanted.get(k))
        if changed and have:
            say(f"{out_dir}: the config changed since the last run (section "
                f"{', '.join(changed)}): stages whose inputs changed are redone, the others "
                "reused")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(saved, yaml.safe_dump(wanted, sort_keys=False))


def _comparable(values: dict[str, Any]) -> dict[str, Any]:
    values = dict(values)
    values.pop("source", None)
    return values


# --------------------------------------------------------------------------- data


def _negatives_from(config: ExperimentConfig, bone: str) -> tuple[str, ...]:
    return tuple(config.data.negatives_from.get(bone, []))


def _bone_rows(table: pd.DataFrame, bone: str, negatives_from: tuple[str, ...]) -> pd.Series:
    """The real rows a bone's stages read: its positives and its normal films."""
    return (table["origin"] == "real") & (positives_of(table, bone)
                                          | normals_of(table, bone, negatives_from))


def rows_key(table: pd.DataFrame, bone: str, negatives_from: tuple[str, ...] = ()) -> str:
    """A digest of a bone's rows (ids, files, split, label, boxes, masks): the content
    every stage of the bone reads from the data manifest."""
    rows = table[_bone_rows(table, bone, negatives_from)]
    columns = [c for c in ("image_id", "path", "split", "label", "boxes", "bone",
                           "bone_mask_path", f"{bone}_mask_path") if c in rows.columns]
    return stage_key(rows=rows[columns].astype(str).to_numpy().tolist())


def _phantom_config(config: ExperimentConfig) -> PhantomConfig:
    data = config.data
    try:
        return PhantomConfig(bones=tuple(data.bones), normal=data.normal, lesion=data.lesion,
                             size=data.size, difficulty=data.difficulty, seed=config.seed,
                             distractors=data.distractors, **data.phantom)
    except TypeError as exc:
        raise BoneaugError(f"{config.source or 'config'}: data.phantom: {exc}") from None


def _check_fresh(config: ExperimentConfig, out_dir: Path) -> None:
    """Refuse ``--fresh`` where deleting the run folder would delete an input: the
    manifest, or an image or mask it names, lies inside it."""
    if config.data.source != "manifest":
        return
    source = Path(config.data.manifest or "")
    inputs: list[Path] = [source]
    with contextlib.suppress(BoneaugError):  # preflight has read it; files named if readable
        inputs = load_manifest(source).files()
    inside = [p for p in inputs if out_dir.resolve() in Path(p).resolve().parents]
    if inside:
        raise BoneaugError(f"{out_dir}: --fresh would delete the experiment's own input "
                           f"{inside[0]}; copy it out of the run folder first")


def preflight(config: ExperimentConfig) -> None:
    """What a later stage would refuse, refused before the run folder is made: the patch
    size, the phantom's settings, or the input manifest (every check of `validate`; films
    that cannot be read are skipped later, as ever, unless too many are). The splits'
    classes are checked right after the data stage, before anything is trained."""
    where = config.source or "config"
    check_patch_size(config.patches.size, f"{where}: patches.size")
    if config.data.source == "phantom":
        validate_config(_phantom_config(config))
        if config.patches.size > config.data.size:
            raise BoneaugError(f"{where}: patches.size {config.patches.size} is larger than "
                               f"the phantom's films (data.size {config.data.size})")
        return
    manifest = _load_source(config, RunPaths(Path()), Skips("data"))  # reads; writes nothing
    table = manifest.table
    for bone in config.data.bones:
        lesions = table[positives_of(table, bone) & (table["boxes"].str.len() > 0)]
        check_patch_fits(manifest, lesions.to_dict("records"), bone, config.patches.size,
                         f"{where}: patches.size")


def _check_splits(config: ExperimentConfig, manifest: Manifest) -> None:
    """Every bone's real val and test films hold lesion and normal films: each classifier
    is validated and tested on both (found here, not after the CycleGANs)."""
    table = manifest.table
    real = table["origin"] == "real"
    for bone in config.data.bones:
        of = positives_of(table, bone) | normals_of(table, bone, _negatives_from(config, bone))
        for split in ("val", "test"):
            labels = table.loc[real & of & (table["split"] == split), "label"]
            if labels.nunique() < 2:
                raise BoneaugError(
                    f"{manifest.source}: bone {bone!r} has {int(labels.sum())} lesion and "
                    f"{int((labels == 0).sum())} normal films in the {split} split; every "
                    f"classifier needs both there (more films, or a larger data.{split})")


def _load_source(config: ExperimentConfig, paths: RunPaths, skips: Skips) -> Manifest:
    """The input manifest: rendered (phantom) or the user's; films whose image cannot be
    read are dropped into `skips` (an unusable film costs itself, not the run)."""
    data = config.data
    if data.source == "phantom":
        return load_manifest(make_phantom(paths.phantom, _phantom_config(config)))
    manifest, problems = check_manifest(Path(data.manifest or ""))
    errors = [p for p in problems if p.severity == "error"]
    unreadable = {p.line for p in errors if p.column in ("path", "mask_path")}
    others = [p for p in errors if p.line not in unreadable or p.column not in ("path",
                                                                               "mask_path")]
    if others:
        more = f" (and {len(others) - 1} more)" if len(others) > 1 else ""
        raise BoneaugError(f"{others[0]}{more}")
    if unreadable:
        table = manifest.table
        drop = [line - 2 for line in sorted(unreadable)]
        for p in errors:
            if p.line in unreadable and p.column in ("path", "mask_path"):
                pos = p.line - 2
                skips.add(str(table.at[pos, "image_id"]), str(table.at[pos, "path"]),
                          p.message.split(": ", 1)[-1])
        skips.check(len(table), "films of the manifest")
        manifest = Manifest(table.drop(index=drop).reset_index(drop=True), manifest.root,
                            manifest.source)
    return manifest


def _prepare_data(config: ExperimentConfig, paths: RunPaths, say: Say) -> dict[str, Any]:
    data = config.data
    skips = Skips("data")
    manifest = _load_source(config, paths, skips)
    needs_split = data.source == "phantom" or not (manifest.table["split"] != "").any()
    if needs_split:
        result = split_manifest(manifest, val=data.val, test=data.test, seed=config.seed,
                                group_by=data.group_by)
        for warning in result.warnings:
            say(f"warning: {warning}")
        manifest = result.manifest
    table = manifest.table
    if (table["origin"] == "synthetic").any():
        raise BoneaugError(f"{manifest.source}: the experiment's input must hold real images "
                           "only (its synthetic positives are made by the experiment)")
    paths.data.mkdir(exist_ok=True)
    info: dict[str, Any] = {}
    open_labels = int(table["bone"].map(is_region).sum())
    if data.assign == "always" or (data.assign == "auto" and open_labels):
        assigned = assign_bones(manifest, config.assign, cache_dir=paths.cache)
        for row in assigned.skipped.rows:
            skips.add(row["image_id"], row["path"], row["reason"])
        manifest = assigned.manifest
        # a film that cannot be read is of no use to any later stage
        manifest.table = manifest.table[~manifest.table["image_id"].isin(
            assigned.skipped.ids())].reset_index(drop=True)
        table = manifest.table
        write_json_atomic(paths.bones_json, assigned.to_dict())
        write_bones_sheet(manifest, paths.bones_sheet, seed=config.seed)
        info["assign"] = assigned.to_dict()
        say(format_bones(assigned))
        for warning in assigned.warnings:
            say(f"warning: {warning}")
    if config.matching.columns:
        # before rarity: the negatives are matched to every positive of the bone, so they
        # stay matched in distribution to the positives that rarity keeps
        negatives = {b: _negatives_from(config, b) for b in data.bones}
        matched, matches = apply_matching(table, list(data.bones), config.matching,
                                          config.seed, negatives)
        manifest = Manifest(matched, manifest.root, manifest.source)
        table = manifest.table
        info["matching"] = [m.to_dict() for m in matches]
        say(format_matching(matches))
    held_back: list = []
    counts: dict[str, dict[str, int]] = {}
    in_train = (table["split"] == "train") & (table["origin"] == "real")
    for bone in data.bones:
        positives = table.index[in_train & positives_of(table, bone)]
        negatives = table.index[in_train & normals_of(table, bone, _negatives_from(config,
                                                                                  bone))]
        if len(positives) == 0 or len(negatives) == 0:
            hint = ("; its normals are labelled by region: let `assign` find them" if
                    data.assign == "never" and open_labels else "")
            raise BoneaugError(f"{manifest.source}: bone {bone!r} has {len(positives)} lesion "
                               f"and {len(negatives)} normal train images; it needs both{hint}")
        keep = len(positives)
        if data.prevalence is not None:
            share = data.prevalence / (1 - data.prevalence)
            keep = min(len(positives), max(2, int(round(share * len(negatives)))))
        # one generator per bone: adding a bone leaves the others' rarity as it was
        rng = np.random.default_rng([config.seed, 11, zlib.crc32(bone.encode("utf-8"))])
        kept = set(rng.permutation(positives)[:keep])
        held_back += [i for i in positives if i not in kept]
        counts[bone] = {"train_pos": int(keep), "train_neg": int(len(negatives)),
                        "held_back": int(len(positives) - keep)}
    pool = Manifest(table.loc[held_back].reset_index(drop=True), root=manifest.root)
    main = Manifest(table.drop(index=held_back).reset_index(drop=True), root=manifest.root)
    save_manifest(main, paths.manifest)
    save_manifest(pool, paths.oracle_pool)
    skips.write(paths.data)
    stats = describe_manifest(main)
    write_text_atomic(paths.stats, stats + "\n")
    return {**info, "counts": counts, "images": len(main), "held_back": len(held_back),
            "skipped": len(skips)}


# --------------------------------------------------------------------------- conditions


def conditions(config: ExperimentConfig) -> list[Condition]:
    """Every (bone, condition) the config asks for, in a fixed order."""
    proto = config.protocol
    return [c for bone in proto.bones or config.data.bones for strategy in proto.strategies
            for c in _conditions_of(config, bone, known_strategy(strategy))]


def _conditions_of(config: ExperimentConfig, bone: str, kind: Strategy) -> list[Condition]:
    """One strategy's conditions of `bone`: one per ratio it runs at (see `Ratio`), and
    for a transfer strategy one per generator bone."""
    proto = config.protocol
    ratios: list[float | None] = [None]
    if kind.uses_ratio:
        ratios = (list(proto.ratios) if kind.sweepable and kind.name in proto.sweep
                  else [proto.main_ratio])
    generators = [bone if kind.needs_generator else ""]
    if kind.transfer:
        generators = [g for g in proto.transfer_from or config.data.bones if g != bone]
    where = RunPaths(Path())  # relative to the run folder
    out = []
    for ratio in ratios:
        for generator in generators:
            extra = where.extra_positives(kind.extra, bone, config.seed, generator)
            out.append(Condition(bone, kind.condition_name(ratio, generator), kind.name, ratio,
                                 generator, "" if extra is None else where.relative(extra)))
    return out


def _realism_name(folder: SynthFolder) -> str:
    """How a synthesis folder is named in the realism table: its strategy's name (the
    bone's own generator: `gan`; another bone's: `gan-transfer from <bone>`)."""
    if folder.method != GAN:  # copy-paste: its method's name
        return folder.method
    if folder.generator:
        return f"{next(s for s in TABLE if s.transfer).name} from {folder.generator}"
    return FOCUS.name


def _max_ratio(all_conditions: list[Condition], chosen: Callable[[Strategy], bool]) -> float:
    ratios = [c.ratio for c in all_conditions if chosen(c.kind) and c.ratio is not None]
    return max(ratios) if ratios else 0.0


# --------------------------------------------------------------------------- quality gate


def lesion_change(image: np.ndarray, reference: np.ndarray, box: list[float]
                  ) -> tuple[float, float]:
    """Mean |image - reference| and mean (image - reference) inside the lesion box
    (negative: the lesion is darker); (0, 0) for an empty box."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    diff = image[y0:y1, x0:x1] - reference[y0:y1, x0:x1]
    return (float(np.abs(diff).mean()), float(diff.mean())) if diff.size else (0.0, 0.0)


def _gate(config: ExperimentConfig, paths: RunPaths, bone: str, manifest: Manifest) -> dict:
    """Score the bone's synthetic positives with the seed-0 real-data (baseline) classifier
    and by their visible change; keep those above both thresholds (``gate/<bone>/``)."""
    model_file = paths.classifier("image", bone, REFERENCE.name, 0) / "model.pt"
    saved = torch.load(model_file, map_location="cpu", weights_only=True)
    cls_config = ClassifierConfig.from_dict(saved["config"])
    model = build_classifier(cls_config.arch, cls_config.width, cls_config.pool,
                             cls_config.members)
    model.load_state_dict(saved["state_dict"])
    scored_folder = paths.own_synth(bone, config.seed)
    synthetic = load_manifest(paths.synthetic(scored_folder))
    table = manifest.table
    val_normals = table.index[(table["split"] == "val") & (table["origin"] == "real")
                              & normals_of(table, bone, _negatives_from(config, bone))]

    def scores(source: Manifest, rows: list | None) -> np.ndarray:
        if cls_config.crop == "tiles":  # a film scores as its highest tile, as when tested
            side_rel = float(saved["selection"]["tiles"]["side_rel"])
            every = source.table.index.tolist() if rows is None else rows
            sites = _survey(manifest, bone, config.regions, paths.cache)
            scored, ids = score_films(model, source, every, bone, side_rel, cls_config,
                                      sites, paths.cache)
            if len(ids) != len(every):
                raise BoneaugError(f"{source.source}: {len(every) - len(ids)} film(s) could "
                                   "not be read for the quality gate")
            return scored
        return predict(model, load_inputs(source, rows, cls_config.size, cls_config.crop,
                                          paths.cache, aspect=cls_config.aspect),
                       cls_config)

    syn_scores = scores(synthetic, None)
    normal_scores = scores(manifest, list(val_normals))
    gate = config.protocol.gate
    threshold = float(np.quantile(normal_scores, gate.normal_quantile))
    measured = []
    for row in synthetic.table.itertuples():
        provenance = json.loads(row.provenance)
        measured.append(lesion_change(read_image(synthetic.resolve(row.path)),
                                      read_image(Path(provenance["source_path"])),
                                      provenance["lesion_box"]))
    changes = np.asarray([m[0] for m in measured])
    signed = np.asarray([m[1] for m in measured])
    direction_ok = {"any": np.ones(len(signed), bool), "darker": signed < 0,
                    "brighter": signed > 0}[gate.direction]
    keep = (syn_scores >= threshold) & (changes >= gate.min_change) & direction_ok
    out = paths.gate(bone)
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"image_id": synthetic.table["image_id"], "score": syn_scores,
                  "change": changes, "signed_change": signed,
                  "kept": keep.astype(int)}).to_csv(out / "scores.csv", index=False)
    kept = Manifest(new_table(synthetic.table[keep].to_dict("records")), root=synthetic.root)
    save_manifest(kept, paths.gated(bone))
    return {"bone": bone, "threshold": threshold, "normal_quantile": gate.normal_quantile,
            "min_change": gate.min_change, "scored": int(len(keep)), "kept": int(keep.sum()),
            "dropped": int(len(keep) - keep.sum()),
            "dropped_by_score": int((syn_scores < threshold).sum()),
            "dropped_by_change": int((changes < gate.min_change).sum()),
            "direction": gate.direction, "dropped_by_direction": int((~direction_ok).sum()),
            "source": scored_folder.relative}


# --------------------------------------------------------------------------- the run


class _Run:
    """One experiment run: its config, folder, stage records and what the stages made.

    Each stage method computes its key from its settings and its inputs' keys, skips
    itself when recorded with that key, and records itself when done (`Stages`).
    """

    def __init__(self, config: ExperimentConfig, run_dir: Path, say: Say, progress: bool
                 ) -> None:
        self.config, self.say, self.progress = config, say, progress
        self.paths = RunPaths(run_dir)
        self.stages = Stages(run_dir, say)
        self.conditions = conditions(config)
        self.keys: dict[str, str] = {}     # stage or output folder -> its key
        self.manifest: Manifest | None = None
        self.counts: dict[str, dict[str, int]] = {}
        self.probes: list[dict[str, Any]] = []   # ProbeResult.to_dict() of every bone

    def step(self, text: str) -> None:
        self.say(f"[{self.stages.elapsed()}] {text}")

    def _stage(self, name: str, key: str) -> dict[str, Any] | None:
        """The recorded info when the stage is done with `key`; says when it is redone."""
        info = self.stages.done(name, key)
        if info is None and self.stages.redoing(name, key):
            self.step(f"{name}: its inputs changed since the last run; redoing it")
        return info

    # 1. data
    def data(self) -> None:
        config = self.config
        key = stage_key(data=asdict(config.data), assign=config.assign.to_dict(),
                        matching=config.matching.to_dict(), seed=config.seed)
        info = self._stage("data", key)
        if info is None:
            info = _prepare_data(config, self.paths, self.say)
            self.stages.mark("data", key, info)
            self.step(f"data: {info['images']} images; per bone train positives kept / held "
                      "back: " + ", ".join(f"{b} {c['train_pos']}/{c['held_back']}"
                                           for b, c in info["counts"].items())
                      + (f"; {info['skipped']} film(s) skipped (data/skipped.csv)"
                         if info.get("skipped") else ""))
        self.counts = info["counts"]
        self.manifest = load_manifest(self.paths.manifest)
        _check_splits(config, self.manifest)
        table = self.manifest.table
        for bone in config.data.bones:
            self.keys[f"rows:{bone}"] = rows_key(table, bone, _negatives_from(config, bone))
        pool = load_manifest(self.paths.oracle_pool)
        self.keys[self.paths.relative(self.paths.oracle_pool)] = stage_key(
            pool=pool.table[["image_id", "bone", "boxes"]].astype(str).to_numpy().tolist())
        for bone in config.data.bones:  # a bone's probe reads only its own held-back films
            self.keys[f"pool:{bone}"] = stage_key(pool=pool.table.loc[
                pool.table["bone"] == bone, ["image_id", "path", "boxes"]].astype(str)
                .to_numpy().tolist())
        if any(c.kind.upper_bound for c in self.conditions):
            need = _max_ratio(self.conditions, lambda k: k.upper_bound)
            for bone, c in self.counts.items():
                if math.ceil(need * c["train_pos"]) > c["held_back"]:
                    raise BoneaugError(
                        f"{config.source or 'config'}: the oracle at ratio {need:g} needs "
                        f"{math.ceil(need * c['train_pos'])} held-back real {bone} positives, "
                        f"the data has {c['held_back']}; lower the oracle's ratios"
                        + (" or raise data.lesion" if config.data.source == "phantom" else
                           " or data.prevalence"))

    # 1b. the shortcut probes: is a comparison of this bone about lesions at all?
    def probe(self, bone: str) -> None:
        config = self.config
        if not config.probe.enabled:
            return
        levels = config.protocol.levels
        key = stage_key(probe=asdict(config.probe), rows=self.keys[f"rows:{bone}"],
                        pool=self.keys[f"pool:{bone}"], matched=bool(config.matching.columns),
                        n_boot=config.protocol.n_boot,
                        regions=config.regions.cut_settings() if "region" in levels else None,
                        seed=config.seed)
        info = self._stage(f"probe:{bone}", key)
        if info is None:
            assert self.manifest is not None
            pool = load_manifest(self.paths.oracle_pool)
            settings = dict(side=config.probe.side, folds=config.probe.folds, seed=config.seed,
                            n_boot=config.protocol.n_boot)
            results, problems = [], []
            # too few films to measure is a finding to report, not a reason to stop
            try:
                results += image_probes(self.manifest, pool, bone,
                                        negatives_from=_negatives_from(config, bone),
                                        matched=bool(config.matching.columns), **settings)
            except BoneaugError as exc:
                problems.append(str(exc))
            if "region" in levels:
                films = Manifest(pd.concat([self.manifest.table, pool.table],
                                           ignore_index=True), root=self.manifest.root)
                table = films.table
                train = (table["split"] == "train") & (table["origin"] == "real")
                rows = table.index[train & (positives_of(table, bone) | normals_of(
                    table, bone, _negatives_from(config, bone)))].tolist()
                try:
                    regions = region_set(films, rows, bone, config.regions, config.seed)
                    results.append(region_probe(regions, bone, **settings))
                except BoneaugError as exc:
                    problems.append(str(exc))
            info = {"results": [r.to_dict() for r in results], "problems": problems}
            self.stages.mark(f"probe:{bone}", key, info)
            if results:
                self.step("shortcut probe " + bone + ":\n" + format_probe(
                    [ProbeResult.from_dict(r) for r in info["results"]]))
            for problem in problems:
                self.step(f"warning: shortcut probe {bone} not measured: {problem}")
        self.probes += info["results"]

    # 2. per-bone patches and CycleGAN
    def generator_bones(self) -> set[str]:
        return {c.generator_bone for c in self.conditions if c.kind.needs_generator}

    def patches(self, bone: str) -> None:
        config = self.config
        key = stage_key(patches=asdict(config.patches), seed=config.seed,
                        rows=self.keys[f"rows:{bone}"])
        self.keys[f"patches:{bone}"] = key
        if self._stage(f"patches:{bone}", key) is not None:
            return
        assert self.manifest is not None
        made = extract_patches(
            self.manifest, bone, config.patches.size, self.paths.patches_root,
            per_lesion=config.patches.per_lesion,
            healthy_per_image=config.patches.healthy_per_image,
            context=config.patches.context, seed=config.seed,
            negatives_from=_negatives_from(config, bone), progress=False)
        self.stages.mark(f"patches:{bone}", key, {
            "healthy": made.n_healthy, "lesion": made.n_lesion, "lesions": made.n_lesion_boxes,
            "skipped": len(made.skipped)})
        self.step(f"patches {bone}: {made.n_healthy} healthy, {made.n_lesion} lesion "
                  f"(from {made.n_lesion_boxes} real lesions)"
                  + (f"; {made.skipped.summary()}" if len(made.skipped) else ""))

    def gan(self, bone: str) -> None:
        config = self.config
        key = stage_key(gan=config.gan.to_dict(), patches=self.keys[f"patches:{bone}"])
        self.keys[f"gan:{bone}"] = key
        if self._stage(f"gan:{bone}", key) is not None:
            return
        gan_dir = self.paths.gan(bone)
        key_file = self.paths.gan_key(bone)
        # an interrupted training of the same inputs resumes; anything else starts afresh
        resume = (self.paths.gan_checkpoint(bone).is_file() and key_file.is_file()
                  and key_file.read_text(encoding="utf-8").strip() == key)
        if not resume and gan_dir.exists():
            shutil.rmtree(gan_dir)
        gan_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(key_file, key + "\n")
        self.step(f"CycleGAN {bone}: {config.gan.iterations} iterations "
                  f"({config.gan.n_blocks} blocks, {config.gan.ngf} filters)"
                  + (" - resuming" if resume else ""))
        def report(done: int, total: int, rate: float) -> None:
            self.step(f"CycleGAN {bone}: {done}/{total} iterations ({rate:.1f} it/s; about "
                      f"{_duration((total - done) / max(rate, 1e-9))} left)")

        trained = train_bone_generator(self.paths.patches(bone), config.gan, gan_dir,
                                       resume=resume, progress=self.progress, report=report)
        if not trained.completed:
            raise KeyboardInterrupt
        self.stages.mark(f"gan:{bone}", key, {"iterations": trained.iterations,
                                              "seconds": trained.seconds})
        self.step(f"CycleGAN {bone} done: {trained.iterations_per_second:.1f} it/s")

    # 3. synthesis
    def synthesis_jobs(self, bone: str) -> list[tuple[SynthFolder, str, float, dict[str, Any]]]:
        """(folder, generator bone ('' = copy-paste), ratio, extra arguments)."""
        config, seed, paths = self.config, self.config.seed, self.paths
        gated = any(c.kind.gated for c in self.conditions)  # the gate keeps about half
        gan_ratio = max(_max_ratio(self.conditions, lambda k: k.extra is Extra.GENERATOR),
                        2 * config.protocol.main_ratio if gated else 0.0)
        jobs: list[tuple[SynthFolder, str, float, dict[str, Any]]] = []
        if gan_ratio > 0 and bone in self.generator_bones():
            jobs.append((paths.own_synth(bone, seed), bone, gan_ratio, {}))
        for c in self.conditions:
            if c.bone == bone and c.kind.transfer:
                stats = (paths.lesion_stats(bone)
                         if config.synthesis.transfer_lesion_stats == "target" else None)
                jobs.append((paths.transfer_synth(bone, c.generator_bone, seed),
                             c.generator_bone, c.ratio or 0.0, {"lesion_stats": stats}))
        pasted = _max_ratio(self.conditions, lambda k: k.extra is Extra.PASTE)
        if any(c.kind.extra is Extra.PASTE for c in self.conditions):
            jobs.append((paths.paste_synth(bone, seed), "", pasted, {}))
        return jobs

    def synthesis(self, bone: str) -> None:
        config = self.config
        synth_conf = config.synthesis
        for folder, gbone, ratio, extra in self.synthesis_jobs(bone):
            count = max(1, math.ceil(ratio * self.counts[bone]["train_pos"]))
            source = self.keys[f"gan:{gbone}"] if gbone else self.keys[f"patches:{bone}"]
            key = stage_key(synthesis=asdict(synth_conf), count=count, seed=config.seed,
                            source=source, rows=self.keys[f"rows:{bone}"],
                            stats=(self.keys[f"patches:{bone}"] if extra.get("lesion_stats")
                                   else ""))
            self.keys[folder.relative] = key
            if self._stage(folder.stage, key) is not None:
                continue
            assert self.manifest is not None
            common = dict(count=count, seed=config.seed, batch_size=synth_conf.batch_size,
                          feather=synth_conf.feather, margin=synth_conf.margin,
                          negatives_from=_negatives_from(config, bone),
                          device=config.gan.device, progress=False)
            out = self.paths.folder(folder)
            if gbone:
                result = synthesize(self.paths.generator(gbone), self.manifest, bone, out,
                                    **common, **extra)
            else:
                result = synthesize(None, self.manifest, bone, out, **common,
                                    copy_paste=self.paths.patches(bone))
            self.stages.mark(folder.stage, key, {"images": result.images,
                                                 "seam_ratio_median": result.seam_ratio_median})
            self.step(f"{folder.stage}: {result.images} images (median seam ratio "
                      f"{result.seam_ratio_median:.2f})"
                      + "".join(f"; {w}" for w in result.warnings))

    # 3b. realism: how far each synthesis of the bone lies from held-out real lesions
    def realism(self, bone: str) -> None:
        config = self.config
        folders = [job[0] for job in self.synthesis_jobs(bone)]
        if not config.realism.enabled or not folders or f"patches:{bone}" not in self.keys:
            return
        key = stage_key(realism=asdict(config.realism), seed=config.seed,
                        rows=self.keys[f"rows:{bone}"], patches=self.keys[f"patches:{bone}"],
                        sets={f.relative: self.keys[f.relative] for f in folders})
        if self._stage(f"realism:{bone}", key) is not None:
            return
        assert self.manifest is not None
        sets = [(_realism_name(f), f.relative, self.paths.synthetic(f)) for f in folders]
        doc = measure_sets(self.manifest, bone, self.paths.patches(bone), sets, config.realism,
                           config.seed)
        write_json_atomic(self.paths.realism(bone), doc)
        self.stages.mark(f"realism:{bone}", key, {"problem": doc.get("problem", "")})
        self.step(format_realism(doc))

    # 4. classifiers; the baselines first (the quality gate scores with them)
    def gate_key(self, bone: str) -> str:
        config = self.config
        key = stage_key(gate=asdict(config.protocol.gate),
                        synth=self.keys[self.paths.own_synth(bone, config.seed).relative],
                        baseline=self.keys[RunPaths.classifier_stage("image", bone,
                                                                     REFERENCE.name, 0)])
        self.keys[self.paths.relative(self.paths.gate(bone))] = key
        return key

    def gate(self, bone: str) -> None:
        """Run the quality gate of `bone` unless it is done (its baseline must be)."""
        key = self.keys[self.paths.relative(self.paths.gate(bone))]
        if self._stage(f"gate:{bone}", key) is not None:
            return
        assert self.manifest is not None
        gate_info = _gate(self.config, self.paths, bone, self.manifest)
        self.stages.mark(f"gate:{bone}", key, gate_info)
        self.step(f"quality gate {bone}: kept {gate_info['kept']} of {gate_info['scored']} "
                  f"synthetic positives (threshold score {gate_info['threshold']:.3f}, "
                  f"min change {gate_info['min_change']})")

    def extra_key(self, c: Condition) -> str:
        """The key of the manifest a condition's extra positives come from: the pool's
        own, else that of the folder that holds it (a synthesis or the gate)."""
        if not c.extra:
            return ""
        return self.keys[c.extra if c.kind.upper_bound else str(Path(c.extra).parent)]

    def level_conditions(self, level: str) -> list[Condition]:
        """The conditions a level runs: the quality gate scores films with the image-level
        baseline, so gan-gated is an image-level condition only."""
        return [c for c in self.conditions if level == "image" or not c.kind.image_level_only]

    def classifier_keys(self) -> list[tuple[str, Condition, int, str, str]]:
        """(level, condition, seed, stage name, key) of every classifier, the references
        first and the gated last: the gate's key is that of its reference."""
        config = self.config
        keyed = []
        for level in config.protocol.levels:
            order = sorted(self.level_conditions(level),
                           key=lambda c: (not c.kind.reference, c.kind.gated))
            for c in order:
                if c.kind.gated:
                    self.gate_key(c.bone)
                # a region classifier's budget is in its classifier settings: regions.epochs
                # set to the classifier's own leaves its key as it was
                classifier = config.classifier.to_dict()
                if level == "region":  # the region level's own budget and members
                    classifier = config.regions.classifier(config.classifier).to_dict()
                    classifier["size"] = config.classifier.size  # keys as they were
                    classifier["aspect"] = config.classifier.aspect
                for s in range(config.protocol.seeds):
                    key = stage_key(classifier=classifier,
                                    strategy=c.strategy, ratio=c.ratio, seed=s,
                                    rows=self.keys[f"rows:{c.bone}"],
                                    negatives=_negatives_from(config, c.bone),
                                    extra=self.extra_key(c),
                                    **({"augmentation": AUGMENTATION} if c.kind.augments
                                       else {}),
                                    **({"regions": config.regions.cut_settings()}
                                       if level == "region" or config.classifier.crop == "tiles"
                                       else {}))
                    name = RunPaths.classifier_stage(level, c.bone, c.name, s)
                    self.keys[name] = key
                    keyed.append((level, c, s, name, key))
        return keyed

    def extra_positives(self, c: Condition, seed: int, extras: dict[str, Manifest]
                        ) -> tuple[Manifest | None, float | None]:
        """The extra manifest of a condition (read once) and the ratio to ask of it: a
        gated condition uses as many as the gate kept, up to its ratio."""
        if not c.kind.uses_extra:
            return None, c.ratio
        if c.extra not in extras:
            extras[c.extra] = load_manifest(self.paths.root / c.extra)
        extra, ratio = extras[c.extra], c.ratio
        if c.kind.gated:
            available = int((extra.table["bone"] == c.bone).sum())
            if ratio is not None and available < ratio * self.counts[c.bone]["train_pos"]:
                ratio = None
                if seed == 0:
                    self.step(f"warning: the gate kept {available} synthetic {c.bone} "
                              f"positives, fewer than ratio {c.ratio:g} asks; {c.name} "
                              "uses all it kept" + (" (none: it trains like the "
                                                    "baseline)" if available == 0 else ""))
        return extra, ratio

    def classifiers(self, grid: Grid | None = None) -> None:
        """Train every classifier not yet done. With a `grid` of processes, each trains
        its share (the i-th job of a phase on rank i mod the world size): first every
        classifier that needs no gate, then the gates, then the gated classifiers, each
        phase waiting for the whole of the one before."""
        keyed = self.classifier_keys()
        if grid is None:
            self._train_classifiers(keyed, keyed)
            return
        plain = [job for job in keyed if not job[1].kind.gated]
        gated = [job for job in keyed if job[1].kind.gated]
        self._train_classifiers(keyed, grid.share(plain))
        grid.barrier("classifiers")
        bones = sorted({job[1].bone for job in gated})
        for bone in grid.share(bones):
            self.gate(bone)
        grid.barrier("gates")
        for bone in bones:
            self.gate(bone)  # done: every rank reads the gate
        self._train_classifiers(keyed, grid.share(gated))
        grid.barrier("gated classifiers")

    def _train_classifiers(self, keyed: list[tuple[str, Condition, int, str, str]],
                           jobs: list[tuple[str, Condition, int, str, str]]) -> None:
        config = self.config
        n_cls = len(keyed)
        done_count = sum(1 for *_, name, key in keyed if self.stages.done(name, key))
        durations: list[float] = []
        extras: dict[str, Manifest] = {}
        for level, c, s, name, key in jobs:
            if c.kind.gated:  # after the baselines: `classifier_keys` puts it last
                self.gate(c.bone)
            if self._stage(name, key) is not None:
                continue
            assert self.manifest is not None
            extra, ratio = self.extra_positives(c, s, extras)
            t0 = time.time()
            common = dict(config=config.classifier, bone=c.bone, extra=extra, ratio=ratio,
                          seed=s, cache_dir=self.paths.cache,
                          negatives_from=_negatives_from(config, c.bone))
            folder = self.paths.classifier(level, c.bone, c.name, s)
            if level == "region":
                result = classify_regions(self.manifest, c.strategy, folder,
                                          regions=config.regions, **common)
            else:
                result = classify(self.manifest, c.strategy, folder, regions=config.regions,
                                  **common)
            durations.append(time.time() - t0)
            done_count += 1
            self.stages.mark(name, key, {"test_auc": result.test_auc,
                                         "seconds": durations[-1]})
            still = n_cls - done_count if len(jobs) == n_cls else len(jobs) - len(durations)
            left = still * float(np.mean(durations))
            self.step(f"classifier {done_count}/{n_cls} {c.bone} {c.name}"
                      f"{' (regions)' if level == 'region' else ''} seed {s}: test AUC "
                      f"{result.test_auc:.3f} (epoch {result.best_epoch}, {durations[-1]:.0f} "
                      f"s; about {_duration(left)} left)")

    # 5. evaluation
    def skipped(self) -> pd.DataFrame:
        """Every film a stage skipped: the data stage's and those of each stage folder."""
        paths = self.paths
        folders = [paths.data]
        folders += sorted(paths.patches_root.glob("*"))
        folders += sorted(paths.synth_root.glob("*/*"))
        folders = [f for f in folders if (f / SKIPPED_FILE).is_file()]
        frames = [read_skipped(f).assign(folder=paths.relative(f)) for f in folders]
        if not frames:
            return pd.DataFrame(columns=["stage", "image_id", "path", "reason", "folder"])
        return pd.concat(frames, ignore_index=True)

    def evaluate(self) -> tuple[dict[str, pd.DataFrame], str]:
        """Gather every level's predictions and runs, summarise them and write what the
        report reads; the summaries per level and the terminal's tables."""
        config, paths = self.config, self.paths
        levels = config.protocol.levels
        paths.evaluation.mkdir(exist_ok=True)
        summaries: dict[str, pd.DataFrame] = {}
        tables = []
        for level in levels:
            predictions, runs = _collect(paths, level, self.level_conditions(level),
                                         config.protocol.seeds)
            suffix = LEVEL_SUFFIX[level] if level != levels[0] else ""
            predictions.to_csv(paths.predictions(suffix), index=False)
            runs.to_csv(paths.runs(suffix), index=False)
            summary = summarise(predictions, n_boot=config.protocol.n_boot, seed=config.seed)
            summaries[level] = summary
            table = format_table(summary, "regions" if level == "region" else "images")
            goal = goal_check(predictions, summary, config.protocol.main_ratio)
            if not goal.empty:
                table += (f"\nthe goal at ratio {config.protocol.main_ratio:g} (gan closes >= "
                          "1/2 of the baseline-to-oracle gap and beats oversample and "
                          "copypaste: higher mean AUC with bootstrap p < 0.05 over seeds x "
                          "test images; gan-transfer closes >= 1/3):\n" + format_goal(goal))
            tables.append((f"{level} level:\n" if len(levels) > 1 else "") + table)
        write_json_atomic(paths.levels, {"levels": levels, "files": {
            v: LEVEL_SUFFIX[v] if v != levels[0] else "" for v in levels}})
        write_json_atomic(paths.probes, {"results": self.probes})
        skipped = self.skipped()
        skipped.to_csv(paths.skipped, index=False)
        if len(skipped):
            self.say(f"{len(skipped)} film(s) skipped by a stage (evaluation/skipped.csv); "
                     f"first: {skipped.iloc[0]['image_id']} ({skipped.iloc[0]['stage']}: "
                     f"{skipped.iloc[0]['reason']})")
        gates = [self.stages.done(f"gate:{b}") for b in config.data.bones]
        write_json_atomic(paths.gates, {"bones": [g for g in gates if g]})
        table = "\n".join(tables)
        top = headline(summaries, self.probes)
        # the headline as data too: probe beside baseline and best strategies, with the verdict
        top.assign(verdict=[verdict(r) for _, r in top.iterrows()]).to_csv(
            paths.headline, index=False)
        table += ("\nheadline (mean AUC over seeds; ΔAUC of means and seeds x images "
                  "bootstrap p against the baseline):\n")
        return summaries, table + format_headline(top) + "\n"


def run_experiment(config: ExperimentConfig, out_dir: str | Path, *, say: Say = print,
                   progress: bool = True, fresh: bool = False,
                   report: bool = True) -> ExperimentResult:
    """Run (or resume, or extend) the whole protocol of `config` in `out_dir`; see the
    module doc."""
    started = time.time()
    run_dir = Path(out_dir)
    grid = Grid.from_environment(run_dir)
    if grid is not None:
        with grid.alone():
            return _run_grid(config, run_dir, grid, say, progress, fresh, report, started)
    preflight(config)
    _open_run(config, run_dir, fresh, say)
    write_run_json(run_dir, "experiment", config.to_dict(), config.seed, started,
                   extra={"completed": False})
    run = _Run(config, run_dir, say, progress)
    _announce(run, say)
    for _, items, job in _phases(run):
        for item in items:
            job(item)
    run.classifiers()
    return _finish(run, started, report)


def _announce(run: _Run, say: Say) -> None:
    config = run.config
    levels = config.protocol.levels
    n_cls = sum(len(run.level_conditions(v)) for v in levels) * config.protocol.seeds
    n_bones = len(config.protocol.bones or config.data.bones)
    per_level = " + ".join(f"{len(run.level_conditions(v))} {v}" for v in levels)
    say(f"experiment {config.name!r} -> {run.paths.root}: {n_bones} bone(s), {per_level} "
        f"conditions x {config.protocol.seeds} seed(s) = {n_cls} classifiers")
    if config.note:
        say(config.note.strip())


def _phases(run: _Run) -> list[tuple[str, list[str], Callable[[str], None]]]:
    """The stages before the classifiers, in order: (phase, its jobs, how to run one)."""
    config = run.config
    bones = list(config.data.bones)
    return [
        ("data", ["all"], lambda _: run.data()),
        ("probes", list(config.protocol.bones or bones), run.probe),
        ("patches", bones if any(c.kind.needs_patches for c in run.conditions) else [],
         run.patches),
        ("generators", [b for b in bones if b in run.generator_bones()], run.gan),
        ("synthesis", bones, run.synthesis),
        ("realism", bones, run.realism)]


def _finish(run: _Run, started: float, report: bool, **extra: Any) -> ExperimentResult:
    """Evaluate (cheap: always redone), record the run as complete, write the report."""
    config, run_dir = run.config, run.paths.root
    first = config.protocol.levels[0]
    summaries, table = run.evaluate()
    # run.json first: the report shows its wall time
    write_run_json(run_dir, "experiment", config.to_dict(), config.seed, started,
                   extra={"completed": True, **extra})
    report_path = None
    if report:
        from boneaug.experiment.report import write_report

        report_path = write_report(run_dir, n_boot=config.protocol.n_boot, seed=config.seed,
                                   summary=summaries[first]).html
    return ExperimentResult(run_dir, summaries[first], table, report_path,
                            time.time() - started)


def _run_grid(config: ExperimentConfig, run_dir: Path, grid: Grid, say: Say, progress: bool,
              fresh: bool, report: bool, started: float) -> ExperimentResult:
    """`run_experiment` as one of several processes (torchrun ranks): rank 0 opens the
    run folder; every stage job (a bone's probe, patches, CycleGAN, synthesis; each
    classifier) runs once, on rank (its index mod the world size), as a lone process, and
    the others wait for the phase and read its outputs; rank 0 evaluates and reports. The
    result is the single process's: each job is the same computation with the same seeds
    and thread count."""
    if grid.rank == 0:
        preflight(config)
        _open_run(config, run_dir, fresh, say)
        write_run_json(run_dir, "experiment", config.to_dict(), config.seed, started,
                       extra={"completed": False})
    grid.barrier("open", fresh=fresh)
    run = _Run(config, run_dir, say if grid.rank == 0 else _quiet(say, grid), progress)
    if grid.rank == 0:
        _announce(run, say)
    for phase, items, job in _phases(run):
        for item in grid.share(items):
            job(item)
        grid.barrier(phase)
        for item in items:
            job(item)  # done by now: each rank reads what the phase made
    run.classifiers(grid)
    if grid.rank != 0:
        return ExperimentResult(run_dir, pd.DataFrame(), "", None, time.time() - started)
    return _finish(run, started, report, world_size=grid.world)


def _quiet(say: Say, grid: Grid) -> Say:
    """What a rank other than 0 says: its lines, marked with its rank."""
    return lambda line: say(f"[rank {grid.rank}] {line}")


def _collect(paths: RunPaths, level: str, all_conditions: list[Condition], n_seeds: int
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    frames, runs = [], []
    for c in all_conditions:
        for s in range(n_seeds):
            folder = paths.classifier(level, c.bone, c.name, s)
            pred = pd.read_csv(folder / "predictions.csv", dtype={"image_id": str})
            metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
            keys = {"bone": c.bone, "condition": c.name, "strategy": c.strategy,
                    "ratio": c.ratio if c.ratio is not None else float("nan"),
                    "generator_bone": c.generator_bone, "seed": s}
            frames.append(pred[["image_id", "label", "score"]].assign(**keys))
            runs.append({**keys, "n_train": metrics["n_train"],
                         "n_train_pos_real": metrics["n_train_pos_real"],
                         "n_train_pos_extra": metrics["n_train_pos_extra"],
                         "n_train_neg": metrics["n_train_neg"],
                         "best_epoch": metrics["best_epoch"], "val_auc": metrics["val_auc"],
                         "test_auc": metrics["test"]["auc"],
                         "train_seconds": metrics["train_seconds"]})
    columns = ["bone", "condition", "strategy", "ratio", "generator_bone", "seed", "image_id",
               "label", "score"]
    return pd.concat(frames, ignore_index=True)[columns], pd.DataFrame(runs)
