"""The report's tables of results and evidence: the headline (section 1), the shortcut
probes and matching (3), the results per condition and the goal (4), the other level (5),
the quality gate (9), the realism of the synthetic lesions (10) and the classifier runs
(12)."""

from __future__ import annotations

import html

import pandas as pd

from boneaug.classify.evaluate import goal_check
from boneaug.classify.probe import WARN_AUC, ProbeResult
from boneaug.classify.strategies import FOCUS, REFERENCE, TABLE
from boneaug.experiment.evidence import HEADLINE_GROUPS, HEADLINE_KEYS, headline, verdict
from boneaug.experiment.report_format import (
    cell_text,
    ci,
    esc,
    finite,
    gap_cell,
    headline_cell,
    html_table,
    missing,
    num,
    ordered,
    percent,
    pm,
    probe_cell,
    pvalue,
    ratio_cell,
    same_ratio,
    signed,
    signed_ci,
    spread,
)
from boneaug.experiment.report_inputs import read_json
from boneaug.experiment.report_page import LEVEL_MEANING, Page

_GATED = next(s for s in TABLE if s.gated)  # trains on what the quality gate kept
PROBE_GUIDE = """<p class="note">A <b>shortcut probe</b> asks whether the classes can be told
apart without seeing a lesion. Lesion-blind: in the bone's training films, each lesion is
in-painted from its surroundings, and normal films get blanks of the same size at the same
place; a logistic regression on 16-px thumbnails is cross-validated with patients kept
within one fold. Metadata: the same on age, sex, centre and view, where the manifest has
them. Near 0.5, a classifier must see lesions to win; above 0.6 (highlighted) the image-level
comparison can be won by film style, anatomy or population, and its results say little
about lesions: match the negatives (<code>matching</code>) or compare at the region level.
An AUC well below 0.5 means the probe found nothing: cross-validation on strata that
matching balanced exactly turns the held-out film's class into its stratum's minority.</p>"""


def section_headline(page: Page) -> str:
    table = headline(page.summaries(), page.inputs.probes or [])
    rows, classes = [], []
    for _, r in table.iterrows():
        rows.append([esc(r["level"]), esc(r["bone"]), probe_cell(r),
                     num(r["metadata_auc"], 2), num(r["baseline_auc"]),
                     *(headline_cell(r, k) for k in HEADLINE_KEYS)])
        probe = finite(r["probe_auc"])
        classes.append("sig-worse" if probe is not None and probe > WARN_AUC else "")
    verdicts = "".join(f"<li>{esc(verdict(r))}</li>" for _, r in table.iterrows())
    return ('<p class="note">Per level and bone: the shortcut probe (a classifier that '
            "cannot see the lesion; near 0.5 is what a comparison about lesions needs), "
            "the baseline's mean test AUC over seeds, and the best non-generative, the "
            "best generative and the best oracle condition by mean AUC, each with ΔAUC "
            "of mean AUCs and p against the baseline (the bootstrap over test images "
            "and seeds, which decides the verdict), then DeLong p on the seed ensembles "
            "(secondary: blind to seed-to-seed noise).</p>"
            + html_table(["level", "bone", "probe AUC", "metadata AUC", "baseline AUC",
                          *(g.title for g in HEADLINE_GROUPS)], rows, classes)
            + f"<ul>{verdicts}</ul>"
            + f"<p>Wall time of the run: {page.wall_text()}.</p>")


def section_probe(page: Page) -> str:
    probes = page.inputs.probes
    if probes is None:
        return missing("the shortcut probe (evaluation/probe.json)")
    if not probes:
        return "<p>The probe was switched off (<code>probe.enabled: false</code>).</p>"
    rows, classes = [], []
    for p in probes:
        result = ProbeResult.from_dict(p)
        meta = ("-" if result.metadata_auc is None else
                ci(result.metadata_auc, *(result.metadata_ci or (None, None))))
        rows.append([esc(result.bone), esc(result.level), esc(result.when or "-"),
                     num(result.n_pos, 0), num(result.n_neg, 0),
                     ci(result.auc, *result.ci), meta,
                     esc(", ".join(result.metadata_columns) or "-")])
        high = result.auc > WARN_AUC or (result.metadata_auc or 0) > WARN_AUC
        classes.append("sig-worse" if high else "")
    warnings = [ProbeResult.from_dict(p).warning for p in probes]
    out = [PROBE_GUIDE, html_table(["bone", "level", "when", "positives", "negatives",
                                    "lesion-blind AUC [95 % CI]", "metadata AUC [95 % CI]",
                                    "metadata used"], rows, classes)]
    if any(warnings):
        out.append('<div class="warn"><ul>' + "".join(
            f"<li>{esc(line)}</li>" for w in warnings for line in w.splitlines()
            if line) + "</ul></div>")
    out.append(_matching(page))
    return "\n".join(out)


