"""From the test-set predictions of an experiment to one table of results per bone.

`read_predictions` loads ``RUN/evaluation/predictions.csv`` (one row per classifier run
and test image: bone, condition, strategy, ratio, generator_bone, seed, image_id, label,
score); `summarise` reduces it to one row per (bone, condition); `format_table` prints
that summary for the terminal.

Two views of a condition trained with K seeds are reported side by side:
- *over seeds*: each seed's AUC, PR AUC and sensitivity at 90 % specificity, then their
  mean and standard deviation: how much the result depends on the training seed;
- *seed ensemble*: the mean score of the K classifiers per image, with stratified
  bootstrap intervals, the AUC difference to the bone's baseline, DeLong's p for that
  difference (both curves are measured on the same images, so the test is paired), and
  the share of the baseline -> oracle gap that the condition closes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from boneaug.classify.metrics import (
    bootstrap_ci,
    delong_test,
    mean_sd,
    pr_auc,
    roc_auc,
    sensitivity_at_specificity,
)
from boneaug.data.files import read_csv_text
from boneaug.errors import BoneaugError

PREDICTION_COLUMNS = ("bone", "condition", "strategy", "ratio", "generator_bone", "seed",
                      "image_id", "label", "score")
# The order in which conditions are listed: from no augmentation, through the honest
# alternatives and the generative ones, to the upper bound and the synthetic-only check.
STRATEGY_ORDER = ("baseline", "weighted", "oversample", "classic", "copypaste", "gan",
                  "gan-gated", "gan-transfer", "oracle", "tstr")
SUMMARY_COLUMNS = ("bone", "condition", "strategy", "ratio", "generator_bone", "seeds",
                   "n_test", "n_test_pos", "auc_mean", "auc_sd", "pr_auc_mean", "pr_auc_sd",
                   "sens90_mean", "sens90_sd", "auc", "auc_lo", "auc_hi", "pr_auc",
                   "pr_auc_lo", "pr_auc_hi", "sens90", "sens90_lo", "sens90_hi", "delta_auc",
                   "delong_p", "gap_closed")
# The specificity at which sensitivity is reported (the "sens90" columns).
SPECIFICITY = 0.9

_STRING_COLUMNS = ("bone", "condition", "strategy", "image_id")
# The terminal width that format_table aims to stay within.
_WIDTH = 100


def read_predictions(path: str | Path) -> pd.DataFrame:
    """Read a predictions.csv into a table with the columns of `PREDICTION_COLUMNS`.

    Types: bone, condition, strategy, image_id ``str``; generator_bone ``str`` ("" when
    empty); ratio ``float`` (NaN when empty); seed and label ``int64`` (label 0 or 1);
    score ``float64`` (finite). Extra columns are kept as text. A missing or unreadable
    file, a missing column or a bad cell raises a one-line BoneaugError naming the file
    and, for a cell, its line (the header is line 1).
    """
    path = Path(path)
    # Everything as text first, so that an image id like "NA" or "007" stays as written
    # and each number is checked with its line number below.
    raw = read_csv_text(path, "predictions")
    return _typed(raw, source=str(path), first_line=2)


def _typed(table: pd.DataFrame, source: str, first_line: int | None) -> pd.DataFrame:
    """A copy of `table` with checked types; `first_line` is the file line of row 0.

    With ``first_line=None`` (a table built in memory) problems name the row position.
    """
    missing = [c for c in PREDICTION_COLUMNS if c not in table.columns]
    if missing:
        raise BoneaugError(f"{source}: missing column{'s' if len(missing) > 1 else ''} "
                           f"{', '.join(repr(c) for c in missing)} (needs "
                           f"{', '.join(PREDICTION_COLUMNS)})")
    if len(table) == 0:
        raise BoneaugError(f"{source}: no predictions (the table has no rows)")

    def where(pos: int) -> str:
        return f"{source} line {pos + first_line}" if first_line is not None else \
            f"{source} row {pos}"

    out = table.copy()
    for column in _STRING_COLUMNS:
        values = out[column]
        empty = values.isna() | (values.astype(str).str.strip() == "")
        if empty.any():
            raise BoneaugError(f"{where(int(np.flatnonzero(empty)[0]))}: {column} is empty")
        out[column] = values.astype(str).str.strip()
    generator = out["generator_bone"]
    out["generator_bone"] = generator.where(generator.notna(), "").astype(str).str.strip()

    ratio = _numbers(out["ratio"])
    bad = ratio.isna() & _filled(out["ratio"])
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise BoneaugError(f"{where(pos)}: ratio {out['ratio'].iat[pos]!r} is not a number")
    out["ratio"] = ratio.astype(np.float64)

    seed = _numbers(out["seed"])
    bad = ~np.isfinite(seed) | (seed != np.round(seed))
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise BoneaugError(f"{where(pos)}: seed {out['seed'].iat[pos]!r} is not an integer")
    out["seed"] = seed.astype(np.int64)

    label = _numbers(out["label"])
    bad = ~label.isin((0, 1))
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise BoneaugError(f"{where(pos)}: label {out['label'].iat[pos]!r} is not 0 or 1")
    out["label"] = label.astype(np.int64)

    score = _numbers(out["score"])
    bad = ~np.isfinite(score)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise BoneaugError(f"{where(pos)}: score {out['score'].iat[pos]!r} is not a finite "
                           "number")
    out["score"] = score.astype(np.float64)
    return out


def _numbers(values: pd.Series) -> pd.Series:
    """`values` as float64; text that is empty or not a number becomes NaN."""
    if not pd.api.types.is_numeric_dtype(values):
        values = values.astype(str).str.strip().replace("", np.nan)
    return pd.to_numeric(values, errors="coerce").astype(np.float64)


def _filled(values: pd.Series) -> pd.Series:
    """True where a cell holds something (not NaN, not blank text)."""
    return values.notna() & (values.astype(str).str.strip() != "")


@dataclass
class _Condition:
    """The predictions of one (bone, condition): K seeds x n test images."""

    bone: str
    name: str
    strategy: str
    ratio: float
    generator_bone: str
    image_ids: np.ndarray  # (n,) str, sorted
    labels: np.ndarray  # (n,) int64 in {0, 1}
    scores: np.ndarray  # (K, n) float64, rows in seed order


def summarise(
    predictions: pd.DataFrame,
    baseline: str = "baseline",
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """One row per (bone, condition) with the columns of `SUMMARY_COLUMNS`.

    Args:
        predictions: the table of `read_predictions` (or one with the same columns).
        baseline: the condition name of each bone's reference (no augmentation).
        n_boot, seed, level: the bootstrap of the ensemble intervals. Every row uses the
            same `seed`, so the conditions of a bone, which share their test images, are
            bootstrapped on the same replicates; the result is deterministic.

    Columns: bone, condition, strategy, ratio (NaN when none), generator_bone ("" when
    none); seeds (K), n_test, n_test_pos; ``auc_mean``/``auc_sd``, ``pr_auc_*``,
    ``sens90_*``: mean and sd (ddof 1) over the K seeds of each seed's metric; ``auc``,
    ``pr_auc``, ``sens90`` with ``_lo``/``_hi``: the seed ensemble (mean score per image)
    and its stratified bootstrap interval at `level`; ``delta_auc``: ensemble AUC minus
    the baseline's ensemble AUC; ``delong_p``: DeLong's two-sided p for that difference
    (NaN for the baseline itself); ``gap_closed``: ``(auc_mean - baseline auc_mean) /
    (oracle auc_mean - baseline auc_mean)``, the oracle being the bone's ``oracle``
    condition with this row's ratio, else the one with the largest ratio (NaN without
    an oracle or when the oracle does not beat the baseline). Everything compared to
    the baseline is NaN for a bone without one.

    Rows are sorted by bone, then `STRATEGY_ORDER` (unknown strategies last, by name),
    ratio (none first), generator_bone, condition. Raises BoneaugError for a missing
    column, a bad value, a condition whose seeds (or a bone whose conditions) do not
    cover the same test images with the same labels, or a test set without both classes.
    """
    table = _typed(predictions, source="predictions", first_line=None)
    conditions = [_collect(rows, str(bone), str(name))
                  for (bone, name), rows in table.groupby(["bone", "condition"], sort=True)]
    by_bone: dict[str, list[_Condition]] = {}
    for condition in conditions:
        by_bone.setdefault(condition.bone, []).append(condition)
    for bone_conditions in by_bone.values():
        _check_same_images(bone_conditions)

    rows = []
    for bone_conditions in by_bone.values():
        per_seed = {c.name: _seed_metrics(c) for c in bone_conditions}
        ensembles = {c.name: c.scores.mean(axis=0) for c in bone_conditions}
        reference = next((c for c in bone_conditions if c.name == baseline), None)
        oracles = [c for c in bone_conditions if c.strategy == "oracle"]
        for condition in bone_conditions:
            rows.append(_summary_row(condition, per_seed, ensembles, reference, oracles,
                                     n_boot=n_boot, seed=seed, level=level))
    summary = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    rank = {strategy: i for i, strategy in enumerate(STRATEGY_ORDER)}
    summary["_rank"] = [rank.get(s, len(rank)) for s in summary["strategy"]]
    summary = summary.sort_values(
        ["bone", "_rank", "strategy", "ratio", "generator_bone", "condition"],
        na_position="first", kind="mergesort")
    summary = summary.drop(columns="_rank").reset_index(drop=True)
    summary.attrs.update({"n_boot": n_boot, "level": level, "baseline": baseline,
                          "specificity": SPECIFICITY})
    return summary


def _collect(rows: pd.DataFrame, bone: str, name: str) -> _Condition:
    """One condition's predictions as aligned arrays, after checking its seeds agree."""
    where = f"predictions: bone {bone!r}, condition {name!r}"
    for column in ("strategy", "ratio", "generator_bone"):
        if rows[column].nunique(dropna=False) > 1:
            values = ", ".join(repr(v) for v in rows[column].drop_duplicates().tolist()[:3])
            raise BoneaugError(f"{where}: rows disagree on {column} ({values})")
    duplicated = rows.duplicated(["seed", "image_id"])
    if duplicated.any():
        twice = rows[duplicated].iloc[0]
        raise BoneaugError(f"{where}, seed {twice['seed']}: image {twice['image_id']!r} is "
                           "predicted more than once")
    seeds = sorted(rows["seed"].unique().tolist())
    per_seed = {s: part.sort_values("image_id", kind="mergesort")
                for s, part in rows.groupby("seed", sort=True)}
    first = per_seed[seeds[0]]
    image_ids = first["image_id"].to_numpy(dtype=str)
    labels = first["label"].to_numpy(dtype=np.int64)
    for s in seeds[1:]:
        other = per_seed[s]
        _check_alignment(where, f"seed {seeds[0]}", image_ids, labels, f"seed {s}",
                         other["image_id"].to_numpy(dtype=str),
                         other["label"].to_numpy(dtype=np.int64))
    scores = np.vstack([per_seed[s]["score"].to_numpy(dtype=np.float64) for s in seeds])
    head = rows.iloc[0]
    return _Condition(bone=bone, name=name, strategy=str(head["strategy"]),
                      ratio=float(head["ratio"]), generator_bone=str(head["generator_bone"]),
                      image_ids=image_ids, labels=labels, scores=scores)


