"""The per-condition tables of docs/results.md, printed as Markdown from a finished run.

    .venv/bin/python benchmarks/results_tables.py runs/phantom-full

For each level (image: ``results.csv``; region: ``results-region.csv``) and bone: the mean
test AUC over seeds with its standard deviation, every seed's AUC (from
``evaluation/runs*.csv``), ΔAUC against the baseline with the 95 % CI and p of the
seeds x images bootstrap (✓: beats the baseline), DeLong p on the seed ensembles and the
gap closed (blank where the oracle does not beat the baseline, as in the report); then
how many conditions spread more than 0.03 over seeds. Numbers are copied, not recomputed.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

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
    text = _num(value)
    return "< 0.001" if text == "0.000" else text


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
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    args = parser.parse_args()
    for level in ("image", "region"):
        suffix = "" if level == "image" else "-region"
        if (args.run / f"results{suffix}.csv").is_file():
            print(f"### {level.capitalize()} level\n")
            print(level_tables(args.run, level) + "\n")


if __name__ == "__main__":
    main()
