"""`RunPaths` names every path of a run; the names are what runs on disk hold, so they are
pinned here, and the synthesis folders it names are the ones it finds again."""

from __future__ import annotations

from pathlib import Path

from boneaug.classify.strategies import Extra
from boneaug.experiment.paths import RunPaths, SynthFolder


def test_the_names_of_a_run_stay_as_runs_on_disk_have_them(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    rel = paths.relative
    assert rel(paths.manifest) == "data/manifest.csv"
    assert rel(paths.oracle_pool) == "data/oracle-pool.csv"
    assert rel(paths.generator("femur")) == "gan/femur/generator_healthy_to_lesion.pt"
    assert rel(paths.lesion_patches("femur")) == "patches/femur/lesion/patches.npy"
    assert rel(paths.gated("femur")) == "gate/femur/gated.csv"
    assert rel(paths.classifier("image", "femur", "gan-r3", 1)) == "cls/femur/gan-r3/seed1"
    assert rel(paths.classifier("region", "tibia", "baseline", 0)) == \
        "cls-region/tibia/baseline/seed0"
    assert RunPaths.classifier_stage("region", "tibia", "baseline", 0) == \
        "cls-region:tibia:baseline:s0"
    assert rel(paths.stage_file("cls:femur:gan-r3:s0")) == "stages/cls_femur_gan-r3_s0.json"
    assert rel(paths.predictions("-region")) == "evaluation/predictions-region.csv"
    assert rel(paths.results()) == "results.csv" and rel(paths.report) == "report.html"
    own, transfer, paste = (paths.own_synth("femur", 0),
                            paths.transfer_synth("tibia", "femur", 2),
                            paths.paste_synth("femur", 0))
    assert (own.relative, own.stage) == ("synth/gan/femur-s0", "synth:gan:femur")
    assert (transfer.relative, transfer.stage) == ("synth/gan/tibia-from-femur-s2",
                                                   "synth:gan:tibia-from-femur")
    assert (paste.relative, paste.stage) == ("synth/copypaste/femur-s0",
                                             "synth:copypaste:femur")
    extras = {source: paths.extra_positives(source, "tibia", 0, "femur") for source in Extra}
    assert extras[Extra.NONE] is None
    assert rel(extras[Extra.TRANSFER]) == "synth/gan/tibia-from-femur-s0/synthetic.csv"
    assert rel(extras[Extra.POOL]) == "data/oracle-pool.csv"


def test_found_synth_finds_what_it_names_and_nothing_else(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    named = [paths.own_synth("femur", 1), paths.own_synth("femur", 0),
             paths.transfer_synth("femur", "tibia", 0), paths.paste_synth("femur", 0)]
    for synth in [*named, paths.own_synth("femurs", 0), paths.own_synth("tibia", 0)]:
        paths.synthetic(synth).parent.mkdir(parents=True)
        paths.synthetic(synth).write_text("")
    (paths.synth_root / "gan" / "femur-s9").mkdir()  # no manifest: not a result
    (paths.synth_root / "gan" / "femur-sx").mkdir()
    found = paths.found_synth("femur")
    assert found == [named[1], named[0], named[2], named[3]]
    assert SynthFolder.parse("gan", "femur", "femur-from-tibia-s0") == named[2]
    assert SynthFolder.parse("gan", "femur", "femurs-s0") is None