def _check_alignment(where: str, first: str, ids: np.ndarray, labels: np.ndarray,
                     second: str, other_ids: np.ndarray, other_labels: np.ndarray) -> None:
    """Raise unless `second`'s sorted (image_id, label) lists are those of `first`."""
    if ids.shape != other_ids.shape or not np.array_equal(ids, other_ids):
        missing = sorted(set(ids) - set(other_ids))
        extra = sorted(set(other_ids) - set(ids))
        detail = "; ".join(part for part in (
            f"lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"
            if missing else "",
            f"adds {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}" if extra else "",
        ) if part)
        raise BoneaugError(f"{where}: {second} covers different test images than {first} "
                           f"({detail}); every seed and condition of a bone must predict "
                           "the same images")
    differs = np.flatnonzero(labels != other_labels)
    if differs.shape[0]:
        k = differs[0]
        raise BoneaugError(f"{where}: {second} and {first} give image {ids[k]!r} different "
                           f"labels ({other_labels[k]} vs {labels[k]})")


def _check_same_images(conditions: list[_Condition]) -> None:
    """All conditions of a bone must be measured on one test set, for paired comparisons."""
    first = conditions[0]
    for other in conditions[1:]:
        _check_alignment(f"predictions: bone {first.bone!r}",
                         f"condition {first.name!r}", first.image_ids, first.labels,
                         f"condition {other.name!r}", other.image_ids, other.labels)


