"""The experiment report: results.csv matches the summary; report.html is one offline file
with every section, embedded PNG figures, escaped text; missing inputs never crash it."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from boneaug.classify.evaluate import SUMMARY_COLUMNS
from boneaug.data import Manifest, new_table, save_manifest, write_png16
from boneaug.errors import BoneaugError
from boneaug.experiment.report import NOT_IN_RUN, SECTIONS, ReportPaths, write_report

BONES = ("femur", "tibia")
SEEDS = (0, 1)
N_TEST = 30  # per bone: 15 with lesion, 15 without
TORCH_VERSION = "2.13.0+report-test"
CONFIG_TEXT = """\
# an experiment on the phantom
data:
  phantom: {normal: 60, lesion: 12}
note: "a < b & c"
report:
  ratio: 3
"""


def conditions(bone: str) -> list[tuple[str, str, float | None, str, float]]:
    """(condition, strategy, ratio, generator bone, signal strength) of one bone."""
    other = BONES[1] if bone == BONES[0] else BONES[0]
    return [
        ("baseline", "baseline", None, "", 0.3),
        ("oversample-r3", "oversample", 3.0, "", 0.5),
        ("gan-r1", "gan", 1.0, bone, 1.0),
        ("gan-r3", "gan", 3.0, bone, 4.0),  # clearly better than the baseline: p < 0.05
        ("gan-gated-r3", "gan-gated", 3.0, bone, 3.5),
        (f"gan-transfer-r3-from-{other}", "gan-transfer", 3.0, other, 0.8),
        ("oracle-r3", "oracle", 3.0, "", 5.0),
        ("tstr-r3", "tstr", 3.0, bone, 0.6),
    ]


def make_run(root: Path, synth: bool = True, extras: bool = True) -> Path:
    """A tiny experiment run folder; `extras` adds config, run.json, runs, gate, patches."""
    run = root / "run"
    rng = np.random.default_rng(0)
    rows, runs = [], []
    for bone in BONES:
        labels = np.array([1] * (N_TEST // 2) + [0] * (N_TEST // 2))
        for condition, strategy, ratio, gen, strength in conditions(bone):
            for seed in SEEDS:
                scores = strength * labels + rng.normal(size=N_TEST)
                for i, (label, score) in enumerate(zip(labels, scores, strict=True)):
                    rows.append({"bone": bone, "condition": condition, "strategy": strategy,
                                 "ratio": ratio, "generator_bone": gen, "seed": seed,
                                 "image_id": f"{bone}-{i:03d}", "label": int(label),
                                 "score": float(score)})
                runs.append({"bone": bone, "condition": condition, "strategy": strategy,
                             "ratio": ratio, "generator_bone": gen, "seed": seed,
                             "n_train": 40 + seed, "n_train_pos_real": 5,
                             "n_train_pos_extra": 0 if ratio is None else int(5 * ratio),
                             "n_train_neg": 35, "best_epoch": 3, "val_auc": 0.7 + 0.01 * seed,
                             "train_seconds": 12.5})
    (run / "evaluation").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(run / "evaluation" / "predictions.csv", index=False)
    if extras:
        pd.DataFrame(runs).to_csv(run / "evaluation" / "runs.csv", index=False)
        (run / "evaluation" / "gate.json").write_text(json.dumps({"bones": [
            {"bone": b, "threshold": 0.25, "scored": 20, "kept": 15, "dropped": 5,
             "source": "gan-r3"} for b in BONES]}))
        (run / "config.yaml").write_text(CONFIG_TEXT)
        (run / "run.json").write_text(json.dumps({
            "command": "experiment", "config": {"report": {"ratio": 3}}, "seed": 0,
            "started": "2026-01-02T03:04:05+00:00", "wall_seconds": 61.2,
            "versions": {"python": "3.11.9", "torch": TORCH_VERSION, "monai": "1.6.1"},
            "git_commit": "abc123",
            "argv": ["/x/.venv/bin/boneaug", "experiment", "--config", "c.yaml"]}))
        lesion = run / "patches" / "femur" / "lesion"
        lesion.mkdir(parents=True)
        np.save(lesion / "patches.npy",
                rng.integers(0, 65536, (5, 16, 16), dtype=np.uint64).astype(np.uint16))
    if synth:
        write_synthetic(run / "synth" / "gan" / "femur-s0", "femur", "femur", 2, rng)
        write_synthetic(run / "synth" / "gan" / "tibia-from-femur-s0", "tibia", "femur", 1, rng)
    return run


def write_synthetic(folder: Path, bone: str, gen: str, count: int,
                    rng: np.random.Generator) -> None:
    rows = []
    for i in range(count):
        rel = f"images/{bone}-syn-{i}.png"
        write_png16(folder / rel, rng.random((40, 30)))
        provenance = {"crop_box": [4, 6, 24, 26], "lesion_box": [10, 12, 18, 20],
                      "generator_bone": gen, "source_image_id": f"{bone}-src-{i}"}
        rows.append({"image_id": f"{bone}-from-{gen}-syn-{i}", "path": rel, "bone": bone,
                     "label": 1, "boxes": [[10, 12, 18, 20]], "split": "train",
                     "origin": "synthetic", "provenance": json.dumps(provenance)})
    save_manifest(Manifest(new_table(rows), folder), folder / "synthetic.csv")


def section(page: str, number: int) -> str:
    start = page.index(f'<section id="s{number}">')
    return page[start:page.index("</section>", start)]


@pytest.fixture(scope="module")
def full_report(tmp_path_factory) -> tuple[Path, ReportPaths]:
    run = make_run(tmp_path_factory.mktemp("report"))
    return run, write_report(run, n_boot=50)


def test_results_csv_is_the_summary(full_report):
    run, paths = full_report
    assert paths.csv == run / "results.csv"
    results = pd.read_csv(paths.csv)
    assert list(results.columns) == list(SUMMARY_COLUMNS)
    assert len(results) == len(BONES) * len(conditions("femur"))
    assert set(zip(results["bone"], results["condition"], strict=True)) == {
        (b, c[0]) for b in BONES for c in conditions(b)}
    assert (results["seeds"] == len(SEEDS)).all()
    assert (results["n_test"] == N_TEST).all()
    # Atomic writes leave no temporary file behind.
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]


def test_report_is_self_contained_and_complete(full_report):
    run, paths = full_report
    assert paths.html == run / "report.html"
    page = paths.html.read_text(encoding="utf-8")
    # Nothing is fetched from the network: no external src/href, no script, no stylesheet link.
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in page
    # Figures: ROC, AUC-vs-ratio, GAN transfer matrix, TSTR matrix, one sample sheet per bone.
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 6
    assert all(base64.b64decode(u).startswith(b"\x89PNG\r\n\x1a\n") for u in uris)
    # ... and the same figures as files, for papers and docs
    files = sorted((run / "figures").glob("*.png"))
    assert len(files) == 6 and "roc-curves-per-bone.png" in {f.name for f in files}
    assert sorted(f.read_bytes() for f in files) == sorted(base64.b64decode(u) for u in uris)
    for number in (6, 7, 11):
        assert "data:image/png;base64," in section(page, number)
    assert section(page, 8).count("data:image/png;base64,") == 2
    # Config shown verbatim but escaped; versions from run.json.
    assert "# an experiment on the phantom" in section(page, 13)
    assert "a &lt; b &amp; c" in page and "a < b & c" not in page
    assert TORCH_VERSION in section(page, 13)
    import matplotlib.pyplot as plt

    assert not plt.get_fignums()  # every figure was closed
    assert "3 (from config report.ratio)" in section(page, 2)
    assert "boneaug experiment --config c.yaml" in section(page, 2)  # as typed


def test_report_contents(full_report):
    _, paths = full_report
    page = paths.html.read_text(encoding="utf-8")
    results = section(page, 4)
    assert 'class="sig"' in results  # gan-r3 beats the baseline clearly
    assert results.count("<h3>") == len(BONES) + 1  # a table per bone, then the goal
    assert "Against the goal (ratio 3)" in results and "gan-transfer-r3-from-" in results
    for bone in BONES:
        for condition, *_ in conditions(bone):
            assert f"<td>{condition}</td>" in results
    # The transfer matrix: generator bones as rows, both cells of the femur generator filled.
    transfer = section(page, 8)
    assert "gan-transfer" in transfer and "TSTR" in transfer
    # Gate table and gated-vs-ungated comparison.
    gate = section(page, 9)
    assert "<td>0.2500</td>" in gate and "75 %" in gate and "<td>gan-gated-r3</td>" in gate
    # Sample sheets: femur has real and synthetic rows; tibia only transfer synthetics.
    samples = section(page, 11)
    assert "real lesion patches (patches/tibia/lesion/patches.npy): not in this run" in samples
    # Runs table: one row per (bone, condition), sizes from runs.csv.
    runs = section(page, 12)
    assert runs.count("<tr>") == 1 + len(BONES) * len(conditions("femur"))
    assert "<td>40–41</td>" in runs  # n_train differs between the seeds


def test_missing_predictions_is_one_line(tmp_path):
    (tmp_path / "evaluation").mkdir()
    with pytest.raises(BoneaugError, match=r"no evaluation/predictions\.csv; run the "
                                           r"experiment first") as info:
        write_report(tmp_path)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "report.html").exists()


def test_missing_optional_inputs_say_not_in_this_run(tmp_path):
    run = make_run(tmp_path, synth=False, extras=False)
    paths = write_report(run, n_boot=20)
    page = paths.html.read_text(encoding="utf-8")
    assert paths.csv.is_file()
    for number in (9, 10, 11, 12, 13):
        assert NOT_IN_RUN in section(page, number), number
    assert "Synthetic images (synth/ folder): not in this run" in section(page, 11)
    assert "data:image/png;base64," not in section(page, 11)
    # The figures that need only predictions are still there.
    assert "data:image/png;base64," in section(page, 6)
    assert "data:image/png;base64," in section(page, 7)


def test_the_realism_section_shows_each_set_against_the_floor(tmp_path):
    run = make_run(tmp_path, synth=False, extras=False)
    (run / "realism").mkdir()
    floor = {"name": "real lesions (other half)", "folder": "", "kid": 0.02, "lo": 0.01,
             "hi": 0.03, "n": 40, "ratio": 1.0}
    sets = [{"name": "healthy patches", "folder": "", "kid": 0.9, "lo": 0.8, "hi": 1.0,
             "n": 200, "ratio": 45.0},
            {"name": "gan", "folder": "synth/gan/femur-s0", "kid": 0.03, "lo": 0.02,
             "hi": 0.04, "n": 90, "ratio": 1.5},
            {"name": "copypaste", "folder": "synth/copypaste/femur-s0", "problem":
             "only 2 patches"}]
    (run / "realism" / "femur.json").write_text(json.dumps(
        {"bone": "femur", "reference_lesions": 20, "floor": floor, "sets": sets}))
    (run / "realism" / "tibia.json").write_text(json.dumps(
        {"bone": "tibia", "problem": "needs at least 8 held-out real lesions, found 3",
         "sets": []}))
    page = write_report(run, n_boot=20).html.read_text(encoding="utf-8")
    realism = section(page, 10)
    assert "<td>gan</td>" in realism and "30.0 [20.0, 40.0]" in realism
    assert "<td>1.5×</td>" in realism and "<td>45.0×</td>" in realism
    assert realism.count('class="sig"') == 1  # the gan set, within 2x the floor
    assert "only 2 patches" in realism
    assert "tibia: not measured (needs at least 8 held-out real lesions" in realism


def test_unreadable_optional_input_is_noted_not_raised(tmp_path):
    run = make_run(tmp_path, synth=False, extras=False)
    (run / "evaluation" / "gate.json").write_text("{not json")
    (run / "config.yaml").write_text("a: [unclosed\n")
    page = write_report(run, n_boot=20, seed=0).html.read_text(encoding="utf-8")
    assert "gate.json could not be read" in section(page, 9)
    assert "config.yaml could not be read" in section(page, 13)


def test_an_unreadable_config_never_changes_the_intervals_silently(tmp_path):
    run = make_run(tmp_path, synth=False, extras=False)
    (run / "config.yaml").write_bytes(b"protocol:\n  n_boot: 50\xff\n")
    before = (run / "results.csv").read_bytes() if (run / "results.csv").is_file() else None
    with pytest.raises(BoneaugError, match="the bootstrap settings of the run are unknown"):
        write_report(run)
    after = (run / "results.csv").read_bytes() if (run / "results.csv").is_file() else None
    assert after == before
    # run.json's recorded config stands in
    (run / "run.json").write_text(json.dumps({"config": {"seed": 0,
                                                         "protocol": {"n_boot": 20}}}))
    assert write_report(run).csv.is_file()


def test_main_ratio_from_protocol_else_most_common_gan_ratio(tmp_path):
    run = make_run(tmp_path / "a", synth=False, extras=False)
    page = write_report(run, n_boot=20).html.read_text(encoding="utf-8")
    # gan-r1 and gan-r3 tie; the tie goes to the larger ratio.
    assert "3 (from the most common ratio of the gan conditions)" in section(page, 2)
    (run / "config.yaml").write_text("name: tiny\nprotocol:\n  main_ratio: 1\n")
    page = write_report(run, n_boot=20).html.read_text(encoding="utf-8")
    assert "1 (from config protocol.main_ratio)" in section(page, 2)
    assert "<dd>tiny</dd>" in section(page, 2)
    # At ratio 1 only the own-bone gan conditions exist: the diagonal, no transfer cells.
    transfer = section(page, 8)
    gan_part, tstr_part = transfer.split("<h3>Train on synthetic, test on real")
    assert "GAN augmentation, ratio 1" in gan_part
    assert gan_part.count("<td></td>") == 2  # femur->tibia and tibia->femur
    assert "(TSTR), ratio 3" in tstr_part  # tstr ran at 3 only: its own ratio is used


def test_headline_and_probe_warn_when_the_probe_is_high(tmp_path):
    run = make_run(tmp_path, synth=False, extras=False)
    probe = {"bone": "femur", "level": "image", "when": "", "n_pos": 30, "n_neg": 90,
             "auc": 0.74, "ci": [0.66, 0.82], "metadata_auc": 0.55,
             "metadata_ci": [0.45, 0.65], "metadata_columns": ["age"], "folds": 5,
             "skipped": 0}
    (run / "evaluation" / "probe.json").write_text(json.dumps({"results": [probe]}))
    page = write_report(run, n_boot=20).html.read_text(encoding="utf-8")
    headline = section(page, 1)
    assert "femur (image level): NOT about lesions" in headline
    assert "tibia (image level): NOT" not in headline  # no probe for the tibia: no verdict
    assert "0.740 [0.660, 0.820]" in section(page, 3) and 'class="warn"' in section(page, 3)
    assert "0.74 [0.66, 0.82]" in headline
    # a probe above the line whose interval holds chance is undecided, not a verdict
    probe.update(auc=0.63, ci=[0.42, 0.81])
    (run / "evaluation" / "probe.json").write_text(json.dumps({"results": [probe]}))
    headline = section(write_report(run, n_boot=20).html.read_text(encoding="utf-8"), 1)
    assert "femur (image level): a shortcut is NOT ruled out" in headline
    assert "NOT about lesions" not in headline
