"""The whole protocol from one config: data -> per-bone GANs -> synthesis -> classifiers ->
evaluation -> report, resumable stage by stage.

Run folder layout (`run_experiment(config, out_dir)`):

```
config.yaml  run.json  stages/<stage>.json        the config, provenance, finished stages
phantom/                                          rendered radiographs (phantom source)
data/manifest.csv  data/oracle-pool.csv           the split, rarity-subsampled manifest and
data/stats.txt                                    the held-back real train positives
patches/<bone>/   gan/<bone>/                     per-bone patch domains and CycleGAN
synth/gan/<bone>-s<seed>/                         synthetic positives of the bone's generator
synth/gan/<bone>-from-<g>-s<seed>/                ... of bone g's generator (transfer)
synth/copypaste/<bone>-s<seed>/                   real lesions pasted (copy-paste)
gate/<bone>/                                      quality-gate scores and the kept rows
cls/<bone>/<condition>/seed<k>/                   one classifier (`boneaug.classify.classify`)
evaluation/predictions.csv runs.csv gate.json     every test prediction, every run
results.csv  report.html                          the report
```

A stage that finished is recorded in ``stages/`` and not redone when the same command runs
again; an interrupted one is redone (the CycleGAN resumes from its last checkpoint). The
config of a run cannot change under it: a different config is refused with one line.

Rarity is simulated honestly: after the patient-level split, the *training* positives of
each bone are subsampled to `data.prevalence` of its training images; val and test keep
every image. The held-back training positives are the oracle's extra real positives
(phantom only), and are never used by another strategy.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from boneaug.classify import (
    USES_EXTRA,
    ClassifierConfig,
    classify,
    format_goal,
    format_table,
    goal_check,
    load_inputs,
    predict,
    summarise,
)
from boneaug.classify.model import build_classifier
from boneaug.data import Manifest, load_manifest, new_table, read_image, save_manifest
from boneaug.data.files import check_out_dir, write_json_atomic, write_text_atomic
from boneaug.data.phantom import PhantomConfig, make_phantom
from boneaug.data.runinfo import write_run_json
from boneaug.data.splits import split_manifest
from boneaug.data.stats import describe_manifest
from boneaug.errors import BoneaugError
from boneaug.experiment.config import ExperimentConfig, experiment_config
from boneaug.gan import train_cyclegan
from boneaug.patches import extract_patches, load_domains
from boneaug.synth import synthesize
from boneaug.synth.copypaste import copy_paste_translator

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


@dataclass
class ExperimentResult:
    run_dir: Path
    summary: pd.DataFrame
    table: str
    report: Path | None
    seconds: float


def _ratio_name(ratio: float) -> str:
    return f"r{ratio:g}"


def _stage_file(run_dir: Path, name: str) -> Path:
    return run_dir / "stages" / (re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + ".json")


class Stages:
    """Which stages of a run are finished; each is a small JSON file in ``stages/``."""

    def __init__(self, run_dir: Path, say: Say) -> None:
        self.run_dir, self.say = run_dir, say
        self.started = time.time()

    def done(self, name: str) -> dict[str, Any] | None:
        path = _stage_file(self.run_dir, name)
        if not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def mark(self, name: str, info: dict[str, Any]) -> None:
        write_json_atomic(_stage_file(self.run_dir, name), info)

    def elapsed(self) -> str:
        return _duration(time.time() - self.started)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


# --------------------------------------------------------------------------- run folder


def _open_run(config: ExperimentConfig, out_dir: Path, fresh: bool) -> None:
    check_out_dir(out_dir, "experiment")
    wanted = config.to_dict()
    wanted.pop("source", None)
    saved = out_dir / "config.yaml"
    if fresh and out_dir.exists():
        shutil.rmtree(out_dir)
    if saved.is_file():
        have = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
        have.pop("source", None)
        try:  # through the dataclasses: a setting added since (with its default) is no change
            have = experiment_config(have, str(saved)).to_dict()
            have.pop("source", None)
            have = json.loads(json.dumps(have))
        except BoneaugError:
            pass  # not a config of this version: compared as written, so it differs
        if have != json.loads(json.dumps(wanted)):
            changed = sorted(k for k in set(have) | set(wanted)
                             if have.get(k) != json.loads(json.dumps(wanted.get(k))))
            raise BoneaugError(f"{out_dir}: holds an experiment with another config (section "
                               f"{', '.join(changed)} differs); use another --out, or --fresh "
                               "to start this folder again")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(saved, yaml.safe_dump(json.loads(json.dumps(wanted)), sort_keys=False))


# --------------------------------------------------------------------------- data


def _negatives_from(config: ExperimentConfig, bone: str) -> tuple[str, ...]:
    return tuple(config.data.negatives_from.get(bone, []))


def _prepare_data(config: ExperimentConfig, run_dir: Path, say: Say) -> dict[str, Any]:
    data = config.data
    if data.source == "phantom":
        phantom_path = make_phantom(run_dir / "phantom", PhantomConfig(
            bones=tuple(data.bones), normal=data.normal, lesion=data.lesion, size=data.size,
            difficulty=data.difficulty, seed=config.seed, distractors=data.distractors))
        manifest = load_manifest(phantom_path)
        needs_split = True
    else:
        manifest = load_manifest(Path(data.manifest or ""))
        needs_split = not (manifest.table["split"] != "").any()
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
    held_back: list = []
    counts: dict[str, dict[str, int]] = {}
    rng = np.random.default_rng([config.seed, 11])
    for bone in data.bones:
        in_train = (table["split"] == "train") & (table["origin"] == "real")
        positives = table.index[in_train & (table["bone"] == bone) & (table["label"] == 1)]
        negatives = table.index[in_train & (table["label"] == 0) & table["bone"].isin(
            {bone, *_negatives_from(config, bone)})]
        if len(positives) == 0 or len(negatives) == 0:
            raise BoneaugError(f"{manifest.source}: bone {bone!r} has {len(positives)} lesion "
                               f"and {len(negatives)} normal train images; it needs both")
        keep = len(positives)
        if data.prevalence is not None:
            share = data.prevalence / (1 - data.prevalence)
            keep = min(len(positives), max(2, int(round(share * len(negatives)))))
        kept = set(rng.permutation(positives)[:keep])
        held_back += [i for i in positives if i not in kept]
        counts[bone] = {"train_pos": int(keep), "train_neg": int(len(negatives)),
                        "held_back": int(len(positives) - keep)}
    pool = Manifest(table.loc[held_back].reset_index(drop=True), root=manifest.root)
    main = Manifest(table.drop(index=held_back).reset_index(drop=True), root=manifest.root)
    (run_dir / "data").mkdir(exist_ok=True)
    save_manifest(main, run_dir / "data" / "manifest.csv")
    save_manifest(pool, run_dir / "data" / "oracle-pool.csv")
    stats = describe_manifest(main)
    write_text_atomic(run_dir / "data" / "stats.txt", stats + "\n")
    return {"counts": counts, "images": len(main), "held_back": len(held_back)}


# --------------------------------------------------------------------------- conditions


def conditions(config: ExperimentConfig) -> list[Condition]:
    """Every (bone, condition) the config asks for, in a fixed order."""
    proto = config.protocol
    out: list[Condition] = []
    seed = config.seed
    for bone in proto.bones or config.data.bones:
        for strategy in proto.strategies:
            ratios = proto.ratios if strategy in proto.sweep else [proto.main_ratio]
            if strategy in ("baseline", "weighted", "classic"):
                out.append(Condition(bone, strategy, strategy))
            elif strategy == "oversample":
                out += [Condition(bone, f"oversample-{_ratio_name(r)}", strategy, r)
                        for r in ratios]
            elif strategy == "copypaste":
                out += [Condition(bone, f"copypaste-{_ratio_name(r)}", strategy, r,
                                  extra=f"synth/copypaste/{bone}-s{seed}/synthetic.csv")
                        for r in ratios]
            elif strategy == "gan":
                out += [Condition(bone, f"gan-{_ratio_name(r)}", strategy, r, bone,
                                  f"synth/gan/{bone}-s{seed}/synthetic.csv") for r in ratios]
            elif strategy == "gan-gated":
                r = proto.main_ratio
                out.append(Condition(bone, f"gan-gated-{_ratio_name(r)}", strategy, r, bone,
                                     f"gate/{bone}/gated.csv"))
            elif strategy == "gan-transfer":
                r = proto.main_ratio
                sources = proto.transfer_from or config.data.bones
                out += [Condition(bone, f"gan-transfer-{_ratio_name(r)}-from-{g}", strategy, r,
                                  g, f"synth/gan/{bone}-from-{g}-s{seed}/synthetic.csv")
                        for g in sources if g != bone]
            elif strategy == "oracle":
                out += [Condition(bone, f"oracle-{_ratio_name(r)}", strategy, r,
                                  extra="data/oracle-pool.csv") for r in ratios]
            elif strategy == "tstr":
                r = proto.main_ratio
                out.append(Condition(bone, f"tstr-{_ratio_name(r)}", strategy, r, bone,
                                     f"synth/gan/{bone}-s{seed}/synthetic.csv"))
    return out


def _max_ratio(config: ExperimentConfig, strategies: set[str]) -> float:
    ratios = [c.ratio for c in conditions(config)
              if c.strategy in strategies and c.ratio is not None]
    return max(ratios) if ratios else 0.0


# --------------------------------------------------------------------------- quality gate


def lesion_change(image: np.ndarray, reference: np.ndarray, box: list[float]
                  ) -> tuple[float, float]:
    """Mean |image - reference| and mean (image - reference) inside the lesion box
    (negative: the lesion is darker); (0, 0) for an empty box."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    diff = image[y0:y1, x0:x1] - reference[y0:y1, x0:x1]
    return (float(np.abs(diff).mean()), float(diff.mean())) if diff.size else (0.0, 0.0)


