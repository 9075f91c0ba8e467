"""The per-condition tables of docs/results.md, printed as Markdown from a finished run.

    .venv/bin/python benchmarks/results_tables.py runs/phantom-full

For each level (image: ``results.csv``; region: ``results-region.csv``) and bone: the mean
test AUC over seeds with its standard deviation, every seed's AUC (from
``evaluation/runs*.csv``), ΔAUC against the baseline with the 95 % CI and p of the
seeds x images bootstrap (✓: beats the baseline), DeLong p on the seed ensembles and the
gap closed (blank where the oracle does not beat the baseline, as in the report); then
how many conditions spread more than 0.03 over seeds. Numbers are copied, not recomputed,
except the goal check at the main ratio (`boneaug.classify.evaluate.goal_check`, as the
report computes it, with the run's `protocol.n_boot` and seed).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd
import yaml

from boneaug.classify.evaluate import goal_check

SPREAD_GOAL = 0.03  # issue 10: seed sd of the test AUC at most this, every condition


def _num(value: object, digits: int = 3) -> str:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(number) else f"{number:.{digits}f}"


def _signed(value: object) -> str:
    text = _num(value)
    return text if text == "—" or text.startswith("-") else f"+{text}"


def _p(value: object) -> str:
    """A p value as the report prints it: below 0.001 as "< 0.001" (a bootstrap's smallest
    p, 1 / (n_boot + 1), rounds to 0.000 or 0.001 depending on n_boot)."""
    text = _num(value)
    return "< 0.001" if text != "—" and float(value) < 0.001 else text  # type: ignore[arg-type]


def level_tables(run: Path, level: str) -> str:
    suffix = "" if level == "image" else "-region"
    results = pd.read_csv(run / f"results{suffix}.csv")
    runs = pd.read_csv(run / "evaluation" / f"runs{suffix}.csv")
    lines: list[str] = []
    for bone, rows in results.groupby("bone", sort=False):
        lines += [f"**{bone}**", "",
                  "| condition | AUC mean ± sd | seeds | ΔAUC [95 % CI] | boot p | DeLong p "
                  "| gap closed |", "|---|---|---|---|---|---|---|"]
        for _, r in rows.iterrows():
            seeds = runs[(runs["bone"] == bone) & (runs["condition"] == r["condition"])]
            each = " / ".join(_num(v) for v in seeds.sort_values("seed")["test_auc"])
            if r["condition"] == "baseline":
                delta = boot = delong = gap = "—"
            else:
                delta = (f"{_signed(r['delta_seeds'])} [{_signed(r['delta_seeds_lo'])}, "
                         f"{_signed(r['delta_seeds_hi'])}]")
                boot = _p(r["boot_p"]) + (" ✓" if bool(r["beats_baseline"]) else "")
                delong = _p(r["delong_p"])
                gap = "—" if pd.isna(r["gap_closed"]) else f"{100 * r['gap_closed']:.0f} %"
            lines.append(f"| {r['condition']} | {_num(r['auc_mean'])} ± {_num(r['auc_sd'])} "
                         f"| {each} | {delta} | {boot} | {delong} | {gap} |")
        lines.append("")
    wide = results[results["auc_sd"] > SPREAD_GOAL]
    lines.append(f"conditions with seed sd > {SPREAD_GOAL}: {len(wide)} of {len(results)}; "
                 f"max sd {results['auc_sd'].max():.3f}"
                 + (f" ({', '.join(wide['bone'] + ' ' + wide['condition'])})"
                    if len(wide) else ""))
    lines.append(spread_line(results["auc_sd"].dropna(), results["seeds"].dropna()))
    return "\n".join(lines)


def spread_line(sds: pd.Series, seeds: pd.Series) -> str:
    """The pooled seed sd (root mean square of the conditions' sds) and how many of them
    would exceed the goal by chance alone if every condition had that sd: a sample sd of n
    normal draws has (n - 1) s^2 / sigma^2 ~ chi^2(n - 1), so with n = 3,
    P(s > c) = exp(-c^2 / sigma^2). The largest of 45 three-seed sds is a noisy statistic."""
    pooled = math.sqrt(float((sds ** 2).mean()))
    n = int(seeds.min())
    if n != 3 or pooled == 0:
        return f"pooled seed sd {pooled:.3f} ({n} seeds)"
    expected = len(sds) * math.exp(-(SPREAD_GOAL / pooled) ** 2)
    # the common sd at which fewer than half a condition would exceed the goal by chance
    needed = SPREAD_GOAL / math.sqrt(math.log(2 * len(sds)))
    return (f"pooled seed sd {pooled:.4f}; with that sd in every condition, "
            f"{expected:.1f} of {len(sds)} would exceed {SPREAD_GOAL} by chance (3 seeds); "
            f"'every condition <= {SPREAD_GOAL}' expects a common sd <= {needed:.4f}")


def goal_table(run: Path, level: str) -> str:
    """The goal check of the report at the run's main ratio, as a Markdown table."""
    suffix = "" if level == "image" else "-region"
    config = yaml.safe_load((run / "config.yaml").read_text())
    protocol = config.get("protocol") or {}
    summary = pd.read_csv(run / f"results{suffix}.csv")
    predictions = pd.read_csv(run / "evaluation" / f"predictions{suffix}.csv")
    goal = goal_check(predictions, summary, float(protocol.get("main_ratio", 3)),
                      n_boot=int(protocol.get("n_boot", 2000)), seed=int(config.get("seed", 0)))
    lines = ["| bone | condition | against | gap closed / ΔAUC [95 % CI] | boot p | DeLong p "
             "| goal |", "|---|---|---|---|---|---|---|"]
    for _, r in goal.iterrows():
        if r["vs"]:
            what = (f"{_signed(r['delta_seeds'])} [{_signed(r['boot_lo'])}, "
                    f"{_signed(r['boot_hi'])}]")
            boot, delong = _p(r["boot_p"]), _p(r["delong_p"])
        else:
            what = ("—" if pd.isna(r["gap_closed"]) else f"{100 * r['gap_closed']:.0f} %") + (
                f" ({r['gap_note']})" if r.get("gap_note") else "")
            boot = delong = ""
        lines.append(f"| {r['bone']} | {r['condition']} | {r['vs'] or 'the gap'} | {what} "
                     f"| {boot} | {delong} | {'met' if r['goal'] else 'not met'} |")
    met = int(goal["goal"].sum())
    lines.append(f"\nlines met: {met} of {len(goal)}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    args = parser.parse_args()
    config = yaml.safe_load((args.run / "config.yaml").read_text())
    levels = (config.get("protocol") or {}).get("levels") or ["image"]
    for level in ("image", "region"):
        suffix = "" if level == "image" else "-region"
        # a copied run whose config dropped a level still holds that level's old results
        if level in levels and (args.run / f"results{suffix}.csv").is_file():
            print(f"### {level.capitalize()} level\n")
            print(level_tables(args.run, level) + "\n")
            print(f"Goal check ({level} level)\n")
            print(goal_table(args.run, level) + "\n")


if __name__ == "__main__":
    main()
