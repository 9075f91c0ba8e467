"""The house rules of docs/architecture.md, checked on the source: the import graph
between boneaug's packages runs one way, and no function is longer than 120 lines."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src" / "boneaug"
LONGEST = 120  # lines of a function, its docstring included


def _unit(module: str) -> str:
    """`boneaug.gan.loop` -> gan; `boneaug.files` -> files (a top-level module is its own
    unit)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _trees() -> dict[Path, ast.Module]:
    return {p: ast.parse(p.read_text(encoding="utf-8")) for p in sorted(SOURCE.rglob("*.py"))}


def test_the_package_imports_run_one_way() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for path, tree in _trees().items():
        me = _unit("boneaug." + ".".join(path.relative_to(SOURCE).with_suffix("").parts))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("boneaug."):
                them = _unit(node.module)
                if them != me:
                    edges[me].add(them)

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    assert [unit for unit in sorted(edges) if unit in reachable(unit)] == []
    # the ground floor imports no stage
    stages = {"data", "patches", "gan", "synth", "classify", "experiment", "cli"}
    for floor in ("errors", "files", "runinfo", "config", "distributed"):
        assert not edges.get(floor, set()) & stages, floor


def test_no_function_is_longer_than_120_lines() -> None:
    long = [f"{path.relative_to(SOURCE)}:{node.name} ({node.end_lineno - node.lineno + 1})"
            for path, tree in _trees().items() for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > LONGEST]
    assert long == []
