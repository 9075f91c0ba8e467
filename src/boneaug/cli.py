"""The `boneaug` command line: thin; each command parses, calls one public function.

Problems with the user's input arrive as `BoneaugError` and are printed as one line on
stderr with exit status 2; nothing else is caught, so a bug keeps its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from boneaug.errors import BoneaugError

# Exit statuses, one convention for every command (README): 0 done, 2 bad input (one line
# on stderr; `validate` also when it found an error), 130 interrupted (Ctrl-C).
BAD_INPUT = 2

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Per-bone CycleGAN lesion synthesis to augment bone-lesion classifiers.",
)
import_app = typer.Typer(no_args_is_help=True, help="Bring radiographs and annotations into a "
                         "boneaug manifest.")
app.add_typer(import_app, name="import")


def _bones(text: str) -> tuple[str, ...]:
    return tuple(b.strip().lower() for b in text.split(",") if b.strip())


@app.command()
def phantom(
    out: Path = typer.Option(..., "--out", help="Folder to write images, masks and manifest.csv"),
    bones: str = typer.Option("femur,tibia,humerus", help="Comma-separated bones to render"),
    normal: int = typer.Option(60, min=0, help="Normal images per bone"),
    lesion: int = typer.Option(6, min=0, help="Lesion images per bone"),
    size: int = typer.Option(256, min=32, max=4096, help="Image side in pixels"),
    difficulty: float = typer.Option(0.5, min=0.0, max=1.0, help="0 obvious .. 1 subtle"),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same images"),
    distractors: bool = typer.Option(True, help="Collimation edges and side-marker letters "
                                     "(and burned-in text on mixed films)"),
    films: str = typer.Option("single", help="single: one long bone per film (the benchmark); "
                              "mixed: joint and multi-bone films, views, centres, ages and "
                              "region labels like real data; --normal then counts normals of "
                              "each bone's limb region"),
    labelled_normals: float = typer.Option(0.2, help="Mixed: share of normal films that name "
                                           "their main bone (the rest: their region only)"),
    confound: float = typer.Option(0.0, help="Mixed: chance that a film's centre, age and view "
                                   "follow its label's profile (0 = independent of the label)"),
    awkward: int = typer.Option(0, help="Mixed: awkward normal films per limb region (blank, "
                                "marks and text only, inverted, in turn)"),
    layout: str = typer.Option("boneaug", help="boneaug: 16-bit PNGs, masks and manifest.csv; "
                               "btxrd: the BTXRD folder layout (JPEGs, LabelMe, dataset.csv) "
                               "with truth.csv and truth_masks/ (needs --films mixed)"),
) -> None:
    """Render phantom radiographs of long bones with exact ground truth."""
    from boneaug.data.phantom import PhantomConfig, make_phantom

    config = PhantomConfig(bones=_bones(bones), normal=normal, lesion=lesion, size=size,
                           difficulty=difficulty, seed=seed, distractors=distractors,
                           films=films, labelled_normals=labelled_normals, confound=confound,
                           awkward=awkward)
    if layout == "btxrd":
        from boneaug.data.phantom_btxrd import export_btxrd

        typer.echo(f"wrote {export_btxrd(out, config)}")
    elif layout == "boneaug":
        typer.echo(f"wrote {make_phantom(out, config)}")
    else:
        raise BoneaugError(f"phantom: --layout {layout!r} must be boneaug or btxrd")


@app.command()
def validate(manifest: Path = typer.Argument(..., help="manifest.csv to check")) -> None:
    """Check a manifest against the contract; list every problem, one per line."""
    from boneaug.data.manifest import check_manifest

    loaded, problems = check_manifest(manifest)
    errors = [p for p in problems if p.severity == "error"]
    for problem in problems:
        typer.echo(str(problem), err=True)
    warnings = len(problems) - len(errors)
    typer.echo(f"{manifest}: {len(loaded)} rows, {len(errors)} errors, {warnings} warnings")
    if errors:
        raise typer.Exit(BAD_INPUT)


@app.command()
def split(
    manifest: Path = typer.Argument(..., help="manifest.csv to split"),
    out: Path = typer.Option(None, "--out", help="Where to write the split manifest "
                             "(default: <manifest folder>/<name>.split.csv)"),
    val: float = typer.Option(0.15, min=0.0, max=0.9, help="Share of real images in val"),
    test: float = typer.Option(0.15, min=0.0, max=0.9, help="Share of real images in test"),
    seed: int = typer.Option(0, help="Random seed"),
    group_by: str = typer.Option(None, help="Column whose values are kept together "
                                 "(e.g. center); patients are always kept together"),
    holdout: str = typer.Option(None, help="With --group-by: the value(s) of that column that "
                                "form the test split, comma-separated (e.g. 3)"),
    in_place: bool = typer.Option(False, help="Allow --out to be the input manifest"),
) -> None:
    """Patient-level split into train/val/test, stratified by bone x label."""
    from boneaug.data.manifest import load_manifest, save_manifest
    from boneaug.data.splits import split_manifest
    from boneaug.files import check_not_an_input

    target = out or manifest.with_name(manifest.stem + ".split.csv")
    if target.resolve() == manifest.resolve() and not in_place:
        raise BoneaugError(f"{target}: --out is the input manifest; pass --in-place to "
                           "overwrite it")
    loaded = load_manifest(manifest, check_images=False)
    check_not_an_input(target, [f for f in loaded.files() if f != loaded.source], "split",
                       folder=False)  # an image or mask the manifest points at
    result = split_manifest(loaded, val=val, test=test, seed=seed, group_by=group_by,
                            holdout=tuple(h for h in (holdout or "").split(",") if h))
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    save_manifest(result.manifest, target)
    typer.echo(f"wrote {target}")


@app.command()
def stats(manifest: Path = typer.Argument(..., help="manifest.csv to describe")) -> None:
    """Counts by bone x label x split x origin, image sizes and lesion-box sizes."""
    from boneaug.data.manifest import load_manifest
    from boneaug.data.stats import describe_manifest

    # Every check of `validate` (boxes against the image size, mask files); unreadable
    # images are counted by stats rather than stopping it.
    typer.echo(describe_manifest(load_manifest(manifest, unreadable_ok=True)))


@app.command()
def export(
    manifest: Path = typer.Argument(..., help="manifest.csv (real and/or synthetic rows)"),
    out: Path = typer.Option(..., "--out", help="Folder to write (new, or an earlier export)"),
    fmt: str = typer.Option("coco", "--format", help="coco (boxes + mask polygons), yolo "
                            "(label files) or masks (mask PNGs)"),
    split: str = typer.Option(None, "--split", help="Comma list of splits (default: all)"),
    origin: str = typer.Option("all", "--origin", help="real, synthetic or all"),
) -> None:
    """A manifest's films and lesions as COCO JSON, YOLO labels or mask PNGs
    (docs/manifest.md "Export"); synthetic films stay marked."""
    from boneaug.data.export import export_manifest
    from boneaug.data.manifest import load_manifest

    splits = [s for s in split.split(",")] if split is not None else None
    report = export_manifest(load_manifest(manifest), out, fmt, splits=splits, origin=origin)
    typer.echo(f"wrote {out} ({fmt}: {report.images} images, {report.boxes} lesion boxes, "
               f"{report.synthetic} synthetic)")


@app.command()
def bones(
    manifest: Path = typer.Argument(..., help="manifest.csv whose films labelled by region "
                                    "(or 'unknown') need a bone"),
    out: Path = typer.Option(None, "--out", help="Manifest to write (default: "
                             "<manifest folder>/<name>.bones.csv)"),
    min_confidence: float = typer.Option(0.7, min=0.0, max=1.0, help="Assign a bone at this "
                                         "score or above"),
    size: int = typer.Option(64, min=32, help="Film side on the classifier's input, px"),
    steps: int = typer.Option(1500, min=1, help="Training steps"),
    seed: int = typer.Option(0, min=0, help="Random seed"),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
) -> None:
    """Learn which bone(s) each film shows from the films whose bone is known; assign them,
    with a confidence, to films labelled only by region or not at all."""
    from boneaug.classify.bones import BonesConfig, assign_bones, format_bones, write_bones_sheet
    from boneaug.data.manifest import load_manifest, save_manifest
    from boneaug.files import write_json_atomic

    target = out or manifest.with_name(manifest.stem + ".bones.csv")
    if target.resolve() == manifest.resolve():
        raise BoneaugError(f"{target}: --out is the input manifest; choose another file")
    config = BonesConfig.from_dict({"min_confidence": min_confidence, "size": size,
                                    "steps": steps, "seed": seed, "device": device}, "bones")
    report = assign_bones(load_manifest(manifest, check_images=False), config)
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(format_bones(report))
    sheet = target.with_suffix(".png")
    write_bones_sheet(report.manifest, sheet, seed=seed)
    write_json_atomic(target.with_suffix(".json"), report.to_dict())
    if len(report.skipped):
        skipped = report.skipped.write(target.parent, f"{target.stem}.skipped.csv")
        typer.echo(f"warning: {report.skipped.summary()} -> {skipped}", err=True)
    save_manifest(report.manifest, target)
    typer.echo(f"wrote {target}; review sheet {sheet}")


@app.command()
def patches(
    manifest: Path = typer.Option(..., "--manifest", help="A split manifest"),
    bone: str = typer.Option(..., help="The bone whose patch domains to build"),
    size: int = typer.Option(..., min=24, max=1024, help="Patch side P in pixels: a multiple "
                             "of 4, at least 24 (what the CycleGAN's networks need)"),
    out: Path = typer.Option(..., "--out", help="Stores go to OUT/<bone>/{healthy,lesion}"),
    per_lesion: int = typer.Option(8, min=1, help="Crops per lesion box"),
    healthy_per_image: int = typer.Option(4, min=1, help="Crops per normal image"),
    context: float = typer.Option(0.5, min=0.0, help="Crop side = longest box side x (1 + F)"),
    jitter: float = typer.Option(0.15, min=0.0, max=0.9, help="Scale and position jitter"),
    seed: int = typer.Option(0, help="Random seed"),
    min_healthy: int = typer.Option(None, min=1, help="Cut enough crops for N healthy patches"),
    negatives_from: list[str] = typer.Option([], help="Extra bone/region whose normals count "
                                             "as healthy images of BONE (repeatable)"),
    min_bone_fraction: float = typer.Option(0.3, min=0.0, max=1.0,
                                            help="Reject healthy crops with less bone"),
) -> None:
    """Cut the healthy (A) and lesion (B) patch domains of one bone from the train split."""
    from boneaug.data.manifest import load_manifest
    from boneaug.gan.networks import check_patch_size
    from boneaug.patches import extract_patches

    check_patch_size(size, "--size")
    report = extract_patches(
        load_manifest(manifest), bone.strip().lower(), size, out, per_lesion=per_lesion,
        healthy_per_image=healthy_per_image, context=context, jitter=jitter, seed=seed,
        min_healthy=min_healthy, negatives_from=tuple(n.lower() for n in negatives_from),
        min_bone_fraction=min_bone_fraction)
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"{report.bone}: {report.n_healthy} healthy patches from "
               f"{report.n_healthy_images} normal images, {report.n_lesion} lesion patches "
               f"from {report.n_lesion_boxes} boxes in {report.n_lesion_images} images -> "
               f"{report.bone_dir}")


gan_app = typer.Typer(no_args_is_help=True, help="The per-bone CycleGAN.")
app.add_typer(gan_app, name="gan")


@gan_app.command("train")
def gan_train(
    patches: Path = typer.Option(..., help="A bone's patch folder: PATCHES/<bone> of "
                                 "`boneaug patches`"),
    out: Path = typer.Option(..., "--out", help="Run folder (checkpoints, losses.csv, "
                             "samples.png, generator_healthy_to_lesion.pt)"),
    config: Path = typer.Option(None, help="YAML with GanConfig settings (or a `gan:` section)"),
    set_: list[str] = typer.Option([], "--set", help="Override a setting, KEY=VALUE "
                                   "(repeatable), e.g. --set iterations=200"),
    resume: bool = typer.Option(False, help="Continue the run in OUT from its last checkpoint"),
) -> None:
    """Train healthy -> lesion (and back) on one bone's patches."""
    from boneaug.config import load_yaml, parse_overrides, section
    from boneaug.files import check_out_dir
    from boneaug.gan import GanConfig, train_bone_generator

    if out.exists() and not out.is_dir():
        raise BoneaugError(f"{out}: exists and is not a folder; --out must be a folder")
    if not resume and not (out / "checkpoints" / "last.pt").exists():
        check_out_dir(out, "gan train")  # never among someone's losses.csv or samples
    settings = section(load_yaml(config), "gan", config) if config else {}
    settings = {**settings, **parse_overrides(set_)}
    result = train_bone_generator(patches, GanConfig.from_dict(settings), out, resume=resume)
    if result.rank != 0:
        return
    state = "finished" if result.completed else "stopped (resume with --resume)"
    typer.echo(f"{state} at iteration {result.iterations} "
               f"({result.iterations_per_second:.2f} it/s) -> {result.out_dir}")
    if result.generator_path:
        typer.echo(f"generator: {result.generator_path}")


