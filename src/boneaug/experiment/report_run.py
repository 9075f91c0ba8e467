"""The report's sections about the run itself: what ran, on which data, how to read the
page (section 2), and the config and versions (section 12)."""

from __future__ import annotations

import datetime as _dt
import html

import pandas as pd

from boneaug.classify.strategies import strategy_of
from boneaug.experiment.report_format import (
    NOT_IN_RUN,
    cell_text,
    command_line,
    compact,
    esc,
    finite,
    html_table,
    missing,
    num,
    percent,
    strategy_rank,
    wall,
)
from boneaug.experiment.report_inputs import read_json
from boneaug.experiment.report_page import Page


def section_run(page: Page) -> str:
    info = page.inputs.run_info or {}
    config = page.inputs.config or {}
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    facts = [("Experiment", esc(config.get("name")) or NOT_IN_RUN),
             ("Run folder", esc(page.run.resolve())),
             ("Command", esc(command_line(info)) or NOT_IN_RUN),
             ("Started", esc(info.get("started")) or NOT_IN_RUN),
             ("Wall time", wall(info) if finite(info.get("wall_seconds")) is not None
              else NOT_IN_RUN),
             ("Git commit", esc(info.get("git_commit")) or NOT_IN_RUN),
             ("Report written", esc(now))]
    seeds = page.predictions.groupby(["bone", "condition"])["seed"].nunique()
    k_text = (f"{seeds.min()}" if seeds.min() == seeds.max()
              else f"{seeds.min()} to {seeds.max()}")
    n_conditions = page.summary.groupby("bone")["condition"].nunique()
    facts += [("Bones", esc(", ".join(page.bones))),
              ("Conditions per bone", esc(", ".join(
                  f"{b}: {n_conditions.get(b, 0)}" for b in page.bones))),
              ("Seeds per condition (K)", esc(k_text)),
              ("Main ratio", esc(f"{page.main_ratio:g} (from {page.ratio_source})")
               if page.main_ratio is not None else esc(page.ratio_source))]
    if cell_text(config.get("note")):
        facts.append(("Note", esc(config["note"])))
    test_rows = []
    for bone in page.bones:
        first = page.rows(bone).iloc[0]
        n, pos = finite(first.get("n_test")), finite(first.get("n_test_pos"))
        test_rows.append([esc(bone), num(n, 0), num(pos, 0),
                          num(None if n is None or pos is None else n - pos, 0)])
    out = ["<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>",
           "<h3>Data</h3>", _data_description(page),
           "<h3>Films per bone</h3>", _films_per_bone(page),
           "<h3>Skipped films</h3>", _skipped_films(page),
           "<h3>Test sets (real images only)</h3>",
           html_table(["bone", "test regions" if page.level == "region" else "test images",
                       "with lesion", "without lesion"], test_rows),
           "<h3>How to read this report</h3>", _reading_guide(page, k_text)]
    return "\n".join(out)