def _gate(config: ExperimentConfig, run_dir: Path, bone: str, manifest: Manifest) -> dict:
    """Score the bone's synthetic positives with the seed-0 real-data (baseline) classifier
    and by their visible change; keep those above both thresholds (``gate/<bone>/``)."""
    model_file = run_dir / "cls" / bone / "baseline" / "seed0" / "model.pt"
    saved = torch.load(model_file, map_location="cpu", weights_only=True)
    cls_config = ClassifierConfig.from_dict(saved["config"])
    model = build_classifier(cls_config.arch, cls_config.width)
    model.load_state_dict(saved["state_dict"])
    synthetic = load_manifest(run_dir / "synth" / "gan" / f"{bone}-s{config.seed}" /
                              "synthetic.csv")
    syn_scores = predict(model, load_inputs(synthetic, None, cls_config.size, cls_config.crop,
                                            run_dir / "cache"), cls_config)
    table = manifest.table
    val_normals = table.index[(table["split"] == "val") & (table["label"] == 0)
                              & table["bone"].isin({bone, *_negatives_from(config, bone)})]
    normal_scores = predict(model, load_inputs(manifest, list(val_normals), cls_config.size,
                                               cls_config.crop, run_dir / "cache"), cls_config)
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
    out = run_dir / "gate" / bone
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"image_id": synthetic.table["image_id"], "score": syn_scores,
                  "change": changes, "signed_change": signed,
                  "kept": keep.astype(int)}).to_csv(out / "scores.csv", index=False)
    kept = Manifest(new_table(synthetic.table[keep].to_dict("records")), root=synthetic.root)
    save_manifest(kept, out / "gated.csv")
    return {"bone": bone, "threshold": threshold, "normal_quantile": gate.normal_quantile,
            "min_change": gate.min_change, "scored": int(len(keep)), "kept": int(keep.sum()),
            "dropped": int(len(keep) - keep.sum()),
            "dropped_by_score": int((syn_scores < threshold).sum()),
            "dropped_by_change": int((changes < gate.min_change).sum()),
            "direction": gate.direction, "dropped_by_direction": int((~direction_ok).sum()),
            "source": f"synth/gan/{bone}-s{config.seed}"}


