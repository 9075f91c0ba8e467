"""Whether a run's evidence is about lesions: the shortcut probes of each bone and the
headline that puts them beside the results.

**The probes** (`boneaug.classify.probe`) ask how well a classifier that cannot see a
lesion separates a bone's training positives from its negatives:

- *image level, lesion-blind*: lesions in-painted from their surroundings in the lesion
  films, lesion-like blanks in-painted in the normal films, thumbnails, logistic
  regression, patient-grouped cross-validation;
- *image level, metadata*: the same on age, sex, centre and view where the manifest
  has them;
- *region level*: the same lesion-blind probe on the lesion and healthy regions that the
  region classifiers train on (`boneaug.classify.regions`).

The image probes use every real training film of the bone, also the positives that rarity
holds back (the oracle pool): the shortcut is a property of the films, and more films
measure it more precisely. With matching on (`boneaug.data.matching`) they are measured
before matching (the bone's films as the data gave them) and after (the films the
classifiers use).

**The headline** gives, per level and bone, the probe, the baseline, the best
non-generative strategy, the best generative one and the oracle, each with its test
against the baseline: the difference in mean AUC over seeds and the p of the bootstrap
that resamples test images and training seeds (`summarise`'s ``delta_seeds`` and
``boot_p``), with DeLong's p on the seed ensembles beside it as a secondary figure.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from boneaug.classify.evaluate import ALPHA
from boneaug.classify.probe import ProbeResult, probe_arrays, probe_films
from boneaug.classify.strategies import REFERENCE, TABLE
from boneaug.data import Manifest
from boneaug.data.films import normals_of, positives_of
from boneaug.data.matching import MATCHED_OUT_COLUMN


class HeadlineGroup(NamedTuple):
    """A group of strategies whose best condition the headline shows beside the
    reference (the headline's yardstick)."""

    key: str                       # its columns' prefix
    label: str                     # in the terminal's headline
    title: str                     # in the report's headline table
    strategies: tuple[str, ...]


NON_GENERATIVE = tuple(s.name for s in TABLE
                       if not (s.reference or s.generative or s.upper_bound))
GENERATIVE = tuple(s.name for s in TABLE if s.generative)
UPPER_BOUND = tuple(s.name for s in TABLE if s.upper_bound)
HEADLINE_GROUPS = (HeadlineGroup("best_other", "best other", "best non-generative",
                                 NON_GENERATIVE),
                   HeadlineGroup("best_gan", "best generative", "best generative", GENERATIVE),
                   HeadlineGroup("oracle", "oracle", "oracle", UPPER_BOUND))
HEADLINE_KEYS = tuple(g.key for g in HEADLINE_GROUPS)

HEADLINE_COLUMNS = ("level", "bone", "probe_auc", "probe_low", "probe_high",
                    "metadata_auc", "baseline_auc",
                    *(key + suffix for key in HEADLINE_KEYS
                      for suffix in ("", "_auc", "_delta", "_p", "_delong_p")))


def _training_rows(table: pd.DataFrame, bone: str, negatives_from: tuple[str, ...]
                   ) -> tuple[list, list]:
    train = (table["split"] == "train") & (table["origin"] == "real")
    positives = table.index[train & positives_of(table, bone)].tolist()
    negatives = table.index[train & normals_of(table, bone, negatives_from)].tolist()
    return positives, negatives


def image_probes(main: Manifest, pool: Manifest, bone: str, *,
                 negatives_from: tuple[str, ...] = (), matched: bool = False, side: int = 16,
                 folds: int = 5, seed: int = 0, n_boot: int = 1000) -> list[ProbeResult]:
    """The image-level probe of `bone` on the data stage's manifest plus its oracle pool;
    before and after matching when the run matched (`matched`)."""
    table = pd.concat([main.table, pool.table], ignore_index=True)
    films = Manifest(table, root=main.root, source=main.source)
    views = [("before matching", table.drop(columns=[MATCHED_OUT_COLUMN], errors="ignore")),
             ("after matching", table)] if matched else [("", table)]
    results = []
    for when, view in views:
        positives, negatives = _training_rows(view, bone, negatives_from)
        results.append(probe_films(films, positives, negatives, bone=bone, when=when,
                                   side=side, folds=folds, seed=seed, n_boot=n_boot))
    return results


def region_probe(regions: Any, bone: str, *, side: int = 16, folds: int = 5, seed: int = 0,
                 n_boot: int = 1000) -> ProbeResult:
    """The lesion-blind probe on a `boneaug.classify.regions.RegionSet` of training
    regions: lesion regions with their lesion in-painted against healthy regions with a
    lesion-like blank; grouped by patient."""
    return probe_arrays(list(regions.inputs), np.asarray(regions.labels), list(regions.boxes),
                        np.asarray(regions.groups), bone=bone, level="region", side=side,
                        folds=folds, seed=seed, n_boot=n_boot)


# --------------------------------------------------------------------------- headline


def _best(rows: pd.DataFrame, strategies: tuple[str, ...]) -> pd.Series | None:
    chosen = rows[rows["strategy"].astype(str).isin(strategies)]
    auc = pd.to_numeric(chosen["auc_mean"], errors="coerce")
    if not auc.notna().any():
        return None
    return chosen.loc[auc.idxmax()]


def _probe_for(probes: list[dict[str, Any]], level: str, bone: str) -> dict[str, Any] | None:
    """The probe that describes the films a level's classifiers use: after matching when
    the run matched."""
    mine = [p for p in probes if p.get("level") == level and p.get("bone") == bone]
    after = [p for p in mine if p.get("when") != "before matching"]
    return (after or mine or [None])[-1]


def _ci(probe: dict[str, Any] | None, end: int) -> float:
    """One end of a probe's 95 % interval; NaN without a probe or an interval."""
    ci = (probe or {}).get("ci")
    return float(ci[end]) if ci is not None and len(ci) == 2 else math.nan


def headline(summaries: dict[str, pd.DataFrame], probes: list[dict[str, Any]]
             ) -> pd.DataFrame:
    """One row per (level, bone) with the columns of `HEADLINE_COLUMNS`: the probe
    (``probe_auc`` and its interval ``probe_low``/``probe_high``, ``metadata_auc``), the
    baseline's mean AUC over seeds, and for the best non-generative strategy
    (``best_other``), the best generative one (``best_gan``) and the best oracle
    (``oracle``), chosen by mean AUC: the condition, ``_auc`` (mean AUC over seeds),
    ``_delta`` (that minus the baseline's: ``delta_seeds``), ``_p`` (the seeds x images
    bootstrap p against the baseline: ``boot_p``) and ``_delong_p`` (DeLong's p of the
    seed ensembles against the baseline's: ``delong_p``, secondary)."""
    out = []
    for level, summary in summaries.items():
        for bone, rows in summary.groupby("bone", sort=False):
            probe = _probe_for(probes, level, str(bone))
            base = rows[rows["strategy"].astype(str) == REFERENCE.name]
            row: dict[str, Any] = {
                "level": level, "bone": bone,
                "probe_auc": probe.get("auc") if probe else math.nan,
                "probe_low": _ci(probe, 0), "probe_high": _ci(probe, 1),
                "metadata_auc": (probe.get("metadata_auc") if probe
                                 and probe.get("metadata_auc") is not None else math.nan),
                "baseline_auc": float(base["auc_mean"].iloc[0]) if len(base) else math.nan}
            for prefix, _, _, group in HEADLINE_GROUPS:
                best = _best(rows, group)
                row[prefix] = "" if best is None else str(best["condition"])
                for suffix, column in (("_auc", "auc_mean"), ("_delta", "delta_seeds"),
                                       ("_p", "boot_p"), ("_delong_p", "delong_p")):
                    row[prefix + suffix] = math.nan if best is None else float(best[column])
            out.append(row)
    return pd.DataFrame(out, columns=list(HEADLINE_COLUMNS))


def _cell(r: pd.Series, key: str) -> str:
    name, auc, delta, p = r[key], r[f"{key}_auc"], r[f"{key}_delta"], r[f"{key}_p"]
    if not name:
        return "-"
    p_text = "p < 0.001" if p < 0.001 else f"p {p:.3f}"
    return f"{name} {auc:.3f} ({delta:+.3f}, {p_text})" if math.isfinite(p) else (
        f"{name} {auc:.3f}")


def format_headline(table: pd.DataFrame) -> str:
    """The headline as plain text: one line per (level, bone), then a verdict line each."""
    lines = []
    for _, r in table.iterrows():
        probe = "-" if not math.isfinite(r["probe_auc"]) else f"{r['probe_auc']:.2f}"
        if math.isfinite(r["probe_low"]):
            probe += f" [{r['probe_low']:.2f}, {r['probe_high']:.2f}]"
        meta = "" if not math.isfinite(r["metadata_auc"]) else (
            f", metadata {r['metadata_auc']:.2f}")
        lines.append(
            f"{r['level']:<6} {r['bone']:<8} probe {probe}{meta} | baseline "
            f"{r['baseline_auc']:.3f} | "
            + " | ".join(f"{g.label} {_cell(r, g.key)}" for g in HEADLINE_GROUPS))
        lines.append("       " + verdict(r))
    return "\n".join(lines)


def verdict(r: pd.Series) -> str:
    """One plain sentence: what this (level, bone) can and cannot say. A strategy "beats"
    the baseline when its ``_delta`` is above 0 and its ``_p`` (the seeds x images
    bootstrap) below `ALPHA`."""
    from boneaug.classify.probe import WARN_AUC, undecided, warn_text

    where = f"{r['bone']} ({r['level']} level)"
    probe = r["probe_auc"]
    if math.isfinite(probe) and probe > WARN_AUC:
        low, high = r.get("probe_low", math.nan), r.get("probe_high", math.nan)
        if math.isfinite(low) and undecided(probe, low):
            return (f"{where}: a shortcut is NOT ruled out - a lesion-blind classifier "
                    f"reaches AUC {warn_text(probe)} [{low:.2f}, {high:.2f}] (> {WARN_AUC}, "
                    "but the interval holds 0.5: too few films to tell); read its comparisons "
                    "with care")
        return (f"{where}: NOT about lesions - a lesion-blind classifier separates the "
                f"classes at AUC {warn_text(probe)} (> {WARN_AUC}); its comparisons can be won "
                "without seeing a lesion")
    meta = r["metadata_auc"]
    caveat = (f" (but the metadata alone reach AUC {meta:.2f})"
              if math.isfinite(meta) and meta > WARN_AUC else "")
    other, generative, bound = HEADLINE_KEYS
    beats = {k: bool(r[k]) and math.isfinite(r[f"{k}_p"]) and r[f"{k}_p"] < ALPHA
             and r[f"{k}_delta"] > 0 for k in HEADLINE_KEYS}
    if beats[generative]:
        found = f"{r[generative]} beats the baseline (p < {ALPHA:g})"
    elif beats[other]:
        found = (f"no generative strategy beats the baseline, {r[other]} does "
                 f"(p < {ALPHA:g})")
    else:
        found = f"no strategy beats the baseline (p < {ALPHA:g})"
    if not r[bound]:
        oracle = "no oracle in this run"
    elif beats[bound]:
        oracle = "the oracle (more real lesions) does"
    else:
        oracle = ("the oracle does not either: this run cannot show that more lesions help"
                  if not (beats[generative] or beats[other]) else
                  "the oracle does not")
    return f"{where}: {found}; {oracle}{caveat}"
