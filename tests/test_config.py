from __future__ import annotations

import pytest

from boneaug.config import load_yaml, parse_overrides, section
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

