"""Atomic writes and the output-folder rule."""

from __future__ import annotations

import json
import os
import stat

import pytest

from boneaug.errors import BoneaugError
from boneaug.files import atomic_path, check_out_dir, write_text_atomic


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "m.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.csv"]


def test_out_dir_rule(tmp_path):
    check_out_dir(tmp_path / "new", "synthesize")  # absent: fine
    (tmp_path / "empty").mkdir()
    check_out_dir(tmp_path / "empty", "synthesize")  # empty: fine
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "run.json").write_text(json.dumps({"command": "synthesize"}))
    check_out_dir(ours, "synthesize")  # an earlier run of the same command: fine
    with pytest.raises(BoneaugError, match="not an earlier `boneaug phantom` output"):
        check_out_dir(ours, "phantom")
    (tmp_path / "file").write_text("x")
    with pytest.raises(BoneaugError, match="not a folder"):
        check_out_dir(tmp_path / "file", "phantom")