@app.command()
def synthesize(
    generator: Path = typer.Option(None, help="generator_healthy_to_lesion.pt of `gan train`"),
    manifest: Path = typer.Option(..., "--manifest", help="A split manifest"),
    bone: str = typer.Option(..., help="Bone to paint lesions on (another bone's generator "
                             "transfers)"),
    out: Path = typer.Option(..., "--out", help="Folder for images/, synthetic.csv, "
                             "augmented.csv, sheet.png"),
    count: int = typer.Option(None, min=1, help="Number of synthetic images"),
    ratio: float = typer.Option(None, min=0.0, help="Synthetic images per real positive train "
                                "image of BONE"),
    seed: int = typer.Option(0, help="Random seed; same seed, same images"),
    batch_size: int = typer.Option(16, min=1, help="Patches translated per batch"),
    margin: float = typer.Option(0.5, min=0.05, max=2.0, help="The change fades out this "
                                 "share of the lesion box's half size beyond the box"),
    feather: float = typer.Option(0.25, min=0.01, max=1.0, help="Ramp to 0 at the crop border, "
                                  "share of the crop's half side"),
    negatives_from: list[str] = typer.Option([], help="Extra bone/region whose normals may "
                                             "be sources (repeatable)"),
    lesion_stats: Path = typer.Option(None, help="lesion_stats.json to place lesions by, "
                                      "instead of the generator's own"),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    copy_paste: Path = typer.Option(None, help="Instead of a generator: paste the real lesion "
                                    "patches of this patch folder (PATCHES/<bone>), the "
                                    "copy-paste baseline"),
    realism: Path = typer.Option(None, help="Also measure how real the lesions look: BONE's "
                                 "patch folder (PATCHES/<bone>); the reference is the "
                                 "manifest's val lesions of BONE -> OUT/realism.json"),
) -> None:
    """Paint generated lesions onto normal train radiographs of BONE."""
    from boneaug.data.manifest import load_manifest
    from boneaug.synth import synthesize as run_synthesis

    films = load_manifest(manifest)
    if realism is not None:  # a wrong folder is one line before any painting
        from boneaug.patches import load_domains

        patch_bone = load_domains(realism)[2].get("bone")
        if patch_bone != bone:
            raise BoneaugError(f"{realism}: --realism needs the patch folder of {bone} (its "
                               f"features learn that bone's lesions); this one is "
                               f"{patch_bone}'s")
    report = run_synthesis(
        generator, films, bone, out, count=count, ratio=ratio,
        seed=seed, batch_size=batch_size, feather=feather, margin=margin,
        negatives_from=tuple(n.lower() for n in negatives_from), lesion_stats=lesion_stats,
        device=device, copy_paste=copy_paste)
    if report.out_dir is None:  # a non-zero rank under torchrun: rank 0 reports
        return
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    transfer = "" if report.generator_bone == report.target_bone else \
        f" (transfer: {report.generator_bone} generator)"
    typer.echo(f"{report.images} synthetic {report.target_bone} images from {report.sources} "
               f"normal train images{transfer}; median seam ratio "
               f"{report.seam_ratio_median:.2f} -> {report.out_dir}")
    if realism is not None and report.synthetic_manifest is not None:
        from boneaug.files import write_json_atomic
        from boneaug.synth.realism import format_realism, measure_sets

        doc = measure_sets(films, bone, realism, [(report.out_dir.name, str(report.out_dir),
                                                   report.synthetic_manifest)], seed=seed)
        write_json_atomic(report.out_dir / "realism.json", doc)
        typer.echo(format_realism(doc))


