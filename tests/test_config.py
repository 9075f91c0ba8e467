from __future__ import annotations

import pytest

from boneaug.config import (
    check_amp,
    check_choice,
    check_number,
    load_yaml,
    parse_overrides,
    section,
)
from boneaug.errors import BoneaugError


def test_load_yaml_and_sections(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("gan:\n  iterations: 10\n  lr: 0.001\nseed: 3\n")
    data = load_yaml(path)
    assert section(data, "gan", path) == {"iterations": 10, "lr": 0.001}
    assert section(data, "patches", path) is data


@pytest.mark.parametrize(("text", "expected"), [
    ("a: [1, 2\n", "line 2: not valid YAML"),
    ("- 1\n- 2\n", "expected a mapping"),
])
def test_bad_yaml_is_one_line(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(BoneaugError) as info:
        load_yaml(path)
    assert expected in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("data", "expected"), [
    (b"gan:\n  iterations: 10 \xff\xfe\n", "not a UTF-8 text file (byte 22)"),
    (b"", "the config file is empty"),
    (b"# only a comment\n", "the config file is empty"),
    (b"{}\n", "the config file is empty"),
])
def test_unreadable_or_empty_config_is_one_line(tmp_path, data, expected):
    path = tmp_path / "c.yaml"
    path.write_bytes(data)
    with pytest.raises(BoneaugError) as info:
        load_yaml(path)
    assert expected in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_and_bad_section(tmp_path):
    with pytest.raises(BoneaugError, match="no such config file"):
        load_yaml(tmp_path / "none.yaml")
    with pytest.raises(BoneaugError, match="section 'gan' must be a mapping"):
        section({"gan": 3}, "gan", "x.yaml")


def test_overrides():
    assert parse_overrides(["iterations=5", "lr=2e-4", "device=cpu", "amp=true"]) == {
        "iterations": 5, "lr": 2e-4, "device": "cpu", "amp": True}
    with pytest.raises(BoneaugError, match="KEY=VALUE"):
        parse_overrides(["iterations"])



@pytest.mark.parametrize(("args", "kw", "message"), [
    ((0, 1), {"integer": True}, "s.k: must be an integer >= 1 (got 0)"),
    ((2.5, 1), {"integer": True}, "s.k: must be an integer >= 1 (got 2.5)"),
    ((True, 0), {"integer": True}, "s.k: must be an integer >= 0 (got True)"),
    ((0, 0), {"bounds": "()"}, "s.k: must be a number > 0 (got 0)"),
    ((1.0, 0, 1), {"bounds": "[)"}, "s.k: must be a number in [0, 1) (got 1.0)"),
    ((float("nan"), 0), {}, "s.k: must be a number >= 0 (got nan)"),
    ((float("inf"),), {}, "s.k: must be a number (got inf)"),
    (("3",), {}, "s.k: must be a number (got '3')"),
    ((300, 1, 256), {"integer": True}, "s.k: must be an integer in [1, 256] (got 300)"),
    ((2e-4, None, 1e-4), {}, "s.k: must be a number <= 0.0001 (got 0.0002)"),
])
def test_check_number_has_one_message_format(args, kw, message):
    with pytest.raises(BoneaugError) as info:
        check_number("s", "k", *args, **kw)
    assert str(info.value) == message


def test_check_number_and_check_choice_accept_what_they_should():
    check_number("s", "k", 1, 1, integer=True)
    check_number("s", "k", 0.5, 0, 1, bounds="()")
    check_number("s", "k", 3, 0)  # an int is a number
    check_choice("s", "k", False, ("auto", True, False))
    with pytest.raises(BoneaugError, match=r"^s.k: must be one of auto, true, false \(got 1\)$"):
        check_choice("s", "k", 1, ("auto", True, False))  # 1 == True, but it is not a flag


def test_amp_is_one_vocabulary_in_every_config():
    """auto / bf16 / off, YAML true / false meaning bf16 / off, one error, in both trainers."""
    from boneaug.classify import ClassifierConfig
    from boneaug.gan import GanConfig

    for build in (GanConfig.from_dict, ClassifierConfig.from_dict):
        for given, kept in (("auto", "auto"), ("bf16", "bf16"), ("off", "off"), (True, "bf16"),
                            (False, "off")):
            assert build({"amp": given}).amp == kept
        with pytest.raises(BoneaugError) as info:
            build({"amp": "fp16"})
        assert str(info.value).endswith(".amp: must be one of auto, bf16, off (or true / false) "
                                        "(got 'fp16')")
    check_amp("s", True)
    with pytest.raises(BoneaugError, match="^s.amp: "):
        check_amp("s", 1)