def _seed_metrics(condition: _Condition) -> dict[str, tuple[float, float]]:
    """Mean and sd over seeds of each seed's AUC, PR AUC and sensitivity at 90 % spec."""
    where = f"predictions: bone {condition.bone!r}, condition {condition.name!r}"
    values: dict[str, list[float]] = {"auc": [], "pr_auc": [], "sens90": []}
    try:
        for scores in condition.scores:
            values["auc"].append(roc_auc(condition.labels, scores))
            values["pr_auc"].append(pr_auc(condition.labels, scores))
            values["sens90"].append(
                sensitivity_at_specificity(condition.labels, scores, SPECIFICITY))
    except BoneaugError as exc:
        raise BoneaugError(f"{where}: {exc}") from None
    return {name: mean_sd(v) for name, v in values.items()}


def _summary_row(
    condition: _Condition,
    per_seed: dict[str, dict[str, tuple[float, float]]],
    ensembles: dict[str, np.ndarray],
    reference: _Condition | None,
    oracles: list[_Condition],
    *,
    n_boot: int,
    seed: int,
    level: float,
) -> dict[str, object]:
    labels = condition.labels
    ensemble = ensembles[condition.name]
    mine = per_seed[condition.name]
    row: dict[str, object] = {
        "bone": condition.bone, "condition": condition.name, "strategy": condition.strategy,
        "ratio": condition.ratio, "generator_bone": condition.generator_bone,
        "seeds": int(condition.scores.shape[0]), "n_test": int(labels.shape[0]),
        "n_test_pos": int(labels.sum()),
    }
    for name in ("auc", "pr_auc", "sens90"):
        row[f"{name}_mean"], row[f"{name}_sd"] = mine[name]
    ensemble_metrics = {
        "auc": roc_auc,
        "pr_auc": pr_auc,
        "sens90": partial(sensitivity_at_specificity, specificity=SPECIFICITY),
    }
    for name, metric in ensemble_metrics.items():
        row[name] = metric(labels, ensemble)
        row[f"{name}_lo"], row[f"{name}_hi"] = bootstrap_ci(
            labels, ensemble, metric, n_boot=n_boot, seed=seed, level=level)

    row["delta_auc"] = row["delong_p"] = row["gap_closed"] = math.nan
    if reference is None:
        return row
    reference_ensemble = ensembles[reference.name]
    row["delta_auc"] = roc_auc(labels, ensemble) - roc_auc(labels, reference_ensemble)
    if condition.name != reference.name:
        row["delong_p"] = delong_test(labels, ensemble, reference_ensemble).p
    oracle = _matching_oracle(condition.ratio, oracles)
    if oracle is not None:
        baseline_auc = per_seed[reference.name]["auc"][0]
        gap = per_seed[oracle.name]["auc"][0] - baseline_auc
        if gap > 0:
            row["gap_closed"] = (mine["auc"][0] - baseline_auc) / gap
    return row