def _matching(page: Page) -> str:
    data = read_json(page.paths.stage_file("data"), {}, "data") or {}
    matches = data.get("matching")
    if not matches:
        return ("<p>Negatives were not matched to the positives "
                "(<code>matching.columns: []</code>).</p>")
    rows = []
    for m in matches:
        for split, c in (m.get("per_split") or {}).items():
            rows.append([esc(m.get("bone")), esc(", ".join(m.get("columns") or [])),
                         esc(split), f"{c.get('positives_kept')} of {c.get('positives')}",
                         f"{c.get('negatives_kept')} of {c.get('negatives')}"])
    return ("<h3>Matched negatives</h3><p class=\"note\">Per bone and split, the films "
            "matching kept (case-control on the columns named; docs/experiment.md).</p>"
            + html_table(["bone", "matched on", "split", "positives kept",
                          "negatives kept"], rows))


def section_results(page: Page) -> str:
    level = (f'<p class="note">Level: <b>{esc(page.level)}</b> '
             f"({esc(LEVEL_MEANING.get(page.level, ''))}).</p>")
    return level + _results_tables(page, page.summary, page.predictions) + _goal(page)


def _results_tables(page: Page, summary: pd.DataFrame, predictions: pd.DataFrame,
                    csv_name: str = "results.csv") -> str:
    header = ["condition", "strategy", "ratio", "generator", "K", "AUC mean ± sd",
              "ΔAUC of means [95 % CI]", "p (seeds × images)",
              "ensemble AUC [95 % CI]", "PR AUC mean ± sd", "ensemble PR AUC [95 % CI]",
              "sens @ 90 % spec mean ± sd", "ensemble sens @ 90 % spec [95 % CI]",
              "ensemble ΔAUC", "DeLong p", "gap closed"]
    out = ['<p class="note">One row per condition. Highlighted: p &lt; 0.05 against the '
           "baseline of the bone by the bootstrap over seeds and test images "
           '(<span style="background:#fff4c2">better</span>, <span style="background:'
           '#fbd9d3">worse</span>); DeLong p, on the seed ensembles, is shown beside it '
           "but does not count seed-to-seed noise. The full table, unrounded, is "
           f"<code>{esc(csv_name)}</code> beside this report.</p>"]
    for bone in sorted({cell_text(b) for b in summary["bone"]}):
        rows, classes = [], []
        for _, r in summary[summary["bone"].map(cell_text) == bone].iterrows():
            seeds = r.get("seeds")
            k = seeds if finite(seeds) is not None else int(predictions.loc[
                (predictions["bone"].map(cell_text) == bone)
                & (predictions["condition"].map(cell_text) == cell_text(r["condition"])),
                "seed"].nunique())
            rows.append([
                esc(r["condition"]), esc(r["strategy"]), esc(ratio_cell(r["ratio"])),
                esc(r["generator_bone"]), esc(cell_text(k)),
                pm(r.get("auc_mean"), r.get("auc_sd")),
                signed_ci(r.get("delta_seeds"), r.get("delta_seeds_lo"),
                          r.get("delta_seeds_hi")),
                pvalue(r.get("boot_p")),
                ci(r.get("auc"), r.get("auc_lo"), r.get("auc_hi")),
                pm(r.get("pr_auc_mean"), r.get("pr_auc_sd")),
                ci(r.get("pr_auc"), r.get("pr_auc_lo"), r.get("pr_auc_hi")),
                pm(r.get("sens90_mean"), r.get("sens90_sd")),
                ci(r.get("sens90"), r.get("sens90_lo"), r.get("sens90_hi")),
                signed(r.get("delta_auc")), pvalue(r.get("delong_p")),
                gap_cell(r.get("gap_closed"), r.get("gap_note"))])
            p = finite(r.get("boot_p"))
            if p is not None and p < 0.05:
                # Significant either way; a worse-than-baseline result must stand out too.
                worse = (finite(r.get("delta_seeds")) or 0.0) < 0
                classes.append("sig-worse" if worse else "sig")
            else:
                classes.append("base" if cell_text(r["strategy"]) == REFERENCE.name else "")
        out.append(f"<h3>{esc(bone)}</h3>")
        out.append(html_table(header, rows, classes))
    return "\n".join(out)