@import_app.command("csv")
def import_csv_cmd(
    table: Path = typer.Argument(..., help="The user's CSV: one row per image"),
    out: Path = typer.Option(..., "--out", help="manifest.csv to write"),
    column: list[str] = typer.Option([], "--column", "-c", help="Mapping FIELD=THEIR_COLUMN, "
                                     "e.g. -c image_id=StudyID -c label=Finding; repeatable"),
    bone: str = typer.Option(None, help="Bone for every row when the CSV has no bone column"),
    positive: str = typer.Option(None, help="Comma-separated label values meaning lesion, "
                                 "when the label column is not 0/1"),
    images: Path = typer.Option(None, help="Folder the CSV's image paths are relative to "
                                "(default: the CSV's folder)"),
) -> None:
    """A user CSV with a column mapping."""
    from boneaug.data.importers import import_csv

    mapping = {}
    for item in column:
        field, sep, theirs = item.partition("=")
        if not sep or not field.strip() or not theirs.strip():
            raise BoneaugError(f"--column {item!r}: expected FIELD=THEIR_COLUMN")
        mapping[field.strip()] = theirs.strip()
    positives = tuple(p.strip() for p in positive.split(",")) if positive else None
    _report(import_csv(table, out, mapping=mapping, bone=bone, positive_values=positives,
                       images_root=images))


