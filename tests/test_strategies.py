"""The strategy table (`boneaug.classify.strategies.TABLE`) is the one source of what a
strategy is: the config's vocabulary, the table order, the report's legend, the headline's
groups, the goal and the experiment's conditions all come from it, and no other module
spells a strategy's name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from boneaug.classify.evaluate import STRATEGY_ORDER
from boneaug.classify.strategies import (
    BY_NAME,
    FOCUS,
    REFERENCE,
    STRATEGIES,
    SWEEPABLE,
    TABLE,
    USES_EXTRA,
    USES_RATIO,
    Extra,
    known_strategy,
    rank,
)
from boneaug.errors import BoneaugError
from boneaug.experiment import conditions, demo_config_path, load_experiment_config
from boneaug.experiment.config import ProtocolConfig
from boneaug.experiment.evidence import HEADLINE_GROUPS
from boneaug.experiment.report_run import _meaning

SOURCE = Path(__file__).resolve().parents[1] / "src" / "boneaug"
# (module, name): the same word naming something else (a folder, a config section, a
# provenance method, a headline column), or a module this change could not touch.
ELSEWHERE = {
    ("experiment/evidence.py", "oracle"),        # the headline's column prefix
    ("synth/copypaste.py", "copypaste"),         # the synthesis method (and its folder)
    ("experiment/paths.py", "gan"),              # the CycleGAN stage's folder
    ("experiment/config.py", "gan"),             # the config section
    ("gan/config.py", "gan"),                    # the config section (gan.config.SECTION)
    ("cli.py", "gan"),                           # the sub-command and its config section
    ("classify/evaluate.py", "baseline"),        # summary.attrs key of summarise's argument
}


def test_every_list_of_strategies_is_derived_from_the_table() -> None:
    assert STRATEGIES == tuple(s.name for s in TABLE) == tuple(BY_NAME)
    assert STRATEGY_ORDER == STRATEGIES
    assert [rank(s.name) for s in TABLE] == list(range(len(TABLE)))
    assert rank("not-a-strategy") == rank(None) == len(TABLE)
    assert USES_EXTRA == {s.name for s in TABLE if s.extra is not Extra.NONE}
    assert USES_EXTRA <= USES_RATIO
    assert set(SWEEPABLE) <= USES_RATIO
    assert ProtocolConfig().strategies == list(STRATEGIES)
    assert set(ProtocolConfig().sweep) <= set(SWEEPABLE)
    assert REFERENCE.name in ProtocolConfig().strategies and FOCUS.needs_generator
    for record in TABLE:
        assert record.meaning and _meaning(record.name) == record.meaning
    assert _meaning("not-a-strategy") == "see the config"
    with pytest.raises(BoneaugError, match="unknown strategy 'x'"):
        known_strategy("x")


def test_the_headline_groups_cover_every_strategy_but_the_reference_once() -> None:
    grouped = [name for group in HEADLINE_GROUPS for name in group.strategies]
    assert sorted(grouped) == sorted(set(STRATEGIES) - {REFERENCE.name})


def test_config_validation_speaks_the_table() -> None:
    ProtocolConfig().validate("protocol")
    with pytest.raises(BoneaugError, match=f"must include {REFERENCE.name}"):
        ProtocolConfig(strategies=[FOCUS.name]).validate("protocol")
    fixed = next(s for s in TABLE if not s.uses_ratio)
    with pytest.raises(BoneaugError, match="has no ratio"):
        ProtocolConfig(sweep=[fixed.name]).validate("protocol")


def test_conditions_come_from_the_records() -> None:
    config = load_experiment_config(demo_config_path(), {
        "data.bones": ["femur", "tibia"], "protocol.strategies": list(STRATEGIES),
        "protocol.ratios": [1, 2], "protocol.main_ratio": 2,
        "protocol.sweep": list(SWEEPABLE)})
    made = conditions(config)
    assert {c.strategy for c in made} == set(STRATEGIES)
    for c in made:
        kind = c.kind
        assert c.name == kind.condition_name(c.ratio, c.generator_bone)
        assert (c.ratio is not None) == kind.uses_ratio
        assert bool(c.extra) == kind.uses_extra
        assert bool(c.generator_bone) == kind.needs_generator
        assert (c.generator_bone not in ("", c.bone)) == kind.transfer
    per_bone = [c for c in made if c.bone == "femur"]
    swept = [c.ratio for c in per_bone if c.strategy == FOCUS.name]
    assert swept == [1, 2]
    assert [c.strategy for c in per_bone] == sorted((c.strategy for c in per_bone), key=rank)


def test_no_other_module_spells_a_strategy_name() -> None:
    found = set()
    for path in SOURCE.rglob("*.py"):
        module = path.relative_to(SOURCE).as_posix()
        if module == "classify/strategies.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
                      and node.body and isinstance(node.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and node.value in BY_NAME
                    and id(node) not in docstrings):
                found.add((module, node.value))
    assert found - ELSEWHERE == set()


def test_the_cli_help_lists_the_table() -> None:
    import typer

    from boneaug.cli import app

    command = typer.main.get_command(app).commands["classify"]  # type: ignore[attr-defined]
    option = next(p for p in command.params if p.name == "strategy")
    assert option.help == ", ".join(STRATEGIES[:-1]) + f" or {STRATEGIES[-1]}"