def _matching_oracle(ratio: float, oracles: list[_Condition]) -> _Condition | None:
    """The oracle with this ratio, else the one with the largest ratio (None if none)."""
    if not oracles:
        return None
    if not math.isnan(ratio):
        for oracle in oracles:
            if not math.isnan(oracle.ratio) and math.isclose(oracle.ratio, ratio):
                return oracle
    # An oracle without a ratio sorts below every ratio: it is the last choice.
    return max(oracles, key=lambda o: -math.inf if math.isnan(o.ratio) else o.ratio)


def format_table(summary: pd.DataFrame, items: str = "images") -> str:
    """The summary of `summarise` as plain text: one block per bone, one line per condition.
    `items`: what a test item is, for the block titles ("images", or "regions" at the
    region level).

    Columns: condition | AUC mean ± sd (over seeds) | ensemble AUC (CI) | PR AUC |
    sensitivity at 90 % specificity | ΔAUC | DeLong p | gap closed (the last three
    against the bone's baseline; "-" where not defined). Lines stay within 100 columns
    for condition names up to about 27 characters.
    """
    needed = ("bone", "condition", "seeds", "n_test", "n_test_pos", "auc_mean", "auc_sd",
              "auc", "auc_lo", "auc_hi", "pr_auc", "sens90", "delta_auc", "delong_p",
              "gap_closed")
    missing = [c for c in needed if c not in summary.columns]
    if missing:
        raise BoneaugError(f"format_table: the summary lacks column(s) {', '.join(missing)}")
    if len(summary) == 0:
        return "no predictions to summarise\n"
    level = float(summary.attrs.get("level", 0.95))
    # Two header lines keep the columns as narrow as their numbers.
    headers = (("", "condition"), ("AUC", "mean±sd"), ("AUC ensemble", f"({level:.0%} CI)"),
               ("", "PR AUC"), ("sens at", "90% spec"), ("", "ΔAUC"), ("DeLong", "p"),
               ("gap", "closed"))
    header_cells = [tuple(top for top, _ in headers), tuple(bottom for _, bottom in headers)]
    titles, bodies = [], []
    for bone, rows in summary.groupby("bone", sort=False):
        first = rows.iloc[0]
        titles.append(f"{bone}: {int(first['n_test'])} test {items}, "
                      f"{int(first['n_test_pos'])} with lesion; seeds per condition: "
                      f"{', '.join(str(k) for k in sorted(set(rows['seeds'].astype(int))))}")
        bodies.append([(
            str(r["condition"]),
            f"{_num(r['auc_mean'])}±{_num(r['auc_sd'])}",
            f"{_num(r['auc'])} ({_num(r['auc_lo'])}-{_num(r['auc_hi'])})",
            _num(r["pr_auc"]),
            _num(r["sens90"]),
            _num(r["delta_auc"], signed=True),
            _p_value(r["delong_p"]),
            "-" if _missing(r["gap_closed"]) else f"{float(r['gap_closed']):.0%}",
        ) for _, r in rows.iterrows()])
    # One set of widths for all bones, so that the blocks line up under each other.
    every_line = header_cells + [line for body in bodies for line in body]
    widths = [max(len(line[i]) for line in every_line) for i in range(len(headers))]
    # Two spaces between columns, one when that keeps a long condition name in 100.
    gap = "  " if sum(widths) + 2 * (len(widths) - 1) <= _WIDTH else " "

    def render(line: tuple[str, ...]) -> str:
        # Condition names read left to right; numbers line up on the right.
        return gap.join(cell.ljust(w) if i == 0 else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(line, widths, strict=True))).rstrip()

    rule = "-" * (sum(widths) + len(gap) * (len(widths) - 1))
    blocks = ["\n".join([title, *map(render, header_cells), rule, *map(render, body)])
              for title, body in zip(titles, bodies, strict=True)]
    note = ("AUC mean±sd: over the seeds. Other columns: the seed ensemble (mean score per\n"
            "image), with stratified bootstrap CIs. ΔAUC, DeLong p and gap closed (the share\n"
            "of the baseline-to-oracle gap in mean AUC) compare with the bone's baseline.")
    return "\n\n".join(blocks) + "\n\n" + note + "\n"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _num(value: Any, signed: bool = False) -> str:
    if _missing(value):
        return "-"
    return f"{float(value):+.3f}" if signed else f"{float(value):.3f}"