@import_app.command("coco")
def import_coco_cmd(
    annotations: Path = typer.Argument(..., help="COCO JSON (boxes and/or segmentations)"),
    out: Path = typer.Option(..., "--out", help="manifest.csv to write"),
    images: Path = typer.Option(None, help="Folder of the images (default: the JSON's folder)"),
    bone: str = typer.Option(None, help="Bone for every image; else category names must be bones"),
) -> None:
    """COCO JSON: images with lesion annotations are positives, the others negatives."""
    from boneaug.data.importers import import_coco

    _report(import_coco(annotations, out, images_root=images, bone=bone))


@import_app.command("labelme")
def import_labelme_cmd(
    folder: Path = typer.Argument(..., help="Folder of images and LabelMe JSON files"),
    out: Path = typer.Option(..., "--out", help="manifest.csv to write"),
    bone: str = typer.Option(..., help="Bone of these images"),
) -> None:
    """A folder of LabelMe JSONs; images without a JSON (or shapes) are negatives."""
    from boneaug.data.importers import import_labelme

    _report(import_labelme(folder, out, bone=bone))


@import_app.command("btxrd")
def import_btxrd_cmd(
    root: Path = typer.Argument(..., help="BTXRD folder (images/, Annotations/, dataset.csv)"),
    out: Path = typer.Option(..., "--out", help="manifest.csv to write"),
    patients: str = typer.Option("heuristic", help="Patient grouping: heuristic (adjacent rows "
                                 "with equal centre, age, gender, site, tumour flags) or image"),
    max_side: int = typer.Option(None, min=32, help="Write images larger than this (px, "
                                 "longer side) downscaled beside the manifest, boxes and masks "
                                 "scaled alike (e.g. 256 for configs/btxrd-cpu.yaml)"),
) -> None:
    """The BTXRD bone-tumour radiograph set (see docs/importing.md for its pitfalls)."""
    from boneaug.data.importers import import_btxrd

    _report(import_btxrd(root, out, patients=patients, max_side=max_side))