# --------------------------------------------------------------------------- the run


def run_experiment(config: ExperimentConfig, out_dir: str | Path, *, say: Say = print,
                   progress: bool = True, fresh: bool = False,
                   report: bool = True) -> ExperimentResult:
    """Run (or resume) the whole protocol of `config` in `out_dir`; see the module doc."""
    started = time.time()
    run_dir = Path(out_dir)
    _open_run(config, run_dir, fresh)
    write_run_json(run_dir, "experiment", config.to_dict(), config.seed, started,
                   extra={"completed": False})
    stages = Stages(run_dir, say)
    seed = config.seed
    all_conditions = conditions(config)
    strategies = {c.strategy for c in all_conditions}
    n_cls = len(all_conditions) * config.protocol.seeds
    n_bones = len(config.protocol.bones or config.data.bones)
    say(f"experiment {config.name!r} -> {run_dir}: {n_bones} bone(s), "
        f"{len(all_conditions)} conditions x {config.protocol.seeds} seed(s) = {n_cls} "
        "classifiers")
    if config.note:
        say(config.note.strip())

    def step(text: str) -> None:
        say(f"[{stages.elapsed()}] {text}")

    # 1. data
    if (info := stages.done("data")) is None:
        info = _prepare_data(config, run_dir, say)
        stages.mark("data", info)
        step(f"data: {info['images']} images; per bone train positives kept / held back: "
             + ", ".join(f"{b} {c['train_pos']}/{c['held_back']}"
                         for b, c in info["counts"].items()))
    counts = info["counts"]
    manifest = load_manifest(run_dir / "data" / "manifest.csv")
    if "oracle" in strategies:
        need = _max_ratio(config, {"oracle"})
        for bone, c in counts.items():
            if math.ceil(need * c["train_pos"]) > c["held_back"]:
                raise BoneaugError(f"{config.source or 'config'}: the oracle at ratio {need:g} "
                                   f"needs {math.ceil(need * c['train_pos'])} held-back real "
                                   f"{bone} positives, the data has {c['held_back']}; raise "
                                   "data.lesion or lower the oracle's ratios")

    # 2. per-bone patches and CycleGAN
    needs_gan = bool(strategies & {"gan", "gan-gated", "gan-transfer", "tstr"})
    needs_patches = needs_gan or "copypaste" in strategies
    generator_bones = set()
    for c in all_conditions:
        if c.strategy in ("gan", "gan-gated", "gan-transfer", "tstr"):
            generator_bones.add(c.generator_bone)
    for bone in config.data.bones:
        if needs_patches and not stages.done(f"patches:{bone}"):
            report_ = extract_patches(
                manifest, bone, config.patches.size, run_dir / "patches",
                per_lesion=config.patches.per_lesion,
                healthy_per_image=config.patches.healthy_per_image,
                context=config.patches.context, seed=seed,
                negatives_from=_negatives_from(config, bone), progress=False)
            stages.mark(f"patches:{bone}", {"healthy": report_.n_healthy,
                                            "lesion": report_.n_lesion})
            step(f"patches {bone}: {report_.n_healthy} healthy, {report_.n_lesion} lesion "
                 f"(from {report_.n_lesion_boxes} real lesions)")
    for bone in config.data.bones:
        if bone in generator_bones and not stages.done(f"gan:{bone}"):
            healthy, lesion, pinfo = load_domains(run_dir / "patches" / bone)
            stats = json.loads((run_dir / "patches" / bone / "lesion_stats.json").read_text())
            gan_dir = run_dir / "gan" / bone
            resume = (gan_dir / "checkpoints" / "last.pt").is_file()
            step(f"CycleGAN {bone}: {config.gan.iterations} iterations "
                 f"({config.gan.n_blocks} blocks, {config.gan.ngf} filters)"
                 + (" - resuming" if resume else ""))
            trained = train_cyclegan(healthy.patches, lesion.patches, config.gan, gan_dir,
                                     resume=resume, progress=progress,
                                     generator_info={"bone": bone, "lesion_stats": stats,
                                                     "patches": pinfo.get("settings", {})})
            if not trained.completed:
                raise KeyboardInterrupt
            stages.mark(f"gan:{bone}", {"iterations": trained.iterations,
                                        "seconds": trained.seconds})
            step(f"CycleGAN {bone} done: {trained.iterations_per_second:.1f} it/s")

    # 3. synthesis
    synth_conf = config.synthesis
    gan_ratio = max(_max_ratio(config, {"gan", "tstr"}),
                    2 * config.protocol.main_ratio if "gan-gated" in strategies else 0.0)
    for bone in config.data.bones:
        n_pos = counts[bone]["train_pos"]
        jobs: list[tuple[str, str, str, float, dict[str, Any]]] = []
        if gan_ratio > 0 and bone in generator_bones:
            jobs.append((f"synth:gan:{bone}", f"synth/gan/{bone}-s{seed}", bone, gan_ratio, {}))
        for c in all_conditions:
            if c.bone == bone and c.strategy == "gan-transfer":
                stats = (run_dir / "patches" / bone / "lesion_stats.json"
                         if synth_conf.transfer_lesion_stats == "target" else None)
                jobs.append((f"synth:gan:{bone}-from-{c.generator_bone}",
                             f"synth/gan/{bone}-from-{c.generator_bone}-s{seed}",
                             c.generator_bone, c.ratio or 0.0, {"lesion_stats": stats}))
        if "copypaste" in strategies:
            jobs.append((f"synth:copypaste:{bone}", f"synth/copypaste/{bone}-s{seed}", "",
                         _max_ratio(config, {"copypaste"}), {}))
        for name, folder, gbone, ratio, extra in jobs:
            if stages.done(name):
                continue
            count = max(1, math.ceil(ratio * n_pos))
            common = dict(count=count, seed=seed, batch_size=synth_conf.batch_size,
                          feather=synth_conf.feather, margin=synth_conf.margin,
                          negatives_from=_negatives_from(config, bone),
                          device=config.gan.device, progress=False)
            if gbone:
                result = synthesize(run_dir / "gan" / gbone / "generator_healthy_to_lesion.pt",
                                    manifest, bone, run_dir / folder, **common, **extra)
            else:
                patch_dir = run_dir / "patches" / bone
                result = synthesize(patch_dir, manifest, bone, run_dir / folder, **common,
                                    translator=copy_paste_translator(patch_dir, seed))
            stages.mark(name, {"images": result.images,
                               "seam_ratio_median": result.seam_ratio_median})
            step(f"{name}: {result.images} images (median seam ratio "
                 f"{result.seam_ratio_median:.2f})")

    # 4. classifiers; the baselines first (the quality gate scores with them)
    seeds = range(config.protocol.seeds)
    order = sorted(all_conditions, key=lambda c: (c.strategy != "baseline",
                                                  c.strategy == "gan-gated"))
    durations: list[float] = []
    done_count = sum(1 for c in all_conditions for s in seeds
                     if stages.done(f"cls:{c.bone}:{c.name}:s{s}"))
    extras: dict[str, Manifest] = {}
    for c in order:
        if c.strategy == "gan-gated" and not stages.done(f"gate:{c.bone}"):
            gate_info = _gate(config, run_dir, c.bone, manifest)
            stages.mark(f"gate:{c.bone}", gate_info)
            step(f"quality gate {c.bone}: kept {gate_info['kept']} of {gate_info['scored']} "
                 f"synthetic positives (threshold score {gate_info['threshold']:.3f}, "
                 f"min change {gate_info['min_change']})")
        for s in seeds:
            name = f"cls:{c.bone}:{c.name}:s{s}"
            if stages.done(name):
                continue
            extra = None
            ratio = c.ratio
            if c.strategy in USES_EXTRA:
                if c.extra not in extras:
                    extras[c.extra] = load_manifest(run_dir / c.extra)
                extra = extras[c.extra]
                if c.strategy == "gan-gated":  # as many as the gate kept, up to the ratio
                    available = int((extra.table["bone"] == c.bone).sum())
                    if ratio is not None and available < ratio * counts[c.bone]["train_pos"]:
                        ratio = None
                        if s == 0:
                            step(f"warning: the gate kept {available} synthetic {c.bone} "
                                 f"positives, fewer than ratio {c.ratio:g} asks; {c.name} "
                                 "uses all it kept" + (" (none: it trains like the baseline)"
                                                       if available == 0 else ""))
            t0 = time.time()
            result = classify(manifest, c.strategy, run_dir / "cls" / c.bone / c.name / f"seed{s}",
                              config=config.classifier, bone=c.bone, extra=extra, ratio=ratio,
                              seed=s, cache_dir=run_dir / "cache",
                              negatives_from=_negatives_from(config, c.bone))
            durations.append(time.time() - t0)
            done_count += 1
            stages.mark(name, {"test_auc": result.test_auc, "seconds": durations[-1]})
            left = (n_cls - done_count) * float(np.mean(durations))
            step(f"classifier {done_count}/{n_cls} {c.bone} {c.name} seed {s}: test AUC "
                 f"{result.test_auc:.3f} (epoch {result.best_epoch}, {durations[-1]:.0f} s; "
                 f"about {_duration(left)} left)")

    # 5. evaluation and report (cheap: always redone)
    predictions, runs = _collect(run_dir, all_conditions, config.protocol.seeds)
    (run_dir / "evaluation").mkdir(exist_ok=True)
    predictions.to_csv(run_dir / "evaluation" / "predictions.csv", index=False)
    runs.to_csv(run_dir / "evaluation" / "runs.csv", index=False)
    gates = [stages.done(f"gate:{b}") for b in config.data.bones]
    write_json_atomic(run_dir / "evaluation" / "gate.json",
                      {"bones": [g for g in gates if g]})
    summary = summarise(predictions, n_boot=config.protocol.n_boot, seed=seed)
    table = format_table(summary)
    goal = goal_check(predictions, summary, config.protocol.main_ratio)
    if not goal.empty:
        table += (f"\nthe goal at ratio {config.protocol.main_ratio:g} (gan closes >= 1/2 of "
                  "the baseline-to-oracle gap and beats oversample and copypaste with DeLong "
                  "p < 0.05; gan-transfer closes >= 1/3):\n" + format_goal(goal))
    report_path = None
    if report:
        from boneaug.experiment.report import write_report

        report_path = write_report(run_dir, n_boot=config.protocol.n_boot, seed=seed,
                                   summary=summary).html
    write_run_json(run_dir, "experiment", config.to_dict(), seed, started,
                   extra={"completed": True})
    return ExperimentResult(run_dir, summary, table, report_path, time.time() - started)


def _collect(run_dir: Path, all_conditions: list[Condition], n_seeds: int
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    frames, runs = [], []
    for c in all_conditions:
        for s in range(n_seeds):
            folder = run_dir / "cls" / c.bone / c.name / f"seed{s}"
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