def _films_per_bone(page: Page) -> str:
    """Training films per bone (stages/data.json) and, where bones were assigned to
    films labelled by region, how (data/bones.json)."""
    notes: dict[str, str] = {}
    data = read_json(page.paths.stage_file("data"), notes, "data") or {}
    counts = data.get("counts") if isinstance(data.get("counts"), dict) else {}
    assign = data.get("assign") if isinstance(data.get("assign"), dict) else None
    out = []
    if counts:
        rows = [[esc(b), num(c.get("train_pos"), 0), num(c.get("held_back"), 0),
                 num(c.get("train_neg"), 0)] for b, c in sorted(counts.items())
                if isinstance(c, dict)]
        out.append(html_table(["bone", "train lesion films kept", "held back (oracle)",
                               "train normal films"], rows))
    else:
        out.append(missing("stages/data.json with the per-bone counts"))
    if assign is None:
        out.append('<p class="note">No bone assignment in this run: every film\'s bone '
                   "came from the manifest.</p>")
        return "\n".join(out)
    by = assign.get("counts") if isinstance(assign.get("counts"), dict) else {}
    rows = [[esc(b), num(c.get("label"), 0), num(c.get("user"), 0),
             num(c.get("model"), 0)] for b, c in sorted(by.items()) if isinstance(c, dict)]
    accuracy = finite(assign.get("holdout_accuracy"))
    out.append(
        "<p>Films labelled only by region (or <code>unknown</code>) were given bones by a "
        "film classifier learned from the films whose bone is known, at score &ge; "
        f"{esc(assign.get('min_confidence'))} (docs/experiment.md, \u201cWhich bone a "
        "film shows\u201d). Held-out check: the top bone was right for "
        f"{percent(accuracy) if accuracy is not None else 'n/a'} of "
        f"{esc(assign.get('holdout_films'))} known films. Films of a region that got no "
        f"bone: {esc(assign.get('unassigned'))}. Review sheet: "
        "<code>data/bones-sheet.png</code>.</p>")
    out.append(html_table(["bone", "films by label", "by the user", "by the model"], rows))
    return "\n".join(out)


def _skipped_films(page: Page) -> str:
    path = page.paths.skipped
    if not path.is_file():
        return missing(page.paths.relative(path))
    try:
        skipped = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError,
            pd.errors.EmptyDataError) as exc:
        return f'<p class="missing">{esc(path.name)} could not be read ({esc(exc)})</p>'
    if skipped.empty:
        return "<p>No film was skipped: every stage could use every film it was given.</p>"
    per_stage = skipped.groupby("stage").size()
    lines = [f"<p>{len(skipped)} film(s) were skipped, each by the stage that could not "
             "use it (" + ", ".join(f"{esc(k)}: {int(v)}" for k, v in per_stage.items())
             + "); the run went on without them. All of them: "
             "<code>evaluation/skipped.csv</code>.</p>"]
    rows = [[esc(r.stage), esc(r.image_id), esc(r.reason)]
            for r in skipped.head(12).itertuples()]
    lines.append(html_table(["stage", "film", "reason"], rows))
    return "\n".join(lines)


def _data_description(page: Page) -> str:
    config = page.inputs.config
    if config is None:
        note = page.inputs.notes.get("config")
        if note is not None:
            return f'<p class="missing">{html.escape(note)}</p>'
        return missing("config.yaml")
    items = []
    for key in ("data", "phantom", "manifest", "dataset", "bones", "split", "splits"):
        if key not in config:
            continue
        value = config[key]
        if isinstance(value, dict):
            inner = ", ".join(f"{k} = {compact(v)}" for k, v in value.items())
            items.append(f"<dt>{esc(key)}</dt><dd>{esc(inner)}</dd>")
        else:
            items.append(f"<dt>{esc(key)}</dt><dd>{esc(compact(value))}</dd>")
    if not items:
        return ('<p class="note">The config names no data section (data, phantom, '
                "manifest); see section 9 for the whole config.</p>")
    return "<dl>" + "".join(items) + "</dl>"