@import_app.command("folder")
def import_folder_cmd(
    root: Path = typer.Argument(..., help="Folder with class sub-folders (normal/, lesion/), "
                                "optionally under bone folders (femur/normal/ ...)"),
    out: Path = typer.Option(..., "--out", help="manifest.csv to write"),
    bone: str = typer.Option(None, help="Bone of every image when there are no bone folders"),
) -> None:
    """Class sub-folders, no boxes."""
    from boneaug.data.importers import import_folder

    _report(import_folder(root, out, bone=bone))


def _report(report) -> None:
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"wrote {report.manifest_path} ({report.rows} images)")


@app.command()
def classify(
    manifest: Path = typer.Option(..., "--manifest", help="A split manifest (real images; an "
                                  "augmented.csv brings its synthetic rows)"),
    strategy: str = typer.Option(..., help="baseline, weighted, oversample, classic, "
                                 "copypaste, gan, gan-gated, gan-transfer, oracle or tstr"),
    out: Path = typer.Option(..., "--out", help="Folder for model.pt, predictions.csv, "
                             "metrics.json"),
    bone: str = typer.Option(None, help="Train on this bone only (default: pooled over bones)"),
    extra: Path = typer.Option(None, help="Manifest of extra positives: a synthesis run's "
                               "synthetic.csv, or held-back real positives for the oracle"),
    ratio: float = typer.Option(None, help="Extra (or repeated) positives per real positive"),
    negatives_from: list[str] = typer.Option([], help="Extra bone/region whose normals are "
                                             "normals of BONE (repeatable)"),
    config: Path = typer.Option(None, help="YAML with classifier settings (or a "
                                "`classifier:` section)"),
    set_: list[str] = typer.Option([], "--set", help="Override a classifier setting, "
                                   "KEY=VALUE (repeatable), e.g. --set epochs=10"),
    seed: int = typer.Option(0, help="Random seed"),
) -> None:
    """Train one lesion classifier with one strategy; predict the real test split."""
    from boneaug.classify import ClassifierConfig
    from boneaug.classify import classify as run_classify
    from boneaug.classify.regions import RegionConfig
    from boneaug.config import load_yaml, parse_overrides, section
    from boneaug.data.manifest import load_manifest

    loaded = load_yaml(config) if config else {}
    settings = section(loaded, "classifier", config) if config else {}
    settings = {**settings, **parse_overrides(set_)}
    cls_config = ClassifierConfig.from_dict(settings)
    # crop tiles takes its lesion scale from a `regions:` section when the YAML has one
    scale = loaded.get("regions") if isinstance(loaded, dict) else None
    regions = RegionConfig.from_dict(scale) if isinstance(scale, dict) else None
    report = run_classify(
        load_manifest(manifest), strategy, out, config=cls_config,
        bone=bone.strip().lower() if bone else None,
        extra=load_manifest(extra) if extra else None, ratio=ratio, seed=seed,
        negatives_from=tuple(n.lower() for n in negatives_from), regions=regions,
        on_epoch=lambda r: typer.echo(f"epoch {r['epoch']}: train loss {r['train_loss']:.4f}, "
                                      f"val AUC {r['val_auc']:.3f}", err=True))
    typer.echo(f"{strategy}: test ROC AUC {report.test_auc:.3f}, PR AUC "
               f"{report.test_pr_auc:.3f}, sensitivity at 90% specificity "
               f"{report.test_sens90:.3f} (epoch {report.best_epoch}, val AUC "
               f"{report.val_auc:.3f}) -> {report.out_dir}")


