"""The experiment config: validation with one-line errors, the conditions it expands to."""

from __future__ import annotations

import numpy as np
import pytest

from boneaug.errors import BoneaugError
from boneaug.experiment import conditions, experiment_config
from boneaug.experiment.protocol import lesion_change


def test_conditions_expand_strategies_ratios_and_transfer_sources():
    config = experiment_config({
        "data": {"bones": ["femur", "tibia", "humerus"]},
        "protocol": {"ratios": [1, 10], "main_ratio": 3, "sweep": ["gan", "oracle"],
                     "bones": ["tibia"]}})
    names = [c.name for c in conditions(config)]
    assert names == ["baseline", "weighted", "oversample-r3", "classic", "copypaste-r3",
                     "gan-r1", "gan-r10", "gan-gated-r3", "gan-transfer-r3-from-femur",
                     "gan-transfer-r3-from-humerus", "oracle-r1", "oracle-r10", "tstr-r3"]
    transfer = [c for c in conditions(config) if c.strategy == "gan-transfer"]
    assert {c.generator_bone for c in transfer} == {"femur", "humerus"}
    assert transfer[0].extra == "synth/gan/tibia-from-femur-s0/synthetic.csv"
    assert all(c.bone == "tibia" for c in conditions(config))


@pytest.mark.parametrize("values,match", [
    ({"protcol": {}}, "unknown section 'protcol'"),
    ({"protocol": {"strategies": ["gan"]}}, "must include baseline"),
    ({"protocol": {"strategies": ["baseline", "mixup"]}}, "unknown 'mixup'"),
    ({"protocol": {"sweep": ["classic"]}}, "'classic' has no ratio"),
    ({"protocol": {"ratios": [0]}}, "protocol.ratios: must be a number > 0 .got 0"),
    ({"protocol": {"seeds": 0}}, "protocol.seeds: must be an integer >= 1 .got 0"),
    ({"protocol": {"bones": ["radius"]}}, "'radius' is not in data.bones"),
    ({"protocol": {"gate": {"direction": "up"}}},
     "protocol.gate.direction: must be one of any, darker, brighter"),
    ({"protocol": {"gate": {"treshold": 1}}}, "unknown setting 'treshold'"),
    ({"data": {"prevalence": 1.5}}, "data.prevalence: must be a number in .0, 1. .got 1.5"),
    ({"data": {"assign": "maybe"}}, "data.assign: must be one of auto, always, never"),
    ({"assign": {"min_confidence": 2}}, "min_confidence: must be a number in"),
    ({"assign": {"steps": "many"}}, "assign.steps: must be a whole number"),
    ({"data": {"phantom": ["mixed"]}}, "data.phantom: must be a mapping"),
    ({"data": {"source": "dicom"}}, "data.source: must be one of phantom, manifest"),
    ({"classifier": {"arch": "vgg"}}, "classifier.arch: must be one of"),
    ({"classifier": {"select": "best-val"}, "regions": {"members": 3}},
     "x.yaml: regions.members: needs select: ema"),
    ({"regions": {"members": 0}}, r"x.yaml: regions.members: must be an integer in \[1, 64\]"),
    ({"seed": "zero"}, "x.yaml: seed: must be an integer .got 'zero'"),
])
def test_bad_configs_are_one_clear_line(values, match):
    with pytest.raises(BoneaugError, match=match) as info:
        experiment_config(values, "x.yaml")
    assert "\n" not in str(info.value) and str(info.value).startswith("x.yaml")


def test_lesion_change_measures_size_and_direction():
    source = np.full((10, 10), 0.5, np.float32)
    darker = source.copy()
    darker[2:6, 2:6] = 0.3  # a lytic lesion: the box gets darker
    change, signed = lesion_change(darker, source, [2, 2, 6, 6])
    assert change == pytest.approx(0.2) and signed == pytest.approx(-0.2)
    change, signed = lesion_change(source + 0.1, source, [0, 0, 10, 10])
    assert change == pytest.approx(0.1) and signed == pytest.approx(0.1)
    assert lesion_change(source, source, [3, 3, 3, 3]) == (0.0, 0.0)  # empty box


def test_a_setting_added_since_does_not_block_resuming(tmp_path):
    import yaml

    from boneaug.experiment.protocol import _open_run

    config = experiment_config({"protocol": {"seeds": 2}})
    run = tmp_path / "run"
    _open_run(config, run, fresh=False)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    del saved["protocol"]["gate"]["direction"]  # as written by a version without it
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    (run / "run.json").write_text('{"command": "experiment"}')
    said: list[str] = []
    _open_run(config, run, fresh=False, say=said.append)  # the default fills the gap
    assert not said
    _open_run(experiment_config({"protocol": {"seeds": 3}}), run, fresh=False,
              say=said.append)  # another config is not refused: stages say what changed
    assert len(said) == 1 and "section protocol" in said[0]


@pytest.mark.parametrize("values,match", [
    ({"data": {"bones": "femur"}}, "data.bones: must be a list"),
    ({"protocol": {"ratios": 3}}, "protocol.ratios: must be a list"),
    ({"data": {"val": "a"}}, "data.val: must be a number"),
    ({"data": {"normal": True}}, "data.normal: must be a whole number"),
    ({"data": {"negatives_from": ["lower_limb"]}}, "negatives_from: must be a mapping"),
    ({"data": {"negatives_from": {"femur": "lower_limb"}}}, "negatives_from.femur: must be a"),
    ({"protocol": {"gate": {"min_change": "x"}}}, "gate.min_change: must be a number"),
])
def test_wrong_types_are_one_line_not_a_traceback(values, match):
    with pytest.raises(BoneaugError, match=match):
        experiment_config(values, "x.yaml")