def _goal(page: Page) -> str:
    """The benchmark's goal (`evaluate.goal_check`) at the main ratio, line by line."""
    if page.main_ratio is None:
        return ""
    goal = goal_check(page.predictions, page.summary, page.main_ratio)
    head = (f"<h3>Against the goal (ratio {page.main_ratio:g})</h3><p class=\"note\">"
            "The goal: on every bone, <code>gan</code> closes at least half of the "
            "baseline-to-oracle gap in mean AUC and beats <code>oversample</code> and "
            "<code>copypaste</code>: higher mean AUC with p &lt; 0.05 by the bootstrap "
            "over test images and seeds (DeLong p on the seed ensembles beside it, "
            "secondary); each <code>gan-transfer</code> closes at least a third. A gap "
            "that is not defined (the oracle does not beat the baseline) is not met."
            "</p>")
    if goal.empty:
        return head + missing("gan or gan-transfer conditions at this ratio")
    rows = [[esc(r["bone"]), esc(r["condition"]), esc(r["vs"] or "the gap"),
             gap_cell(r["gap_closed"], r.get("gap_note")) if not r["vs"] else
             signed_ci(r["delta_seeds"], r["boot_lo"], r["boot_hi"]),
             pvalue(r["boot_p"]) if r["vs"] else "",
             pvalue(r["delong_p"]) if r["vs"] else "",
             "met" if r["goal"] else "not met"] for _, r in goal.iterrows()]
    classes = ["sig" if r["goal"] else "" for _, r in goal.iterrows()]
    return head + html_table(["bone", "condition", "against",
                              "gap closed / ΔAUC of means [95 % CI]", "p (seeds × images)",
                              "DeLong p", "goal"], rows, classes)


def section_levels(page: Page) -> str:
    if not page.others:
        return (f"<p>This run compared strategies at the {esc(page.level)} level only. "
                "Set <code>protocol.levels: [image, region]</code> to also compare them "
                "on lesion-scale regions of the same test films, where nothing outside "
                "the lesion can help (docs/experiment.md).</p>")
    out = []
    for level, (predictions, summary) in page.others.items():
        out.append(f"<h3>{esc(level)} level</h3><p class=\"note\">"
                   f"{esc(LEVEL_MEANING.get(level, '').capitalize())}.</p>")
        out.append(_results_tables(page, summary, predictions, f"results-{level}.csv"))
    return "\n".join(out)


def section_gate(page: Page) -> str:
    out = []
    gate = page.inputs.gate
    if "gate" in page.inputs.notes:
        out.append(f'<p class="missing">{html.escape(page.inputs.notes["gate"])}</p>')
    elif gate is None:
        out.append(missing("evaluation/gate.json"))
    else:
        entries = gate.get("bones")
        if not isinstance(entries, list) or not entries:
            out.append(missing("A gate entry per bone in gate.json"))
        else:
            rows = []
            for e in entries:
                e = e if isinstance(e, dict) else {}
                scored, kept = finite(e.get("scored")), finite(e.get("kept"))
                share = percent(kept / scored) if scored and kept is not None else "–"
                rows.append([esc(e.get("bone")), num(e.get("threshold"), 4),
                             esc(e.get("scored")), esc(e.get("kept")),
                             esc(e.get("dropped")), share, esc(e.get("source"))])
            out.append('<p class="note">The quality gate scores each synthetic image '
                       "and drops those below the threshold before gan-gated training."
                       "</p>")
            out.append(html_table(["bone", "threshold", "scored", "kept", "dropped",
                                   "kept share", "source condition"], rows))
    gated = page.rows(strategy=_GATED.name)
    if not len(gated):
        out.append(missing("Gated (gan-gated) classifier conditions"))
        return "\n".join(out)
    rows = []
    for _, g in gated.iterrows():
        bone = cell_text(g["bone"])
        ungated = page.rows(bone, FOCUS.name)
        ungated = ungated[[same_ratio(r, finite(g["ratio"])) for r in ungated["ratio"]]]
        u = ungated.iloc[0] if len(ungated) else None
        diff = (finite(g["auc_mean"]) - finite(u["auc_mean"])
                if u is not None and finite(g["auc_mean"]) is not None
                and finite(u["auc_mean"]) is not None else None)
        rows.append([esc(bone), esc(g["condition"]), pm(g["auc_mean"], g["auc_sd"]),
                     ci(g["auc"], g["auc_lo"], g["auc_hi"]),
                     esc(u["condition"]) if u is not None else "–",
                     pm(u["auc_mean"], u["auc_sd"]) if u is not None else "–",
                     ci(u["auc"], u["auc_lo"], u["auc_hi"]) if u is not None else "–",
                     signed(diff)])
    out.append("<h3>Gated against ungated, at the same ratio</h3>")
    out.append(html_table(["bone", "gated", "AUC mean ± sd", "ensemble AUC [95 % CI]",
                           "ungated", "AUC mean ± sd", "ensemble AUC [95 % CI]",
                           "gated − ungated (mean AUC)"], rows))
    return "\n".join(out)