@app.command()
def experiment(
    config: Path = typer.Option(..., help="Experiment YAML, e.g. configs/phantom-demo.yaml"),
    out: Path = typer.Option(None, "--out", help="Run folder (default runs/<config name>)"),
    set_: list[str] = typer.Option([], "--set", help="Override a setting, SECTION.KEY=VALUE "
                                   "(repeatable), e.g. --set protocol.seeds=1"),
    fresh: bool = typer.Option(False, help="Start the run folder again instead of resuming"),
) -> None:
    """Run the whole protocol of a config (resumable), print the results, write the report."""
    from boneaug.config import parse_overrides
    from boneaug.experiment import load_experiment_config, run_experiment

    cfg = load_experiment_config(config, parse_overrides(set_))
    result = run_experiment(cfg, out or Path("runs") / config.stem, say=typer.echo,
                            fresh=fresh)
    typer.echo("\n" + result.table)
    typer.echo(f"\ndone in {result.seconds / 60:.1f} min; report: {result.report}")


@app.command()
def report(
    run: Path = typer.Argument(..., help="An experiment's run folder"),
    n_boot: int = typer.Option(None, "--n-boot", min=20, help="Bootstrap resamples (default: "
                               "the run's protocol.n_boot)"),
    seed: int = typer.Option(None, help="Bootstrap seed (default: the run's seed)"),
) -> None:
    """Write RUN/report.html (self-contained) and RUN/results.csv from a run's predictions."""
    from boneaug.experiment.report import write_report

    paths = write_report(run, n_boot=n_boot, seed=seed)
    typer.echo(f"wrote {paths.html} and {paths.csv}")


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Run folder"),
    fresh: bool = typer.Option(False, help="Start again instead of resuming an earlier demo"),
) -> None:
    """The main job on the built-in phantom data: configs/phantom-demo.yaml, in minutes."""
    from boneaug.experiment.demo import run_demo

    run_demo(out, say=typer.echo, fresh=fresh)


def main() -> None:
    try:
        app()
    except BoneaugError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(BAD_INPUT)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
