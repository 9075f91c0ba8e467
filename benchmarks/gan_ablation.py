"""The generator ablation of issue 12: one row per (variant, bone), as Markdown.

    .venv/bin/python benchmarks/gan_ablation.py reference=runs/phantom-full-clean \\
        mask=runs/ablation-mask resize=runs/ablation-resize

Each NAME=RUN is a finished phantom benchmark whose generators differ by one `gan`
setting. A variant is made from the reference run without redoing what it shares:

    cp -r runs/phantom-full-clean runs/ablation-mask
    boneaug experiment --config configs/phantom-full.yaml --out runs/ablation-mask \\
        --set gan.mask=true

(stage keys: the data, patches, probes, baselines, oracles and copy-paste are reused;
the CycleGANs, their synthesis and every classifier that uses them are redone.)

Per bone, from the run's own files: the realism of the own generator's lesions (KID as a
multiple of the real-vs-real floor, ``realism/<bone>.json``); the seam ratio (median,
p90) of the own-bone synthesis (``synth/gan/<bone>-s0/synthetic.csv``); the share of
synthetic lesions that make their box brighter than the source film (``lesion_change``;
real phantom lesions are lytic: 0-11 % brighten, docs/results.md); `gan-r3`'s mean test
AUC ± seed sd and the goal check's lines at ratio 3 (ΔAUC against `oversample-r3` and
`copypaste-r3` with the seeds x images bootstrap p, the share of the baseline-to-oracle
gap closed), the gap each `gan-transfer-r3` closes, and `tstr-r3`'s AUC (a classifier
trained on synthetic lesions only, tested on real ones), at the image level.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from lesion_visibility import synthetic_changes  # beside this script

from boneaug.classify.evaluate import goal_check
from boneaug.data import load_manifest


def synthesis_stats(csv: Path) -> tuple[float, float, float]:
    """(median seam ratio, p90 seam ratio, share of lesions brighter than their source)."""
    changes, _ = synthetic_changes(csv)
    seams = [json.loads(p).get("seam_ratio") for p in load_manifest(csv).table["provenance"]]
    seams = [float(v) for v in seams if v is not None]
    return (float(np.median(seams)), float(np.percentile(seams, 90)),
            float(np.mean([signed > 0 for _, signed in changes])))


def rows_of(name: str, run: Path) -> list[str]:
    config = yaml.safe_load((run / "config.yaml").read_text())
    protocol = config.get("protocol") or {}
    ratio = float(protocol.get("main_ratio", 3))
    summary = pd.read_csv(run / "results.csv")
    goal = goal_check(pd.read_csv(run / "evaluation" / "predictions.csv"), summary, ratio,
                      n_boot=int(protocol.get("n_boot", 2000)), seed=int(config.get("seed", 0)))
    focus = f"gan-r{ratio:g}"
    out = []
    for bone, rows in summary.groupby("bone", sort=False):
        own = rows[rows["condition"] == focus]
        if own.empty:
            continue
        seam50, seam90, bright = synthesis_stats(run / "synth" / "gan" / f"{bone}-s0"
                                                 / "synthetic.csv")
        realism = _realism(run / "realism" / f"{bone}.json")
        lines = goal[(goal["bone"] == bone) & (goal["condition"] == focus)]
        versus = {r["vs"]: r for _, r in lines.iterrows()}
        gap = lines[lines["vs"] == ""]["gap_closed"]
        transfers = goal[(goal["bone"] == bone)
                         & goal["condition"].str.startswith(f"gan-transfer-r{ratio:g}-")]
        out.append(
            f"| {name} | {bone} | {realism} | {seam50:.2f} / {seam90:.2f} | {100 * bright:.0f} % "
            f"| {own['auc_mean'].iloc[0]:.3f} ± {own['auc_sd'].iloc[0]:.3f} "
            f"| {_against(versus, f'oversample-r{ratio:g}')} "
            f"| {_against(versus, f'copypaste-r{ratio:g}')} "
            f"| {_share(gap.iloc[0] if len(gap) else float('nan'))} "
            f"| {', '.join(_share(v) for v in transfers['gap_closed']) or '—'} "
            f"| {_auc(rows, f'tstr-r{ratio:g}')} |")
    return out


def _realism(path: Path) -> str:
    """The own generator's KID as a multiple of the floor, from the run's realism stage."""
    if not path.is_file():
        return "—"
    doc = json.loads(path.read_text())
    own = [s for s in doc.get("sets", []) if s.get("name") == "gan" and "ratio" in s]
    return f"{own[0]['ratio']:.1f}×" if own else "—"


def _against(versus: dict, rival: str) -> str:
    r = versus.get(rival)
    if r is None:
        return "—"
    p = float(r["boot_p"])
    return f"{r['delta_seeds']:+.3f} (p {'< 0.001' if p < 0.001 else f'{p:.3f}'})"


def _auc(rows: pd.DataFrame, condition: str) -> str:
    row = rows[rows["condition"] == condition]
    return "—" if row.empty else f"{row['auc_mean'].iloc[0]:.3f} ± {row['auc_sd'].iloc[0]:.3f}"


def _share(value: float) -> str:
    return "—" if pd.isna(value) else f"{100 * value:.0f} %"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="NAME=RUN")
    args = parser.parse_args()
    print("| generator | bone | realism (× floor) | seam ratio median / p90 | brighter than "
          "source | gan-r3 AUC | vs oversample-r3 | vs copypaste-r3 | gap closed "
          "| transfers' gap closed | tstr-r3 AUC |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for item in args.runs:
        name, _, run = item.partition("=")
        for line in rows_of(name, Path(run)):
            print(line, flush=True)


if __name__ == "__main__":
    main()
