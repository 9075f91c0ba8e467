"""The report of an experiment run: ``results.csv`` and one self-contained ``report.html``.

`write_report(run_dir)` reads what an experiment wrote into ``run_dir`` (its layout:
`boneaug.experiment.paths`; the files it reads below),
summarises the classifiers' test predictions with `boneaug.classify.evaluate.summarise`
and writes

- ``results.csv``: the summary, one row per (bone, condition);
- ``figures/*.png``: the report's figures as files, named by their captions;
- ``report.html``: one file that opens offline. Figures are embedded as base64 PNG data
  URIs and the CSS is inline; nothing links to a network resource, so the report can be
  mailed or archived and still shows everything.

Inputs (only the predictions are required; a missing optional input makes its section say
"not in this run"):

- ``evaluation/predictions.csv`` (required: the run's first level), ``evaluation/runs.csv``,
  ``evaluation/gate.json``, ``evaluation/probe.json`` (the shortcut probes),
  ``evaluation/levels.json`` and ``evaluation/predictions-<level>.csv`` (the other level,
  whose summary goes to ``results-<level>.csv``), ``stages/data.json`` (matching);
- ``config.yaml``, ``run.json``;
- ``patches/<bone>/lesion/patches.npy`` (uint16 ``(N, P, P)``, value / 65535 in ``[0, 1]``);
- ``synth/gan/<bone>-s<seed>/``, ``synth/gan/<bone>-from-<gbone>-s<seed>/`` and
  ``synth/copypaste/<bone>-s<seed>/``, each with a ``synthetic.csv`` manifest.

Every piece of text that comes from a file is HTML-escaped before it enters the page.

The page is built in modules of its own: `report_page` (what the sections read, their
titles, the style), `report_run`, `report_tables` and `report_figures` (the sections),
`report_format` (how a value is written) and `report_inputs` (the optional inputs).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from boneaug.classify.evaluate import read_predictions, summarise
from boneaug.errors import BoneaugError
from boneaug.experiment.paths import RunPaths
from boneaug.experiment.report_figures import (
    section_ratio,
    section_roc,
    section_samples,
    section_transfer,
    write_figures,
)
from boneaug.experiment.report_format import NOT_IN_RUN
from boneaug.experiment.report_inputs import Inputs, bootstrap_settings, run_levels
from boneaug.experiment.report_page import CSS, SECTIONS, Page
from boneaug.experiment.report_run import section_config, section_run
from boneaug.experiment.report_tables import (
    section_gate,
    section_headline,
    section_levels,
    section_probe,
    section_realism,
    section_results,
    section_runs,
)
from boneaug.files import atomic_path, write_text_atomic

__all__ = ["NOT_IN_RUN", "SECTIONS", "ReportPaths", "render", "write_report"]


@dataclass(frozen=True)
class ReportPaths:
    """Where the report went: the HTML page and the summary CSV."""

    html: Path
    csv: Path


def write_report(run_dir: str | Path, n_boot: int | None = None,
                 seed: int | None = None, summary: pd.DataFrame | None = None) -> ReportPaths:
    """Write ``run_dir/results.csv`` and ``run_dir/report.html`` for an experiment run.

    `n_boot` is the number of bootstrap resamples of the test images behind each 95 %
    confidence interval and `seed` seeds them; by default both come from the run's
    ``config.yaml`` (``protocol.n_boot``, ``seed``). `summary`: the `summarise` of the
    same predictions with those settings, when the caller already has it. Raises `BoneaugError` when
    ``evaluation/predictions.csv`` is missing or unreadable; any other missing input only
    empties its section.
    """
    run = Path(run_dir)
    paths = RunPaths(run)
    predictions_path = paths.predictions()
    if not predictions_path.is_file():
        raise BoneaugError(f"{run}: no {paths.relative(predictions_path)}; run the experiment "
                           "first")
    n_boot, seed = bootstrap_settings(paths, n_boot, seed)
    predictions = read_predictions(predictions_path)
    if summary is None:
        summary = summarise(predictions, n_boot=n_boot, seed=seed)

    csv_path = paths.results()
    with atomic_path(csv_path) as tmp:
        summary.to_csv(tmp, index=False)
    levels = run_levels(paths)
    others: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    for level, suffix in list(levels.items())[1:]:
        path = paths.predictions(suffix)
        if path.is_file():
            level_predictions = read_predictions(path)
            level_summary = summarise(level_predictions, n_boot=n_boot, seed=seed)
            with atomic_path(paths.results(suffix)) as tmp:
                level_summary.to_csv(tmp, index=False)
            others[level] = (level_predictions, level_summary)

    import matplotlib

    # A headless backend, chosen before pyplot is imported: reports are written on servers
    # without a display.
    matplotlib.use("Agg")
    page = Page(run, predictions, summary, Inputs.read(paths), n_boot,
                level=next(iter(levels)), others=others)
    html_path = paths.report
    text = render(page)
    write_text_atomic(html_path, text)
    write_figures(text, paths.figures)
    return ReportPaths(html=html_path, csv=csv_path)


def render(page: Page) -> str:
    """The whole page: title, contents and the sections of `SECTIONS`, in order."""
    bodies = [section_headline(page), section_run(page), section_probe(page),
              section_results(page), section_levels(page), section_roc(page),
              section_ratio(page), section_transfer(page), section_gate(page),
              section_realism(page), section_samples(page), section_runs(page),
              section_config(page)]
    parts = []
    for number, (title, body) in enumerate(zip(SECTIONS, bodies, strict=True), start=1):
        parts.append(f'<section id="s{number}"><h2>{html.escape(title)}</h2>\n{body}'
                     "</section>")
    toc = "".join(f'<li><a href="#s{i}">{html.escape(t)}</a></li>'
                  for i, t in enumerate(SECTIONS, start=1))
    title = f"boneaug experiment report: {page.run.resolve().name}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><nav><ol>{toc}</ol></nav>"
            + "\n".join(parts) + "</body></html>\n")
