"""From the test-set predictions of an experiment to one table of results per bone.

`read_predictions` loads ``RUN/evaluation/predictions.csv`` (one row per classifier run
and test image: bone, condition, strategy, ratio, generator_bone, seed, image_id, label,
score); `summarise` reduces it to one row per (bone, condition); `format_table` prints
that summary for the terminal.

Two views of a condition trained with K seeds are reported side by side:
- *over seeds*: each seed's AUC, PR AUC and sensitivity at 90 % specificity, then their
  mean and standard deviation: how much the result depends on the training seed. The
  main comparison with the bone's baseline is on these: the difference in mean AUC, with
  the interval and p of a bootstrap that resamples both the test images and the training
  seeds (`metrics.seed_image_bootstrap`), so that it counts seed-to-seed noise; and the
  share of the baseline -> oracle gap that the condition closes, where the oracle beats
  the baseline by that test;
- *seed ensemble*: the mean score of the K classifiers per image, with stratified
  bootstrap intervals, the AUC difference to the bone's baseline and DeLong's p for that
  difference (paired on the images, blind to the seed-to-seed noise: a secondary view).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from boneaug.classify.metrics import (
    SeedBootstrapResult,
    bootstrap_ci,
    delong_test,
    mean_sd,
    pr_auc,
    roc_auc,
    seed_image_bootstrap,
    sensitivity_at_specificity,
)
from boneaug.classify.strategies import FOCUS, REFERENCE, STRATEGIES, TABLE, rank, strategy_of
from boneaug.errors import BoneaugError
from boneaug.files import read_csv_text

PREDICTION_COLUMNS = ("bone", "condition", "strategy", "ratio", "generator_bone", "seed",
                      "image_id", "label", "score")
# The order in which conditions are listed (`boneaug.classify.strategies.TABLE`).
STRATEGY_ORDER = STRATEGIES
SUMMARY_COLUMNS = ("bone", "condition", "strategy", "ratio", "generator_bone", "seeds",
                   "n_test", "n_test_pos", "auc_mean", "auc_sd", "pr_auc_mean", "pr_auc_sd",
                   "sens90_mean", "sens90_sd", "auc", "auc_lo", "auc_hi", "pr_auc",
                   "pr_auc_lo", "pr_auc_hi", "sens90", "sens90_lo", "sens90_hi", "delta_auc",
                   "delong_p", "delta_seeds", "delta_seeds_lo", "delta_seeds_hi", "boot_p",
                   "beats_baseline", "gap_closed", "gap_note")
# The specificity at which sensitivity is reported (the "sens90" columns).
SPECIFICITY = 0.9
# A condition beats another when its mean AUC is higher with a bootstrap p below this.
ALPHA = 0.05

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
    baseline: str = REFERENCE.name,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """One row per (bone, condition) with the columns of `SUMMARY_COLUMNS`.

    Args:
        predictions: the table of `read_predictions` (or one with the same columns).
        baseline: the condition name of each bone's reference (no augmentation).
        n_boot, seed, level: the bootstraps: of the ensemble intervals and of the
            seeds x images test against the baseline. Every row uses the same `seed`, so
            the conditions of a bone, which share their test images, are bootstrapped on
            the same image resamples; the result is deterministic.

    Columns: bone, condition, strategy, ratio (NaN when none), generator_bone ("" when
    none); seeds (K), n_test, n_test_pos; ``auc_mean``/``auc_sd``, ``pr_auc_*``,
    ``sens90_*``: mean and sd (ddof 1) over the K seeds of each seed's metric; ``auc``,
    ``pr_auc``, ``sens90`` with ``_lo``/``_hi``: the seed ensemble (mean score per image)
    and its stratified bootstrap interval at `level`; ``delta_auc``: ensemble AUC minus
    the baseline's ensemble AUC; ``delong_p``: DeLong's two-sided p for that difference
    (NaN for the baseline itself; secondary: blind to seed-to-seed noise).

    The main comparison with the baseline, `metrics.seed_image_bootstrap` of this
    condition's K seeds against the baseline's (test images and seeds resampled):
    ``delta_seeds``: ``auc_mean - baseline auc_mean`` (0.0 for the baseline itself);
    ``delta_seeds_lo``/``_hi``: its percentile interval at `level`; ``boot_p``: its
    two-sided bootstrap p; ``beats_baseline``: ``delta_seeds > 0 and boot_p < ALPHA``
    (False for the baseline). All but ``delta_seeds`` are NaN for the baseline itself.

    ``gap_closed``: ``(auc_mean - baseline auc_mean) / (oracle auc_mean - baseline
    auc_mean)``, the oracle being the bone's ``oracle`` condition with this row's ratio,
    else the one with the largest ratio; filled only where that oracle beats the
    baseline (its ``beats_baseline``), else NaN. ``gap_note`` says why it is NaN:
    "baseline" (the baseline's own row), "no baseline", "no oracle", or "<oracle> does
    not beat baseline (ΔAUC +0.012, p 0.410)"; "" where ``gap_closed`` is filled.
    Everything compared to the baseline is NaN (``beats_baseline`` False) for a bone
    without one.

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
        oracles = [c for c in bone_conditions if _upper_bound(c.strategy) and c is not reference]
        tests = {} if reference is None else {
            c.name: seed_image_bootstrap(c.labels, c.scores, reference.scores, n_boot=n_boot,
                                         seed=seed, level=level)
            for c in bone_conditions if c is not reference}
        for condition in bone_conditions:
            rows.append(_summary_row(condition, per_seed, ensembles, reference, oracles,
                                     tests, n_boot=n_boot, seed=seed, level=level))
    summary = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    summary["_rank"] = [rank(s) for s in summary["strategy"]]
    summary = summary.sort_values(
        ["bone", "_rank", "strategy", "ratio", "generator_bone", "condition"],
        na_position="first", kind="mergesort")
    summary = summary.drop(columns="_rank").reset_index(drop=True)
    summary.attrs.update({"n_boot": n_boot, "seed": seed, "level": level,
                          "baseline": baseline, "specificity": SPECIFICITY})
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
    tests: dict[str, SeedBootstrapResult],
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

    for column in ("delta_auc", "delong_p", "delta_seeds", "delta_seeds_lo",
                   "delta_seeds_hi", "boot_p", "gap_closed"):
        row[column] = math.nan
    row["beats_baseline"] = False
    if reference is None:
        row["gap_note"] = "no baseline"
        return row
    reference_ensemble = ensembles[reference.name]
    row["delta_auc"] = roc_auc(labels, ensemble) - roc_auc(labels, reference_ensemble)
    if condition is reference:
        row["delta_seeds"] = 0.0
        row["gap_note"] = REFERENCE.name  # the reference's own row
        return row
    row["delong_p"] = delong_test(labels, ensemble, reference_ensemble).p
    test = tests[condition.name]
    row.update({"delta_seeds": test.difference, "delta_seeds_lo": test.lo,
                "delta_seeds_hi": test.hi, "boot_p": test.p, "beats_baseline": _beats(test)})
    oracle = _matching_oracle(condition.ratio, oracles)
    if oracle is None:
        row["gap_note"] = "no oracle"
        return row
    oracle_test = tests[oracle.name]
    if not _beats(oracle_test):
        row["gap_note"] = (f"{oracle.name} does not beat baseline (ΔAUC "
                           f"{oracle_test.difference:+.3f}, p {_p_value(oracle_test.p)})")
        return row
    baseline_auc = per_seed[reference.name]["auc"][0]
    row["gap_closed"] = (mine["auc"][0] - baseline_auc) / (per_seed[oracle.name]["auc"][0]
                                                           - baseline_auc)
    row["gap_note"] = ""
    return row


def _upper_bound(strategy: str) -> bool:
    kind = strategy_of(strategy)
    return kind is not None and kind.upper_bound


def _beats(test: Any) -> bool:
    """Whether a test's first condition is better: difference > 0 and p < `ALPHA`."""
    return bool(test.difference > 0 and test.p < ALPHA)


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

    Columns: condition | AUC mean ± sd (over seeds) | ΔAUC (``delta_seeds``, against the
    bone's baseline) | its CI | its bootstrap p (seeds x images) | ensemble AUC | DeLong p
    (ensemble against the baseline's ensemble) | gap closed; "-" where not defined. A gap
    closed that is not defined for a reason other than being the baseline reads "-a",
    "-b", ...; a line under the bone's block gives each letter's reason (``gap_note``).
    PR AUC, sensitivity and the ensemble intervals are in the summary (results.csv) only.
    Lines stay within 100 columns for condition names up to 28 characters.
    """
    needed = ("bone", "condition", "seeds", "n_test", "n_test_pos", "auc_mean", "auc_sd",
              "auc", "delong_p", "delta_seeds", "delta_seeds_lo", "delta_seeds_hi", "boot_p",
              "gap_closed", "gap_note")
    missing = [c for c in needed if c not in summary.columns]
    if missing:
        raise BoneaugError(f"format_table: the summary lacks column(s) {', '.join(missing)}")
    if len(summary) == 0:
        return "no predictions to summarise\n"
    level = float(summary.attrs.get("level", 0.95))
    # Two header lines keep the columns as narrow as their numbers.
    headers = (("", "condition"), ("AUC", "mean±sd"), ("ΔAUC", "of means"),
               ("", f"[{level:.0%} CI]"), ("boot", "p"), ("ensemble", "AUC"),
               ("DeLong", "p"), ("gap", "closed"))
    header_cells = [tuple(top for top, _ in headers), tuple(bottom for _, bottom in headers)]
    titles, bodies, footnotes = [], [], []
    for bone, rows in summary.groupby("bone", sort=False):
        first = rows.iloc[0]
        titles.append(f"{bone}: {int(first['n_test'])} test {items}, "
                      f"{int(first['n_test_pos'])} with lesion; seeds per condition: "
                      f"{', '.join(str(k) for k in sorted(set(rows['seeds'].astype(int))))}")
        # Each distinct reason for a gap left blank gets a letter, in order of appearance.
        reasons: dict[str, str] = {}
        body = []
        for _, r in rows.iterrows():
            body.append((
                str(r["condition"]),
                f"{_num(r['auc_mean'])}±{_num(r['auc_sd'])}",
                _num(r["delta_seeds"], signed=True),
                "-" if _missing(r["delta_seeds_lo"]) else
                f"[{_num(r['delta_seeds_lo'], signed=True)}, "
                f"{_num(r['delta_seeds_hi'], signed=True)}]",
                _p_value(r["boot_p"]),
                _num(r["auc"]),
                _p_value(r["delong_p"]),
                _gap_cell(r["gap_closed"], r["gap_note"], reasons),
            ))
        bodies.append(body)
        footnotes.append([f"gap closed -{letter}: {reason}"
                          for reason, letter in reasons.items()])
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
    blocks = ["\n".join([title, *map(render, header_cells), rule, *map(render, body), *notes])
              for title, body, notes in zip(titles, bodies, footnotes, strict=True)]
    note = (f"AUC mean±sd: over the seeds. ΔAUC: mean AUC minus the baseline's, with the "
            f"{level:.0%} CI and\n"
            "p of a bootstrap that resamples the test images (the same draw for both) and,\n"
            "independently, each condition's training seeds: it counts seed-to-seed noise.\n"
            "Ensemble AUC: of the mean score per image over the seeds; DeLong p tests it "
            "against the\n"
            "baseline's ensemble on the same images only, blind to seed noise (secondary).\n"
            "Gap closed: the share of the baseline-to-oracle gap in mean AUC, shown only "
            "where the\n"
            f"oracle beats the baseline (ΔAUC > 0, boot p < {ALPHA:g}).")
    return "\n\n".join(blocks) + "\n\n" + note + "\n"


def _gap_cell(value: Any, note: Any, reasons: dict[str, str]) -> str:
    """A gap closed as a percentage; "-" for the baseline's row; else "-" and the letter
    of its reason (added to `reasons`, reason -> letter, when new)."""
    if not _missing(value):
        return f"{float(value):.0%}"
    reason = "" if _missing(note) else str(note)
    if reason in ("", REFERENCE.name):
        return "-"
    if reason not in reasons:
        reasons[reason] = "abcdefghijklmnopqrstuvwxyz"[len(reasons) % 26]
    return f"-{reasons[reason]}"


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


GOAL_COLUMNS = ("bone", "condition", "gap_closed", "gap_note", "vs", "delta_seeds",
                "boot_lo", "boot_hi", "boot_p", "delta_auc", "delong_p", "beats", "goal")


def compare(
    predictions: pd.DataFrame,
    bone: str,
    first: str,
    second: str,
    test: str = "bootstrap",
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> Any:
    """Condition `first` against condition `second` on the bone's shared test images.

    ``test="bootstrap"`` (the main test): `metrics.seed_image_bootstrap` of the two
    conditions' seeds (test images and seeds resampled; `n_boot`, `seed`, `level`), a
    `metrics.SeedBootstrapResult` whose ``difference`` is mean AUC of `first` minus that
    of `second`. ``test="delong"``: DeLong's test of the two seed ensembles (mean score per
    image), a `metrics.DeLongResult` with auc1 = `first`. Both have ``.difference`` and
    ``.p``.
    """
    if test not in ("bootstrap", "delong"):
        raise BoneaugError(f"compare: test must be 'bootstrap' or 'delong', got {test!r}")
    table = _typed(predictions, source="predictions", first_line=None)
    chosen = table[table["bone"] == bone]
    pair = []
    for name in (first, second):
        rows = chosen[chosen["condition"] == name]
        if rows.empty:
            raise BoneaugError(f"predictions: bone {bone!r} has no condition {name!r}")
        pair.append(_collect(rows, bone, name))
    _check_same_images(pair)
    if test == "delong":
        return delong_test(pair[0].labels, pair[0].scores.mean(axis=0),
                           pair[1].scores.mean(axis=0))
    return seed_image_bootstrap(pair[0].labels, pair[0].scores, pair[1].scores,
                                n_boot=n_boot, seed=seed, level=level)


def goal_check(predictions: pd.DataFrame, summary: pd.DataFrame, ratio: float,
               n_boot: int | None = None, seed: int | None = None) -> pd.DataFrame:
    """The benchmark's goal, per bone, at synthetic ratio `ratio`:

    - ``gan`` closes at least half of the baseline -> oracle AUC gap, and beats
      ``oversample`` and ``copypaste`` (same ratio): higher mean AUC with a seeds x images
      bootstrap p < `ALPHA` (`compare`, ``test="bootstrap"``);
    - each ``gan-transfer`` closes at least a third of the gap.

    One row per (bone, condition, comparison): the condition's gap closed and its
    ``gap_note`` (a gap not defined, e.g. because the oracle does not beat the baseline,
    is not met); the compared condition (``vs``; "" for the gap alone); the main test:
    ``delta_seeds`` (mean AUC difference), ``boot_lo``/``boot_hi`` (its interval at the
    summary's level), ``boot_p``; secondary, DeLong on the two seed ensembles:
    ``delta_auc`` and ``delong_p``; ``beats`` (delta_seeds > 0 and boot_p < `ALPHA`) and
    ``goal`` (whether this line's part of the goal is met). The comparison columns are NaN
    on gap lines. Conditions or comparisons missing from the run are left out.

    `n_boot` and `seed` default to those `summarise` recorded in ``summary.attrs`` (else
    2000 and 0), so that the goal check bootstraps like the summary.
    """
    n_boot = int(summary.attrs.get("n_boot", 2000) if n_boot is None else n_boot)
    seed = int(summary.attrs.get("seed", 0) if seed is None else seed)
    level = float(summary.attrs.get("level", 0.95))
    nan = float("nan")
    out = []
    rivals = [s.condition_name(ratio) for s in TABLE if s.goal_rival]
    transfers = [s for s in TABLE if s.transfer and s.goal_share]

    def gap_line(bone: Any, row: pd.Series, share: float) -> dict[str, Any]:
        gap = float(row["gap_closed"])
        note = row.get("gap_note", "")
        return {"bone": bone, "condition": row["condition"], "gap_closed": gap,
                "gap_note": "" if _missing(note) else str(note), "vs": "",
                "delta_seeds": nan, "boot_lo": nan, "boot_hi": nan, "boot_p": nan,
                "delta_auc": nan, "delong_p": nan, "beats": False,
                "goal": bool(gap >= share)}

    for bone, rows in summary.groupby("bone", sort=False):
        by_name = {str(r["condition"]): r for _, r in rows.iterrows()}
        focus = by_name.get(FOCUS.condition_name(ratio))
        if focus is not None:
            line = gap_line(bone, focus, FOCUS.goal_share)
            out.append(line)
            for other in rivals:
                if other not in by_name:
                    continue
                main = compare(predictions, str(bone), str(focus["condition"]), other,
                               n_boot=n_boot, seed=seed, level=level)
                delong = compare(predictions, str(bone), str(focus["condition"]), other,
                                 test="delong")
                beats = _beats(main)
                out.append({**line, "vs": other, "delta_seeds": float(main.difference),
                            "boot_lo": float(main.lo), "boot_hi": float(main.hi),
                            "boot_p": float(main.p), "delta_auc": float(delong.difference),
                            "delong_p": float(delong.p), "beats": beats, "goal": beats})
        for condition, row in by_name.items():
            for kind in transfers:
                if row["strategy"] == kind.name and condition.startswith(
                        kind.condition_name(ratio) + "-"):
                    out.append(gap_line(bone, row, kind.goal_share))
    return pd.DataFrame(out, columns=list(GOAL_COLUMNS))


def format_goal(goal: pd.DataFrame) -> str:
    """`goal_check` as plain text, one line per part of the goal: a gap closed (or why it
    is not defined), or a comparison's ΔAUC of means with its CI and bootstrap p, then
    DeLong's p on the ensembles."""
    if goal.empty:
        return "goal: no gan or gan-transfer condition at this ratio in the run\n"
    lines = []
    for _, r in goal.iterrows():
        if _missing(r["gap_closed"]):
            note = r.get("gap_note", "")
            gap = "-" if _missing(note) or not note else f"- ({note})"
        else:
            gap = f"{float(r['gap_closed']):.0%}"
        if r["vs"]:
            text = (f"beats {r['vs']}: ΔAUC {_num(r['delta_seeds'], signed=True)} "
                    f"[{_num(r['boot_lo'], signed=True)}, {_num(r['boot_hi'], signed=True)}]"
                    f", p {_p_value(r['boot_p'])}; DeLong p {_p_value(r['delong_p'])}")
        else:
            text = f"closes >= {_goal_share(str(r['condition']))} of the gap: {gap}"
        lines.append(f"{r['bone']:<8} {r['condition']:<28} {text:<50} "
                     f"{'MET' if r['goal'] else 'not met'}")
    return "\n".join(lines) + "\n"


def _goal_share(condition: str) -> Fraction:
    """The share of the gap the goal asks of a condition: a transfer strategy's, else the
    focus strategy's."""
    kinds = [s for s in TABLE if s.transfer and s.goal_share and condition.startswith(s.name)]
    return Fraction((kinds[0] if kinds else FOCUS).goal_share).limit_denominator(100)