def _reading_guide(page: Page, k_text: str) -> str:
    strategies = sorted({cell_text(s) for s in page.summary["strategy"]}, key=strategy_rank)
    glossary = "".join(f"<dt>{esc(s)}</dt><dd>{html.escape(_meaning(s))}</dd>"
                       for s in strategies)
    return f"""<ul>
<li><b>The test set holds real radiographs only</b>, from the patient-level test split.
No synthetic image is ever tested on, and every condition of a bone is scored on the same
test images, so the conditions of a bone can be compared image by image.</li>
<li>Each condition trained <b>K = {html.escape(k_text)}</b> classifiers with different seeds.
<b>mean ± sd</b> is over these seeds: the sd shows how much the training seed alone moves
a result.</li>
<li>The <b>ensemble</b> averages the K classifiers' scores per test image. Its AUC comes
with a <b>95 % confidence interval</b> from {page.n_boot} bootstrap resamples of the test
images (stratified: each resample keeps the numbers of lesion and lesion-free images): the
range the AUC would plausibly take on another test set of this size, for these very
classifiers.</li>
<li><b>AUC</b> (ROC area) is the chance that a random lesion image scores above a random
lesion-free one: 0.5 is guessing, 1 is perfect. <b>PR AUC</b> (precision-recall area) weighs
the rare lesion class more; guessing gives the lesion prevalence. <b>Sens @ 90 % spec</b> is
the share of lesions found at the threshold that keeps 90 % of lesion-free images
negative.</li>
<li><b>ΔAUC of means</b> is the mean AUC over seeds of a condition minus that of the
baseline of its bone: the main comparison. Its 95 % interval and its <b>p</b> come from
{page.n_boot} bootstrap resamples of <b>both the test images and the training seeds</b>:
each resample draws the test images (stratified, the same draw for the condition and the
baseline) and, independently for each of the two, K seeds with replacement. So the test
counts the seed-to-seed noise that a new training would bring, not only the choice of
test images. p is two-sided (twice the smaller share of resamples at or below 0 and at or
above 0, with +1 in each count), so it is never below {2 / (page.n_boot + 1):.2g}. Rows with
ΔAUC &gt; 0 and p &lt; 0.05 are <span style="background:#fff4c2">highlighted</span>, rows
with ΔAUC &lt; 0 and p &lt; 0.05 <span style="background:#fbd9d3">too</span>. Many
conditions are tested, so a few p &lt; 0.05 are expected by chance alone.</li>
<li><b>Ensemble ΔAUC</b> and <b>DeLong p</b> (secondary): the ensemble AUC of a condition
minus that of the baseline, and DeLong's test of that difference on the same images. Its
variance is an estimate of what another draw of test images would do (a formula, not
resamples); the K trained classifiers are taken as fixed, so it ignores the seed-to-seed
noise and its p is often far smaller than the bootstrap's.</li>
<li><b>Gap closed</b> = (mean AUC − baseline mean AUC) / (oracle mean AUC − baseline mean
AUC), with the oracle at the same ratio (else the largest one): the share of the way from
the baseline to the oracle (extra real lesion images) that a condition goes. Shown only
where that oracle beats the baseline by the bootstrap test (ΔAUC &gt; 0, p &lt; 0.05);
elsewhere "–" with the reason.</li>
</ul>
<dl>{glossary}</dl>"""


def section_config(page: Page) -> str:
    out = ["<h3>Config (config.yaml)</h3>"]
    for key in ("config", "config_source"):
        if key in page.inputs.notes:
            out.append(f'<p class="missing">{html.escape(page.inputs.notes[key])}</p>')
    if page.inputs.config_text is not None:
        out.append(f"<pre>{html.escape(page.inputs.config_text)}</pre>")
    elif "config" not in page.inputs.notes:
        out.append(missing("config.yaml"))
    out.append("<h3>Versions and provenance (run.json)</h3>")
    info = page.inputs.run_info
    if info is None:
        note = page.inputs.notes.get("run")
        out.append(f'<p class="missing">{html.escape(note)}</p>' if note
                   else missing("run.json"))
        return "\n".join(out)
    versions = info.get("versions")
    if isinstance(versions, dict) and versions:
        out.append(html_table(["package", "version"],
                          [[esc(k), esc(v)] for k, v in versions.items()]))
    else:
        out.append(missing("Package versions"))
    extra = [(k, info.get(k)) for k in ("command", "seed", "git_commit", "started",
                                        "wall_seconds", "platform") if k in info]
    if extra:
        out.append(html_table(["field", "value"],
                          [[esc(k), esc(compact(v))] for k, v in extra]))
    return "\n".join(out)


def _meaning(strategy: str) -> str:
    """A strategy's line in the legend (`boneaug.classify.strategies`)."""
    known = strategy_of(strategy)
    return "see the config" if known is None else known.meaning