def _p_value(value: Any) -> str:
    if _missing(value):
        return "-"
    p = float(value)
    return "<0.001" if p < 0.001 else f"{p:.3f}"


# --------------------------------------------------------------------------- the goal


GOAL_COLUMNS = ("bone", "condition", "gap_closed", "vs", "delta_auc", "delong_p", "beats",
                "goal")


def compare(predictions: pd.DataFrame, bone: str, first: str, second: str) -> Any:
    """DeLong's test of the seed ensemble of condition `first` against that of `second`,
    on the bone's shared test images (`metrics.DeLongResult`, auc1 = `first`)."""
    table = _typed(predictions, source="predictions", first_line=None)
    chosen = table[table["bone"] == bone]
    pair = []
    for name in (first, second):
        rows = chosen[chosen["condition"] == name]
        if rows.empty:
            raise BoneaugError(f"predictions: bone {bone!r} has no condition {name!r}")
        pair.append(_collect(rows, bone, name))
    _check_same_images(pair)
    return delong_test(pair[0].labels, pair[0].scores.mean(axis=0),
                       pair[1].scores.mean(axis=0))


def goal_check(predictions: pd.DataFrame, summary: pd.DataFrame, ratio: float
               ) -> pd.DataFrame:
    """The benchmark's goal, per bone, at synthetic ratio `ratio`:

    - ``gan`` closes at least half of the baseline -> oracle AUC gap, and beats
      ``oversample`` and ``copypaste`` (same ratio) with DeLong p < 0.05;
    - each ``gan-transfer`` closes at least a third of the gap.

    One row per (bone, condition, comparison): the condition's gap closed, the compared
    condition (``vs``; "" for the gap alone), the ensemble AUC difference, DeLong's p,
    ``beats`` (difference > 0 and p < 0.05) and ``goal`` (whether this line's part of the
    goal is met). Conditions or comparisons missing from the run are left out.
    """
    name = f"r{ratio:g}"
    out = []
    for bone, rows in summary.groupby("bone", sort=False):
        by_name = {str(r["condition"]): r for _, r in rows.iterrows()}
        gan = by_name.get(f"gan-{name}")
        if gan is not None:
            gap = float(gan["gap_closed"])
            out.append({"bone": bone, "condition": gan["condition"], "gap_closed": gap,
                        "vs": "", "delta_auc": float("nan"), "delong_p": float("nan"),
                        "beats": False, "goal": bool(gap >= 0.5)})
            for other in (f"oversample-{name}", f"copypaste-{name}"):
                if other not in by_name:
                    continue
                test = compare(predictions, str(bone), str(gan["condition"]), other)
                beats = bool(test.difference > 0 and test.p < 0.05)
                out.append({"bone": bone, "condition": gan["condition"], "gap_closed": gap,
                            "vs": other, "delta_auc": float(test.difference),
                            "delong_p": float(test.p), "beats": beats, "goal": beats})
        for condition, row in by_name.items():
            if row["strategy"] == "gan-transfer" and condition.startswith(
                    f"gan-transfer-{name}-"):
                gap = float(row["gap_closed"])
                out.append({"bone": bone, "condition": condition, "gap_closed": gap,
                            "vs": "", "delta_auc": float("nan"), "delong_p": float("nan"),
                            "beats": False, "goal": bool(gap >= 1 / 3)})
    return pd.DataFrame(out, columns=list(GOAL_COLUMNS))


def format_goal(goal: pd.DataFrame) -> str:
    """`goal_check` as plain text, one line per part of the goal."""
    if goal.empty:
        return "goal: no gan or gan-transfer condition at this ratio in the run\n"
    lines = []
    for _, r in goal.iterrows():
        gap = "-" if _missing(r["gap_closed"]) else f"{float(r['gap_closed']):.0%}"
        if r["vs"]:
            text = (f"beats {r['vs']}: ΔAUC {_num(r['delta_auc'], signed=True)}, DeLong p "
                    f"{_p_value(r['delong_p'])}")
        elif str(r["condition"]).startswith("gan-transfer"):
            text = f"closes >= 1/3 of the gap: {gap}"
        else:
            text = f"closes >= 1/2 of the gap: {gap}"
        lines.append(f"{r['bone']:<8} {r['condition']:<28} {text:<50} "
                     f"{'MET' if r['goal'] else 'not met'}")
    return "\n".join(lines) + "\n"