REALISM_GUIDE = """<p class="note">How far each set of lesion patches lies from <b>real
lesions the generators never saw</b> (crops of the lesions of the bone's validation films):
KID, the unbiased squared MMD of the cubic polynomial kernel on the features of a small CNN
that this run trained to tell the bone's healthy patches from lesion patches (with the
other half of the held-out lesions: cross-fitted), ×1000, with an approximate 95 %
interval over half-samples of the patches and the reference lesions. The <b>floor</b> is
real against real (disjoint halves of the held-out lesions): a set at 1× the floor is as
far from them as real lesions are (below 1× is possible: KID does not penalise a set of
too-similar lesions); healthy patches show how far "no lesion" is. The goal: the
generator's lesions within 2× the floor (docs/synthesis.md says what the measure can and
cannot tell).</p>"""


def section_realism(page: Page) -> str:
    rows, classes, notes = [], [], []
    for bone in page.bones:
        path = page.paths.realism(bone)
        doc = read_json(path, page.inputs.notes, f"realism:{bone}")
        if doc is None:
            notes.append(page.inputs.notes.get(f"realism:{bone}")
                         or f"{bone}: realism/{bone}.json is not in this run (the config's "
                         "realism.enabled is false, the bone has no synthesis, or the run "
                         "is older than the realism stage)")
            continue
        if doc.get("problem"):
            notes.append(f"{bone}: not measured ({doc['problem']})")
            continue
        entries = [doc.get("floor") or {}, *(doc.get("sets") or [])]
        for e in entries:
            e = e if isinstance(e, dict) else {}
            value, lo, hi = (finite(e.get(k)) for k in ("kid", "lo", "hi"))
            kid_cell = ("–" if value is None else f"{1000 * value:.1f}"
                        + (f" [{1000 * lo:.1f}, {1000 * hi:.1f}]" if lo is not None
                           and hi is not None else ""))
            ratio = finite(e.get("ratio"))
            rows.append([esc(bone), esc(e.get("name")), esc(e.get("n", "")), kid_cell,
                         "–" if ratio is None else f"{ratio:.1f}×",
                         esc(e.get("problem", ""))])
            classes.append("sig" if ratio is not None and ratio <= 2 and e is not entries[0]
                           else "")
    out = [REALISM_GUIDE]
    if rows:
        out.append(html_table(["bone", "lesion patches", "n", "KID ×1000 [95 % CI]",
                               "× floor", "note"], rows, classes))
    out += [f'<p class="missing">{html.escape(n)}</p>' for n in notes]
    return "\n".join(out)


def section_runs(page: Page) -> str:
    runs = page.inputs.runs
    if "runs" in page.inputs.notes:
        return f'<p class="missing">{html.escape(page.inputs.notes["runs"])}</p>'
    if runs is None:
        return missing("evaluation/runs.csv")
    needed = {"bone", "condition"}
    if not needed <= set(runs.columns) or runs.empty:
        return missing("Classifier runs (runs.csv has no bone/condition rows)")
    columns = [("n_train", "train images", 0), ("n_train_pos_real", "real positives", 0),
               ("n_train_pos_extra", "extra positives", 0), ("n_train_neg", "negatives", 0),
               ("best_epoch", "epoch kept", 0), ("val_auc", "its val AUC", 3),
               ("train_seconds", "train s / run", 1)]
    columns = [c for c in columns if c[0] in runs.columns]
    keyed = runs.assign(bone=runs["bone"].map(cell_text),
                        condition=runs["condition"].map(cell_text))
    for col in ("strategy", "ratio", "generator_bone"):
        if col not in keyed.columns:
            keyed[col] = ""
    firsts = keyed.groupby(["bone", "condition"], sort=False).first().reset_index()
    rows = []
    for _, r in ordered(firsts).iterrows():
        group = keyed[(keyed["bone"] == r["bone"]) & (keyed["condition"] == r["condition"])]
        cells = [esc(r["bone"]), esc(r["condition"]), esc(len(group))]
        for col, _, digits in columns:
            values = pd.to_numeric(group[col], errors="coerce").dropna()
            cells.append(spread(values, digits, sd=col == "val_auc"))
        rows.append(cells)
    total_text = ""
    if "train_seconds" in runs.columns:
        seconds = pd.to_numeric(runs["train_seconds"], errors="coerce")
        if seconds.notna().any():
            total_text = f" Total training time {seconds.sum() / 60:.1f} min."
    note = (f'<p class="note">{len(runs)} classifier runs. Train set sizes per run; a '
            "range where the seeds differ. val AUC: on the real validation split, mean ± "
            f"sd over seeds.{html.escape(total_text)}</p>")
    return note + html_table(["bone", "condition", "runs"] + [c[1] for c in columns], rows)
