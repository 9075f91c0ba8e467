"""The report of an experiment run: ``results.csv`` and one self-contained ``report.html``.

`write_report(run_dir)` reads what an experiment wrote into ``run_dir`` (layout below),
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
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import html
import io
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from boneaug.classify.evaluate import (
    STRATEGY_ORDER,
    goal_check,
    read_predictions,
    summarise,
)
from boneaug.classify.metrics import roc_curve
from boneaug.classify.probe import WARN_AUC, ProbeResult
from boneaug.data import load_manifest, read_image
from boneaug.data.files import atomic_path, write_text_atomic
from boneaug.errors import BoneaugError
from boneaug.experiment.evidence import headline, verdict
from boneaug.patches import resize_square

NOT_IN_RUN = "not in this run"
SAMPLES_PER_ROW = 8
DEFAULT_PATCH = 64  # sample tile side when the run has no real patches to match
SECTIONS = (
    "1. Headline",
    "2. The run",
    "3. Is it about lesions? Shortcut probes",
    "4. Results",
    "5. Region level",
    "6. ROC curves",
    "7. AUC against the synthetic ratio",
    "8. Generator transfer",
    "9. Quality gate",
    "10. Sample sheets",
    "11. Classifier runs",
    "12. Config and versions",
)
LEVEL_MEANING = {
    "image": "a classifier of whole films (the bone's crop): film style can help it",
    "region": "a classifier of lesion-scale regions, tested on lesion and healthy regions "
              "of the same real test films and on regions of normal test films: nothing "
              "outside the lesion can help it",
}
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
STRATEGY_MEANING = {
    "baseline": "real training images only",
    "weighted": "real images, loss weighted by inverse class frequency",
    "classic": "real images with classic augmentation (flips, intensity, small affine)",
    "oversample": "real lesion images repeated (ratio = extra copies per real positive)",
    "copypaste": "real lesion patches pasted onto lesion-free radiographs",
    "gan": "CycleGAN lesions painted onto lesion-free radiographs of the same bone",
    "gan-gated": "as gan, after the quality gate dropped the least plausible synthetics",
    "gan-transfer": "as gan, with the generator trained on another bone",
    "oracle": "extra REAL lesion images, held back from training by the rarity step: the "
              "upper bound",
    "tstr": "train on synthetic positives + real negatives only, test on real",
}


@dataclass(frozen=True)
class ReportPaths:
    """Where the report went: the HTML page and the summary CSV."""

    html: Path
    csv: Path


def _bootstrap_settings(run: Path, n_boot: int | None, seed: int | None) -> tuple[int, int]:
    """The run config's ``protocol.n_boot`` and ``seed`` where not given (from
    ``config.yaml``, else the config recorded in ``run.json``; a folder with neither: 2000
    and 0), so that `boneaug report` reproduces the intervals the experiment printed. A
    config that is there but cannot be read is one line: guessing would change the CIs
    without a word."""
    if n_boot is not None and seed is not None:
        return int(n_boot), int(seed)
    config: dict[str, Any] | None = None
    problem = ""
    path = run / "config.yaml"
    if path.is_file():
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
            config = loaded if isinstance(loaded, dict) else None
            problem = "" if config is not None else "not a mapping"
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            problem = _first_line(exc)
    if config is None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            recorded = json.loads((run / "run.json").read_text(encoding="utf-8"))
            config = recorded.get("config") if isinstance(recorded.get("config"), dict) \
                else None
    if config is None and problem:
        raise BoneaugError(f"{path}: cannot be read ({problem}), and run.json keeps no "
                           "config: the bootstrap settings of the run are unknown; give "
                           "--n-boot and --seed")
    config = config or {}
    protocol = config.get("protocol") if isinstance(config.get("protocol"), dict) else {}
    if n_boot is None:
        n_boot = protocol.get("n_boot") if isinstance(protocol.get("n_boot"), int) else 2000
    if seed is None:
        seed = config.get("seed") if isinstance(config.get("seed"), int) else 0
    return int(n_boot), int(seed)


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
    predictions_path = run / "evaluation" / "predictions.csv"
    if not predictions_path.is_file():
        raise BoneaugError(f"{run}: no evaluation/predictions.csv; run the experiment first")
    n_boot, seed = _bootstrap_settings(run, n_boot, seed)
    predictions = read_predictions(predictions_path)
    if summary is None:
        summary = summarise(predictions, n_boot=n_boot, seed=seed)

    csv_path = run / "results.csv"
    with atomic_path(csv_path) as tmp:
        summary.to_csv(tmp, index=False)
    levels = _levels(run)
    others: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    for level, suffix in list(levels.items())[1:]:
        path = run / "evaluation" / f"predictions{suffix}.csv"
        if path.is_file():
            level_predictions = read_predictions(path)
            level_summary = summarise(level_predictions, n_boot=n_boot, seed=seed)
            with atomic_path(run / f"results{suffix}.csv") as tmp:
                level_summary.to_csv(tmp, index=False)
            others[level] = (level_predictions, level_summary)

    import matplotlib

    # A headless backend, chosen before pyplot is imported: reports are written on servers
    # without a display.
    matplotlib.use("Agg")
    inputs = _Inputs.read(run)
    page = _Page(run, predictions, summary, inputs, n_boot,
                 levels=(next(iter(levels)), others))
    html_path = run / "report.html"
    text = page.render()
    write_text_atomic(html_path, text)
    _write_figures(text, run / "figures")
    return ReportPaths(html=html_path, csv=csv_path)


def _levels(run: Path) -> dict[str, str]:
    """The run's levels, first one first, each with the suffix of its evaluation files
    (``evaluation/levels.json``; a run without it has the image level only)."""
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
        saved = json.loads((run / "evaluation" / "levels.json").read_text(encoding="utf-8"))
        files = saved.get("files") or {}
        return {str(v): str(files.get(v, "")) for v in saved["levels"]}
    return {"image": ""}


_IMAGE = re.compile(r'<img alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _write_figures(page: str, folder: Path) -> list[Path]:
    """The page's figures also as PNG files (``figures/<alt text>.png``), for papers and
    docs; the page itself stays self-contained."""
    folder.mkdir(exist_ok=True)
    written = []
    for alt, data in _IMAGE.findall(page):
        name = re.sub(r"[^a-z0-9]+", "-", html.unescape(alt).lower()).strip("-") or "figure"
        path = folder / f"{name}.png"
        with atomic_path(path) as tmp:
            tmp.write_bytes(base64.b64decode(data))
        written.append(path)
    return written


# --------------------------------------------------------------------------- inputs


@dataclass
class _Inputs:
    """The optional inputs of a run; a None value means the file is absent, `notes` why."""

    config: dict[str, Any] | None
    config_text: str | None
    run_info: dict[str, Any] | None
    runs: pd.DataFrame | None
    gate: dict[str, Any] | None
    notes: dict[str, str]
    probes: list[dict[str, Any]] | None = None   # evaluation/probe.json's results

    @classmethod
    def read(cls, run: Path) -> _Inputs:
        notes: dict[str, str] = {}
        config, config_text = None, None
        path = run / "config.yaml"
        if path.is_file():
            try:
                config_text = path.read_text(encoding="utf-8")
                loaded = yaml.safe_load(config_text)
                config = loaded if isinstance(loaded, dict) else {}
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
                notes["config"] = f"{path.name} could not be read ({_first_line(exc)})"
        run_info = _read_json(run / "run.json", notes, "run")
        gate = _read_json(run / "evaluation" / "gate.json", notes, "gate")
        runs = None
        path = run / "evaluation" / "runs.csv"
        if path.is_file():
            try:
                runs = pd.read_csv(path)
            except (OSError, UnicodeDecodeError, pd.errors.ParserError,
                    pd.errors.EmptyDataError) as exc:
                notes["runs"] = f"{path.name} could not be read ({_first_line(exc)})"
        if config is None and run_info is not None and isinstance(run_info.get("config"), dict):
            # run.json keeps the resolved config too; it stands in when config.yaml is gone.
            config = run_info["config"]
            if config_text is None:
                config_text = yaml.safe_dump(config, sort_keys=False)
                notes["config_source"] = ("config.yaml is not in this run; the config below "
                                          "is the one recorded in run.json")
        probe = _read_json(run / "evaluation" / "probe.json", notes, "probe")
        probes = probe.get("results") if isinstance(probe, dict) else None
        return cls(config, config_text, run_info, runs, gate, notes,
                   probes if isinstance(probes, list) else None)


def _read_json(path: Path, notes: dict[str, str], key: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        notes[key] = f"{path.name} could not be read ({_first_line(exc)})"
        return None
    if not isinstance(data, dict):
        notes[key] = f"{path.name} is not a JSON object"
        return None
    return data


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- formatting


def _esc(value: Any) -> str:
    return html.escape(_text(value), quote=True)


def _text(value: Any) -> str:
    """A cell as text; NaN, None and pandas' missing values become empty."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):  # lists and arrays: not a scalar missing value
        pass
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _num(value: Any, digits: int = 3) -> str:
    number = _finite(value)
    return "–" if number is None else f"{number:.{digits}f}"


def _command_line(info: dict[str, Any]) -> str:
    """The command as typed, from run.json's argv (``boneaug experiment --config …``);
    only the stage's name where the run came from Python, not the command line."""
    argv = [str(a) for a in info.get("argv") or []]
    if argv and Path(argv[0]).name in ("boneaug", "__main__.py") and len(argv) > 1:
        return "boneaug " + " ".join(argv[1:])
    return f"boneaug {info['command']}" if info.get("command") else ""


def _probe_cell(r: pd.Series) -> str:
    """The probe AUC of a headline row with its 95 % interval when it has one."""
    if _finite(r["probe_auc"]) is None:
        return "–"
    if _finite(r.get("probe_low")) is None:
        return _num(r["probe_auc"], 2)
    return f"{r['probe_auc']:.2f} [{r['probe_low']:.2f}, {r['probe_high']:.2f}]"


def _pm(mean: Any, sd: Any, digits: int = 3) -> str:
    if _finite(mean) is None:
        return "–"
    if _finite(sd) is None:
        return _num(mean, digits)
    return f"{_num(mean, digits)} ± {_num(sd, digits)}"


def _ci(estimate: Any, lo: Any, hi: Any) -> str:
    if _finite(estimate) is None:
        return "–"
    if _finite(lo) is None or _finite(hi) is None:
        return _num(estimate)
    return f"{_num(estimate)} [{_num(lo)}, {_num(hi)}]"


def _pvalue(value: Any) -> str:
    number = _finite(value)
    if number is None:
        return "–"
    return "&lt;0.001" if number < 0.001 else f"{number:.3f}"


def _signed(value: Any) -> str:
    number = _finite(value)
    return "–" if number is None else f"{number:+.3f}"


def _signed_ci(estimate: Any, lo: Any, hi: Any) -> str:
    """A difference with its interval, all signed: ``+0.120 [+0.010, +0.230]``."""
    if _finite(lo) is None or _finite(hi) is None:
        return _signed(estimate)
    return f"{_signed(estimate)} [{_signed(lo)}, {_signed(hi)}]"


def _gap_cell(value: Any, note: Any) -> str:
    """A gap closed as a percentage, or "–" with the reason it is not defined (nothing
    for the baseline's own row)."""
    if _finite(value) is not None:
        return _percent(value)
    reason = _text(note)
    if reason in ("", "baseline"):
        return "–"
    return f'– <span class="note">({_esc(reason)})</span>'


def _wall(info: dict[str, Any]) -> str:
    """The last invocation's wall time, in minutes when long; says so when the run is not
    complete (an interrupted run's run.json is from its start)."""
    seconds = float(info["wall_seconds"])
    text = f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"
    if info.get("completed") is False:
        text += " (the run did not complete)"
    return _esc(text + " (this invocation; a resumed run counts only its own time)")


def _headline_cell(r: pd.Series, key: str) -> str:
    """One headline cell: condition, mean AUC, ΔAUC of means and the seeds x images
    bootstrap p against the baseline, then DeLong's p of the seed ensembles."""
    if not _text(r[key]):
        return "-"
    return (f"{_esc(r[key])}: {_num(r[f'{key}_auc'])} ({_signed(r[f'{key}_delta'])}, "
            f"p {_pvalue(r[f'{key}_p'])}; DeLong p {_pvalue(r.get(f'{key}_delong_p'))})")


def _percent(value: Any) -> str:
    number = _finite(value)
    return "–" if number is None else f"{100 * number:.0f} %"


def _ratio(value: Any) -> str:
    number = _finite(value)
    return "" if number is None else f"{number:g}"


def _table(header: Iterable[str], rows: Iterable[Iterable[str]],
           row_classes: Iterable[str] | None = None) -> str:
    """An HTML table; header and cells must already be escaped."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = []
    classes = list(row_classes) if row_classes is not None else None
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _missing(what: str) -> str:
    return f'<p class="missing">{html.escape(what)}: {NOT_IN_RUN}.</p>'


def _figure(fig: Any, alt: str) -> str:
    """Embed a matplotlib figure as a PNG data URI and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'<figure><img alt="{html.escape(alt, quote=True)}" '
            f'src="data:image/png;base64,{data}"></figure>')


def _strategy_rank(strategy: Any) -> int:
    text = _text(strategy)
    return STRATEGY_ORDER.index(text) if text in STRATEGY_ORDER else len(STRATEGY_ORDER)


def _ordered(table: pd.DataFrame) -> pd.DataFrame:
    """Rows by bone, then strategy order, ratio, generator bone and condition name."""
    if table.empty:
        return table
    key = pd.DataFrame({
        "bone": table["bone"].map(_text),
        "rank": table["strategy"].map(_strategy_rank),
        "ratio": pd.to_numeric(table["ratio"], errors="coerce").fillna(-1.0),
        "gen": table["generator_bone"].map(_text),
        "condition": table["condition"].map(_text),
    }, index=table.index)
    order = key.sort_values(["bone", "rank", "ratio", "gen", "condition"]).index
    return table.loc[order]


def _same_ratio(a: Any, b: float | None) -> bool:
    x = _finite(a)
    return x is not None and b is not None and math.isclose(x, b, rel_tol=1e-9, abs_tol=1e-9)


# --------------------------------------------------------------------------- the page


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #d0d4da; padding-bottom: 0.2em; margin-top: 2.2em; }
h3 { margin-top: 1.4em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.88em; }
th, td { border: 1px solid #d0d4da; padding: 0.25em 0.55em; text-align: left;
         vertical-align: top; }
th { background: #f1f3f6; }
tr.sig td { background: #fff4c2; font-weight: 600; }
tr.sig-worse td { background: #fbd9d3; font-weight: 600; }
tr.base td { background: #f4f6f9; }
pre { background: #f6f8fa; border: 1px solid #d0d4da; padding: 0.8em; overflow-x: auto;
      font-size: 0.85em; }
figure { margin: 0.8em 0; }
figure img { max-width: 100%; height: auto; }
.missing { color: #8a4b00; font-style: italic; }
.note { color: #4a4f57; font-size: 0.92em; }
dt { font-weight: 600; margin-top: 0.3em; }
dd { margin-left: 1.5em; }
.tag-real { color: #1b6e2b; font-weight: 700; }
.tag-synth { color: #b04a00; font-weight: 700; }
.warn { background: #fbd9d3; border: 1px solid #d9826f; padding: 0.2em 1em; }
"""


class _Page:
    """Builds the HTML of one report; each `_section_*` returns one section's body."""

    def __init__(self, run: Path, predictions: pd.DataFrame, summary: pd.DataFrame,
                 inputs: _Inputs, n_boot: int,
                 levels: tuple[str, dict[str, tuple[pd.DataFrame, pd.DataFrame]]] = (
                     "image", {})) -> None:
        self.run = run
        self.predictions = predictions
        self.summary = _ordered(summary.copy())
        # the first level's results fill the page; the others get their own section
        self.level, self.others = levels[0], {
            level: (pred, _ordered(summ.copy())) for level, (pred, summ) in levels[1].items()}
        self.inputs = inputs
        self.n_boot = n_boot
        self.bones = sorted({_text(b) for b in summary["bone"]})
        self.main_ratio, self.ratio_source = self._main_ratio()

    # ------------------------------------------------------------------ structure

    def render(self) -> str:
        bodies = [self._section_headline(), self._section_run(), self._section_probe(),
                  self._section_results(), self._section_levels(), self._section_roc(),
                  self._section_ratio(), self._section_transfer(), self._section_gate(),
                  self._section_samples(), self._section_runs(), self._section_config()]
        parts = []
        for number, (title, body) in enumerate(zip(SECTIONS, bodies, strict=True), start=1):
            parts.append(f'<section id="s{number}"><h2>{html.escape(title)}</h2>\n{body}'
                         "</section>")
        toc = "".join(f'<li><a href="#s{i}">{html.escape(t)}</a></li>'
                      for i, t in enumerate(SECTIONS, start=1))
        title = f"boneaug experiment report: {self.run.resolve().name}"
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
                f"<h1>{html.escape(title)}</h1><nav><ol>{toc}</ol></nav>"
                + "\n".join(parts) + "</body></html>\n")

    def _main_ratio(self) -> tuple[float | None, str]:
        """`report.ratio` of the config, else `protocol.main_ratio`, else the most common
        ratio of the gan conditions (then of all conditions)."""
        config = self.inputs.config or {}
        for section, key in (("report", "ratio"), ("protocol", "main_ratio")):
            block = config.get(section)
            if isinstance(block, dict) and _finite(block.get(key)) is not None:
                return float(block[key]), f"config {section}.{key}"
        ratios = pd.to_numeric(self.summary["ratio"], errors="coerce")
        for strategies, source in ((("gan",), "the most common ratio of the gan conditions"),
                                   (None, "the most common ratio of all conditions")):
            mask = ratios.notna()
            if strategies is not None:
                mask &= self.summary["strategy"].map(_text).isin(strategies)
            counts = ratios[mask].value_counts()
            if len(counts):
                # Ties go to the larger ratio: the strongest augmentation that was run as often.
                top = counts[counts == counts.max()].index.max()
                return float(top), source
        return None, "no condition has a ratio"

    def _rows(self, bone: str | None = None, strategy: str | None = None) -> pd.DataFrame:
        table = self.summary
        if bone is not None:
            table = table[table["bone"].map(_text) == bone]
        if strategy is not None:
            table = table[table["strategy"].map(_text) == strategy]
        return table

    # ------------------------------------------------------------------ 1. the run

    def _section_run(self) -> str:
        info = self.inputs.run_info or {}
        config = self.inputs.config or {}
        now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        facts = [("Experiment", _esc(config.get("name")) or NOT_IN_RUN),
                 ("Run folder", _esc(self.run.resolve())),
                 ("Command", _esc(_command_line(info)) or NOT_IN_RUN),
                 ("Started", _esc(info.get("started")) or NOT_IN_RUN),
                 ("Wall time", _wall(info) if _finite(info.get("wall_seconds")) is not None
                  else NOT_IN_RUN),
                 ("Git commit", _esc(info.get("git_commit")) or NOT_IN_RUN),
                 ("Report written", _esc(now))]
        seeds = self.predictions.groupby(["bone", "condition"])["seed"].nunique()
        k_text = (f"{seeds.min()}" if seeds.min() == seeds.max()
                  else f"{seeds.min()} to {seeds.max()}")
        n_conditions = self.summary.groupby("bone")["condition"].nunique()
        facts += [("Bones", _esc(", ".join(self.bones))),
                  ("Conditions per bone", _esc(", ".join(
                      f"{b}: {n_conditions.get(b, 0)}" for b in self.bones))),
                  ("Seeds per condition (K)", _esc(k_text)),
                  ("Main ratio", _esc(f"{self.main_ratio:g} (from {self.ratio_source})")
                   if self.main_ratio is not None else _esc(self.ratio_source))]
        if _text(config.get("note")):
            facts.append(("Note", _esc(config["note"])))
        test_rows = []
        for bone in self.bones:
            first = self._rows(bone).iloc[0]
            n, pos = _finite(first.get("n_test")), _finite(first.get("n_test_pos"))
            test_rows.append([_esc(bone), _num(n, 0), _num(pos, 0),
                              _num(None if n is None or pos is None else n - pos, 0)])
        out = ["<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>",
               "<h3>Data</h3>", self._data_description(),
               "<h3>Films per bone</h3>", self._films_per_bone(),
               "<h3>Skipped films</h3>", self._skipped_films(),
               "<h3>Test sets (real images only)</h3>",
               _table(["bone", "test regions" if self.level == "region" else "test images",
                       "with lesion", "without lesion"], test_rows),
               "<h3>How to read this report</h3>", self._reading_guide(k_text)]
        return "\n".join(out)

    def _films_per_bone(self) -> str:
        """Training films per bone (stages/data.json) and, where bones were assigned to
        films labelled by region, how (data/bones.json)."""
        notes: dict[str, str] = {}
        data = _read_json(self.run / "stages" / "data.json", notes, "data") or {}
        counts = data.get("counts") if isinstance(data.get("counts"), dict) else {}
        assign = data.get("assign") if isinstance(data.get("assign"), dict) else None
        out = []
        if counts:
            rows = [[_esc(b), _num(c.get("train_pos"), 0), _num(c.get("held_back"), 0),
                     _num(c.get("train_neg"), 0)] for b, c in sorted(counts.items())
                    if isinstance(c, dict)]
            out.append(_table(["bone", "train lesion films kept", "held back (oracle)",
                               "train normal films"], rows))
        else:
            out.append(_missing("stages/data.json with the per-bone counts"))
        if assign is None:
            out.append('<p class="note">No bone assignment in this run: every film\'s bone '
                       "came from the manifest.</p>")
            return "\n".join(out)
        by = assign.get("counts") if isinstance(assign.get("counts"), dict) else {}
        rows = [[_esc(b), _num(c.get("label"), 0), _num(c.get("user"), 0),
                 _num(c.get("model"), 0)] for b, c in sorted(by.items()) if isinstance(c, dict)]
        accuracy = _finite(assign.get("holdout_accuracy"))
        out.append(
            "<p>Films labelled only by region (or <code>unknown</code>) were given bones by a "
            "film classifier learned from the films whose bone is known, at score &ge; "
            f"{_esc(assign.get('min_confidence'))} (docs/experiment.md, \u201cWhich bone a "
            "film shows\u201d). Held-out check: the top bone was right for "
            f"{_percent(accuracy) if accuracy is not None else 'n/a'} of "
            f"{_esc(assign.get('holdout_films'))} known films. Films of a region that got no "
            f"bone: {_esc(assign.get('unassigned'))}. Review sheet: "
            "<code>data/bones-sheet.png</code>.</p>")
        out.append(_table(["bone", "films by label", "by the user", "by the model"], rows))
        return "\n".join(out)

    def _skipped_films(self) -> str:
        path = self.run / "evaluation" / "skipped.csv"
        if not path.is_file():
            return _missing("evaluation/skipped.csv")
        try:
            skipped = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (OSError, UnicodeDecodeError, pd.errors.ParserError,
                pd.errors.EmptyDataError) as exc:
            return f'<p class="missing">{_esc(path.name)} could not be read ({_esc(exc)})</p>'
        if skipped.empty:
            return "<p>No film was skipped: every stage could use every film it was given.</p>"
        per_stage = skipped.groupby("stage").size()
        lines = [f"<p>{len(skipped)} film(s) were skipped, each by the stage that could not "
                 "use it (" + ", ".join(f"{_esc(k)}: {int(v)}" for k, v in per_stage.items())
                 + "); the run went on without them. All of them: "
                 "<code>evaluation/skipped.csv</code>.</p>"]
        rows = [[_esc(r.stage), _esc(r.image_id), _esc(r.reason)]
                for r in skipped.head(12).itertuples()]
        lines.append(_table(["stage", "film", "reason"], rows))
        return "\n".join(lines)

    def _data_description(self) -> str:
        config = self.inputs.config
        if config is None:
            note = self.inputs.notes.get("config")
            if note is not None:
                return f'<p class="missing">{html.escape(note)}</p>'
            return _missing("config.yaml")
        items = []
        for key in ("data", "phantom", "manifest", "dataset", "bones", "split", "splits"):
            if key not in config:
                continue
            value = config[key]
            if isinstance(value, dict):
                inner = ", ".join(f"{k} = {_compact(v)}" for k, v in value.items())
                items.append(f"<dt>{_esc(key)}</dt><dd>{_esc(inner)}</dd>")
            else:
                items.append(f"<dt>{_esc(key)}</dt><dd>{_esc(_compact(value))}</dd>")
        if not items:
            return ('<p class="note">The config names no data section (data, phantom, '
                    "manifest); see section 9 for the whole config.</p>")
        return "<dl>" + "".join(items) + "</dl>"

    def _reading_guide(self, k_text: str) -> str:
        strategies = sorted({_text(s) for s in self.summary["strategy"]}, key=_strategy_rank)
        glossary = "".join(
            f"<dt>{_esc(s)}</dt><dd>{html.escape(STRATEGY_MEANING.get(s, 'see the config'))}"
            "</dd>" for s in strategies)
        return f"""<ul>
<li><b>The test set holds real radiographs only</b>, from the patient-level test split.
No synthetic image is ever tested on, and every condition of a bone is scored on the same
test images, so the conditions of a bone can be compared image by image.</li>
<li>Each condition trained <b>K = {html.escape(k_text)}</b> classifiers with different seeds.
<b>mean ± sd</b> is over these seeds: the sd shows how much the training seed alone moves
a result.</li>
<li>The <b>ensemble</b> averages the K classifiers' scores per test image. Its AUC comes
with a <b>95 % confidence interval</b> from {self.n_boot} bootstrap resamples of the test
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
{self.n_boot} bootstrap resamples of <b>both the test images and the training seeds</b>:
each resample draws the test images (stratified, the same draw for the condition and the
baseline) and, independently for each of the two, K seeds with replacement. So the test
counts the seed-to-seed noise that a new training would bring, not only the choice of
test images. p is two-sided (twice the smaller share of resamples at or below 0 and at or
above 0, with +1 in each count), so it is never below {2 / (self.n_boot + 1):.2g}. Rows with
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

    # ------------------------------------------------------------------ 2. results

    def _section_results(self) -> str:
        level = (f'<p class="note">Level: <b>{_esc(self.level)}</b> '
                 f"({_esc(LEVEL_MEANING.get(self.level, ''))}).</p>")
        return level + self._results_tables(self.summary, self.predictions) + self._goal()

    def _results_tables(self, summary: pd.DataFrame, predictions: pd.DataFrame,
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
               f"<code>{_esc(csv_name)}</code> beside this report.</p>"]
        for bone in sorted({_text(b) for b in summary["bone"]}):
            rows, classes = [], []
            for _, r in summary[summary["bone"].map(_text) == bone].iterrows():
                seeds = r.get("seeds")
                k = seeds if _finite(seeds) is not None else int(predictions.loc[
                    (predictions["bone"].map(_text) == bone)
                    & (predictions["condition"].map(_text) == _text(r["condition"])),
                    "seed"].nunique())
                rows.append([
                    _esc(r["condition"]), _esc(r["strategy"]), _esc(_ratio(r["ratio"])),
                    _esc(r["generator_bone"]), _esc(_text(k)),
                    _pm(r.get("auc_mean"), r.get("auc_sd")),
                    _signed_ci(r.get("delta_seeds"), r.get("delta_seeds_lo"),
                               r.get("delta_seeds_hi")),
                    _pvalue(r.get("boot_p")),
                    _ci(r.get("auc"), r.get("auc_lo"), r.get("auc_hi")),
                    _pm(r.get("pr_auc_mean"), r.get("pr_auc_sd")),
                    _ci(r.get("pr_auc"), r.get("pr_auc_lo"), r.get("pr_auc_hi")),
                    _pm(r.get("sens90_mean"), r.get("sens90_sd")),
                    _ci(r.get("sens90"), r.get("sens90_lo"), r.get("sens90_hi")),
                    _signed(r.get("delta_auc")), _pvalue(r.get("delong_p")),
                    _gap_cell(r.get("gap_closed"), r.get("gap_note"))])
                p = _finite(r.get("boot_p"))
                if p is not None and p < 0.05:
                    # Significant either way; a worse-than-baseline result must stand out too.
                    worse = (_finite(r.get("delta_seeds")) or 0.0) < 0
                    classes.append("sig-worse" if worse else "sig")
                else:
                    classes.append("base" if _text(r["strategy"]) == "baseline" else "")
            out.append(f"<h3>{_esc(bone)}</h3>")
            out.append(_table(header, rows, classes))
        return "\n".join(out)

    def _section_levels(self) -> str:
        if not self.others:
            return (f"<p>This run compared strategies at the {_esc(self.level)} level only. "
                    "Set <code>protocol.levels: [image, region]</code> to also compare them "
                    "on lesion-scale regions of the same test films, where nothing outside "
                    "the lesion can help (docs/experiment.md).</p>")
        out = []
        for level, (predictions, summary) in self.others.items():
            out.append(f"<h3>{_esc(level)} level</h3><p class=\"note\">"
                       f"{_esc(LEVEL_MEANING.get(level, '').capitalize())}.</p>")
            out.append(self._results_tables(summary, predictions, f"results-{level}.csv"))
        return "\n".join(out)

    # ------------------------------------------------------------------ headline, probes

    def _summaries(self) -> dict[str, pd.DataFrame]:
        return {self.level: self.summary, **{v: s for v, (_, s) in self.others.items()}}

    def _section_headline(self) -> str:
        table = headline(self._summaries(), self.inputs.probes or [])
        rows, classes = [], []
        for _, r in table.iterrows():
            rows.append([_esc(r["level"]), _esc(r["bone"]), _probe_cell(r),
                         _num(r["metadata_auc"], 2), _num(r["baseline_auc"]),
                         *(_headline_cell(r, k) for k in ("best_other", "best_gan",
                                                             "oracle"))])
            probe = _finite(r["probe_auc"])
            classes.append("sig-worse" if probe is not None and probe > WARN_AUC else "")
        verdicts = "".join(f"<li>{_esc(verdict(r))}</li>" for _, r in table.iterrows())
        return ('<p class="note">Per level and bone: the shortcut probe (a classifier that '
                "cannot see the lesion; near 0.5 is what a comparison about lesions needs), "
                "the baseline's mean test AUC over seeds, and the best non-generative, the "
                "best generative and the best oracle condition by mean AUC, each with ΔAUC "
                "of mean AUCs and p against the baseline (the bootstrap over test images "
                "and seeds, which decides the verdict), then DeLong p on the seed ensembles "
                "(secondary: blind to seed-to-seed noise).</p>"
                + _table(["level", "bone", "probe AUC", "metadata AUC", "baseline AUC",
                          "best non-generative", "best generative", "oracle"], rows, classes)
                + f"<ul>{verdicts}</ul>"
                + f"<p>Wall time of the run: {self._wall_text()}.</p>")

    def _wall_text(self) -> str:
        info = self.inputs.run_info or {}
        return _wall(info) if _finite(info.get("wall_seconds")) is not None else NOT_IN_RUN

    def _section_probe(self) -> str:
        probes = self.inputs.probes
        if probes is None:
            return _missing("the shortcut probe (evaluation/probe.json)")
        if not probes:
            return "<p>The probe was switched off (<code>probe.enabled: false</code>).</p>"
        rows, classes = [], []
        for p in probes:
            result = ProbeResult.from_dict(p)
            meta = ("-" if result.metadata_auc is None else
                    _ci(result.metadata_auc, *(result.metadata_ci or (None, None))))
            rows.append([_esc(result.bone), _esc(result.level), _esc(result.when or "-"),
                         _num(result.n_pos, 0), _num(result.n_neg, 0),
                         _ci(result.auc, *result.ci), meta,
                         _esc(", ".join(result.metadata_columns) or "-")])
            high = result.auc > WARN_AUC or (result.metadata_auc or 0) > WARN_AUC
            classes.append("sig-worse" if high else "")
        warnings = [ProbeResult.from_dict(p).warning for p in probes]
        out = [PROBE_GUIDE, _table(["bone", "level", "when", "positives", "negatives",
                                    "lesion-blind AUC [95 % CI]", "metadata AUC [95 % CI]",
                                    "metadata used"], rows, classes)]
        if any(warnings):
            out.append('<div class="warn"><ul>' + "".join(
                f"<li>{_esc(line)}</li>" for w in warnings for line in w.splitlines()
                if line) + "</ul></div>")
        out.append(self._matching())
        return "\n".join(out)

    def _matching(self) -> str:
        data = _read_json(self.run / "stages" / "data.json", {}, "data") or {}
        matches = data.get("matching")
        if not matches:
            return ("<p>Negatives were not matched to the positives "
                    "(<code>matching.columns: []</code>).</p>")
        rows = []
        for m in matches:
            for split, c in (m.get("per_split") or {}).items():
                rows.append([_esc(m.get("bone")), _esc(", ".join(m.get("columns") or [])),
                             _esc(split), f"{c.get('positives_kept')} of {c.get('positives')}",
                             f"{c.get('negatives_kept')} of {c.get('negatives')}"])
        return ("<h3>Matched negatives</h3><p class=\"note\">Per bone and split, the films "
                "matching kept (case-control on the columns named; docs/experiment.md).</p>"
                + _table(["bone", "matched on", "split", "positives kept",
                          "negatives kept"], rows))

    def _goal(self) -> str:
        """The benchmark's goal (`evaluate.goal_check`) at the main ratio, line by line."""
        if self.main_ratio is None:
            return ""
        goal = goal_check(self.predictions, self.summary, self.main_ratio)
        head = (f"<h3>Against the goal (ratio {self.main_ratio:g})</h3><p class=\"note\">"
                "The goal: on every bone, <code>gan</code> closes at least half of the "
                "baseline-to-oracle gap in mean AUC and beats <code>oversample</code> and "
                "<code>copypaste</code>: higher mean AUC with p &lt; 0.05 by the bootstrap "
                "over test images and seeds (DeLong p on the seed ensembles beside it, "
                "secondary); each <code>gan-transfer</code> closes at least a third. A gap "
                "that is not defined (the oracle does not beat the baseline) is not met."
                "</p>")
        if goal.empty:
            return head + _missing("gan or gan-transfer conditions at this ratio")
        rows = [[_esc(r["bone"]), _esc(r["condition"]), _esc(r["vs"] or "the gap"),
                 _gap_cell(r["gap_closed"], r.get("gap_note")) if not r["vs"] else
                 _signed_ci(r["delta_seeds"], r["boot_lo"], r["boot_hi"]),
                 _pvalue(r["boot_p"]) if r["vs"] else "",
                 _pvalue(r["delong_p"]) if r["vs"] else "",
                 "met" if r["goal"] else "not met"] for _, r in goal.iterrows()]
        classes = ["sig" if r["goal"] else "" for _, r in goal.iterrows()]
        return head + _table(["bone", "condition", "against",
                              "gap closed / ΔAUC of means [95 % CI]", "p (seeds × images)",
                              "DeLong p", "goal"], rows, classes)

    # ------------------------------------------------------------------ 3. ROC

    def _roc_conditions(self, bone: str) -> list[str]:
        """Conditions without a ratio, those at the main ratio, and the best gan condition."""
        chosen: list[str] = []
        rows = self._rows(bone)
        for _, r in rows.iterrows():
            if _finite(r["ratio"]) is None or _same_ratio(r["ratio"], self.main_ratio):
                chosen.append(_text(r["condition"]))
        gan = rows[rows["strategy"].map(_text) == "gan"]
        if len(gan):
            auc = pd.to_numeric(gan["auc"], errors="coerce")
            if auc.notna().any():
                best = _text(gan.loc[auc.idxmax(), "condition"])
                if best not in chosen:
                    chosen.append(best)
        return chosen

    def _ensembles(self) -> pd.DataFrame:
        """Per (bone, condition, test image): the label and the score averaged over seeds."""
        return (self.predictions.groupby(["bone", "condition", "image_id"], sort=False)
                .agg(label=("label", "first"), score=("score", "mean")).reset_index())

    def _section_roc(self) -> str:
        import matplotlib.pyplot as plt

        ensembles = self._ensembles()
        n = len(self.bones)
        cols = min(n, 3)
        rows = math.ceil(n / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 5.0 * rows), squeeze=False)
        notes = []
        for ax, bone in zip(axes.flat, self.bones, strict=False):
            ax.plot([0, 1], [0, 1], color="#bbbbbb", lw=0.8, ls=":")
            conditions = self._roc_conditions(bone)
            styles = _line_styles(conditions, self._rows(bone))
            for condition in conditions:
                sel = ensembles[(ensembles["bone"] == bone)
                                & (ensembles["condition"] == condition)]
                labels = sel["label"].to_numpy()
                if len(np.unique(labels)) < 2:
                    notes.append(f"{bone} {condition}: the test set has one class only")
                    continue
                fpr, tpr, _ = roc_curve(labels, sel["score"].to_numpy())
                auc = self._rows(bone).set_index("condition")["auc"].get(condition)
                label = f"{condition} (AUC {_num(auc)})"
                ax.plot(fpr, tpr, label=label, **styles[condition])
            k = pd.to_numeric(self._rows(bone)["seeds"], errors="coerce").max()
            ax.set_title(f"{bone}: ensemble of {_num(k, 0)} seeds per condition")
            ax.set_xlabel("1 − specificity (false positive rate)")
            ax.set_ylabel("sensitivity (true positive rate)")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.01)
            ax.set_aspect("equal")
            ax.legend(loc="lower right", fontsize=7, framealpha=0.9)
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
        ratio = f"{self.main_ratio:g}" if self.main_ratio is not None else "–"
        text = (f'<p class="note">ROC curves of the ensemble (scores averaged over the K '
                f"seeds) on the real test images: the conditions without a ratio, all "
                f"conditions at the main ratio {html.escape(ratio)}, and the best gan "
                "condition. AUC in the legend: ensemble AUC (section 2).</p>")
        if notes:
            text += '<p class="missing">' + html.escape("; ".join(notes)) + "</p>"
        return text + _figure(fig, "ROC curves per bone")

    # ------------------------------------------------------------------ 4. ratio

    def _section_ratio(self) -> str:
        import matplotlib.pyplot as plt

        series: dict[str, list[tuple[str, pd.DataFrame]]] = {}
        for bone in self.bones:
            rows = self._rows(bone)
            rows = rows[pd.to_numeric(rows["ratio"], errors="coerce").notna()]
            keyed = rows.assign(_line=[_line_name(s, g) for s, g in
                                       zip(rows["strategy"], rows["generator_bone"],
                                           strict=True)])
            for line, group in keyed.groupby("_line", sort=False):
                if group["ratio"].nunique() >= 2:
                    series.setdefault(bone, []).append((str(line), group))
        if not series:
            return _missing("A strategy with several synthetic ratios")
        bones = [b for b in self.bones if b in series]
        cols = min(len(bones), 3)
        rows_n = math.ceil(len(bones) / cols)
        fig, axes = plt.subplots(rows_n, cols, figsize=(5.4 * cols, 4.2 * rows_n),
                                 squeeze=False)
        for ax, bone in zip(axes.flat, bones, strict=False):
            lines = sorted(series[bone], key=lambda item: (_strategy_rank(
                item[1]["strategy"].iloc[0]), item[0]))
            for i, (line, group) in enumerate(lines):
                group = group.assign(_r=pd.to_numeric(group["ratio"])).sort_values("_r")
                ax.errorbar(group["_r"], pd.to_numeric(group["auc_mean"], errors="coerce"),
                            yerr=pd.to_numeric(group["auc_sd"], errors="coerce").fillna(0.0),
                            label=line, marker="o", ms=4, capsize=3, lw=1.4,
                            color=_color(i), ls=_dash(i))
            base = self._rows(bone, "baseline")
            if len(base):
                mean = _finite(base["auc_mean"].iloc[0])
                sd = _finite(base["auc_sd"].iloc[0]) or 0.0
                if mean is not None:
                    ax.axhline(mean, color="black", ls="--", lw=1.0, label="baseline (mean)")
                    ax.axhspan(mean - sd, mean + sd, color="black", alpha=0.08)
            ax.set_title(f"{bone}: AUC (mean ± sd over seeds)")
            ax.set_xlabel("ratio (extra positives per real positive)")
            ax.set_ylabel("test AUC")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="best")
        for ax in list(axes.flat)[len(bones):]:
            ax.set_visible(False)
        return ('<p class="note">Mean test AUC over the K seeds against the ratio, with ± '
                "1 sd error bars; the dashed line and band are the baseline's mean ± sd. "
                "Only strategies run at two or more ratios are drawn.</p>"
                + _figure(fig, "AUC against the synthetic ratio per bone"))

    # ------------------------------------------------------------------ 5. transfer

    def _matrix(self, strategies: dict[bool, str], ratio: float | None
                ) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
        """AUC mean and sd, rows = generator bone, cols = target bone, at `ratio`.

        `strategies[True]` fills the diagonal (generator bone == target bone) and
        `strategies[False]` the rest.
        """
        wanted = set(strategies.values())
        rows = self.summary[self.summary["strategy"].map(_text).isin(wanted)]
        rows = rows[[_same_ratio(r, ratio) for r in rows["ratio"]]]
        gens = sorted({_text(g) or _text(b) for g, b in
                       zip(rows["generator_bone"], rows["bone"], strict=True)})
        targets = self.bones
        mean = np.full((len(gens), len(targets)), np.nan)
        sd = np.full_like(mean, np.nan)
        for _, r in rows.iterrows():
            target = _text(r["bone"])
            gen = _text(r["generator_bone"]) or target
            if strategies[gen == target] != _text(r["strategy"]) or target not in targets:
                continue
            i, j = gens.index(gen), targets.index(target)
            mean[i, j] = _finite(r["auc_mean"]) if _finite(r["auc_mean"]) is not None \
                else np.nan
            sd[i, j] = _finite(r["auc_sd"]) if _finite(r["auc_sd"]) is not None else np.nan
        return gens, targets, mean, sd

    def _section_transfer(self) -> str:
        strategies = set(self.summary["strategy"].map(_text))
        out = []
        if {"gan", "gan-transfer"} & strategies:
            out.append(self._matrix_block(
                "GAN augmentation", {True: "gan", False: "gan-transfer"}, self.main_ratio,
                "diagonal: gan (generator of the same bone); off the diagonal: gan-transfer "
                "(the generator of the row's bone painted lesions onto the column's bone)"))
            if "gan-transfer" not in strategies:
                out.append('<p class="note">No gan-transfer condition in this run: only the '
                           "diagonal is filled.</p>")
        else:
            out.append(_missing("GAN and GAN-transfer conditions"))
        if "tstr" in strategies:
            tstr_ratio = self.main_ratio
            tstr = self._rows(strategy="tstr")
            if not any(_same_ratio(r, tstr_ratio) for r in tstr["ratio"]):
                counts = pd.to_numeric(tstr["ratio"], errors="coerce").value_counts()
                tstr_ratio = float(counts.index[0]) if len(counts) else None
            out.append(self._matrix_block(
                "Train on synthetic, test on real (TSTR)", {True: "tstr", False: "tstr"},
                tstr_ratio, "a classifier trained on the generator's synthetic positives and "
                "real negatives only, tested on real images: how far the synthetics alone "
                "carry"))
        else:
            out.append(_missing("TSTR (train-synthetic-test-real) conditions"))
        return "\n".join(out)

    def _matrix_block(self, title: str, strategies: dict[bool, str], ratio: float | None,
                      meaning: str) -> str:
        import matplotlib.pyplot as plt

        gens, targets, mean, sd = self._matrix(strategies, ratio)
        ratio_text = f"{ratio:g}" if ratio is not None else "–"
        head = (f"<h3>{html.escape(title)}, ratio {html.escape(ratio_text)}</h3>"
                f'<p class="note">Test AUC, mean ± sd over the K seeds. Rows: the bone whose '
                f"generator made the synthetic lesions; columns: the bone the classifier was "
                f"trained and tested on; {html.escape(meaning)}. Empty: no such condition at "
                "this ratio.</p>")
        if not gens or np.isnan(mean).all():
            return head + _missing(f"{title} at ratio {ratio_text}")
        rows = []
        for i, gen in enumerate(gens):
            rows.append([f"<b>{_esc(gen)}</b>"] + [
                _pm(mean[i, j], sd[i, j]) if not math.isnan(mean[i, j]) else ""
                for j in range(len(targets))])
        baseline = []
        for target in targets:
            base = self._rows(target, "baseline")
            baseline.append(_pm(base["auc_mean"].iloc[0], base["auc_sd"].iloc[0])
                            if len(base) else "")
        rows.append(["<i>baseline (no synthetics)</i>"] + baseline)
        table = _table(["generator ↓ / target →"] + [_esc(t) for t in targets], rows)

        fig, ax = plt.subplots(figsize=(1.6 * len(targets) + 2.4, 1.2 * len(gens) + 1.6))
        shown = np.ma.masked_invalid(mean)
        image = ax.imshow(shown, cmap="viridis", vmin=np.nanmin(mean), vmax=np.nanmax(mean))
        ax.set_facecolor("#e6e6e6")
        ax.set_xticks(range(len(targets)), targets)
        ax.set_yticks(range(len(gens)), gens)
        ax.set_xlabel("target bone (classifier trained and tested)")
        ax.set_ylabel("generator bone")
        ax.set_title(f"{title}: AUC, ratio {ratio_text}", fontsize=10)
        span = np.nanmax(mean) - np.nanmin(mean)
        for i in range(len(gens)):
            for j in range(len(targets)):
                if math.isnan(mean[i, j]):
                    continue
                # Dark text on the bright end of viridis, white on the dark end.
                bright = span > 0 and (mean[i, j] - np.nanmin(mean)) / span > 0.6
                ax.text(j, i, f"{mean[i, j]:.3f}", ha="center", va="center", fontsize=9,
                        color="black" if bright else "white")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="AUC mean")
        return head + table + _figure(fig, f"{title} matrix")

    # ------------------------------------------------------------------ 6. gate

    def _section_gate(self) -> str:
        out = []
        gate = self.inputs.gate
        if "gate" in self.inputs.notes:
            out.append(f'<p class="missing">{html.escape(self.inputs.notes["gate"])}</p>')
        elif gate is None:
            out.append(_missing("evaluation/gate.json"))
        else:
            entries = gate.get("bones")
            if not isinstance(entries, list) or not entries:
                out.append(_missing("A gate entry per bone in gate.json"))
            else:
                rows = []
                for e in entries:
                    e = e if isinstance(e, dict) else {}
                    scored, kept = _finite(e.get("scored")), _finite(e.get("kept"))
                    share = _percent(kept / scored) if scored and kept is not None else "–"
                    rows.append([_esc(e.get("bone")), _num(e.get("threshold"), 4),
                                 _esc(e.get("scored")), _esc(e.get("kept")),
                                 _esc(e.get("dropped")), share, _esc(e.get("source"))])
                out.append('<p class="note">The quality gate scores each synthetic image '
                           "and drops those below the threshold before gan-gated training."
                           "</p>")
                out.append(_table(["bone", "threshold", "scored", "kept", "dropped",
                                   "kept share", "source condition"], rows))
        gated = self._rows(strategy="gan-gated")
        if not len(gated):
            out.append(_missing("Gated (gan-gated) classifier conditions"))
            return "\n".join(out)
        rows = []
        for _, g in gated.iterrows():
            bone = _text(g["bone"])
            ungated = self._rows(bone, "gan")
            ungated = ungated[[_same_ratio(r, _finite(g["ratio"])) for r in ungated["ratio"]]]
            u = ungated.iloc[0] if len(ungated) else None
            diff = (_finite(g["auc_mean"]) - _finite(u["auc_mean"])
                    if u is not None and _finite(g["auc_mean"]) is not None
                    and _finite(u["auc_mean"]) is not None else None)
            rows.append([_esc(bone), _esc(g["condition"]), _pm(g["auc_mean"], g["auc_sd"]),
                         _ci(g["auc"], g["auc_lo"], g["auc_hi"]),
                         _esc(u["condition"]) if u is not None else "–",
                         _pm(u["auc_mean"], u["auc_sd"]) if u is not None else "–",
                         _ci(u["auc"], u["auc_lo"], u["auc_hi"]) if u is not None else "–",
                         _signed(diff)])
        out.append("<h3>Gated against ungated, at the same ratio</h3>")
        out.append(_table(["bone", "gated", "AUC mean ± sd", "ensemble AUC [95 % CI]",
                           "ungated", "AUC mean ± sd", "ensemble AUC [95 % CI]",
                           "gated − ungated (mean AUC)"], rows))
        return "\n".join(out)

    # ------------------------------------------------------------------ 7. samples

    def _section_samples(self) -> str:
        import matplotlib.pyplot as plt

        synth_root = self.run / "synth"
        out = ['<p class="note">Per bone: <span class="tag-real">REAL</span> lesion patches '
               "from the training split, then <span class=\"tag-synth\">SYNTHETIC</span> "
               "lesion crops (the crop the generator translated, resized to the patch size). "
               "Up to 8 each.</p>"]
        if not synth_root.is_dir():
            out.append(_missing("Synthetic images (synth/ folder)"))
        for bone in self.bones:
            real, real_note = self._real_patches(bone)
            size = real.shape[-1] if real is not None else DEFAULT_PATCH
            rows: list[tuple[str, bool, np.ndarray]] = []
            notes = [] if real_note is None else [real_note]
            if real is not None:
                rows.append(("REAL lesion patches", True, real))
            for label, folders in self._synth_groups(bone):
                crops, note = _synthetic_crops(folders, size)
                if note:
                    notes.append(note)
                if len(crops):
                    rows.append((label, False, crops))
            out.append(f"<h3>{_esc(bone)}</h3>")
            if notes:
                out.append('<p class="missing">' + html.escape("; ".join(notes)) + "</p>")
            if not rows:
                out.append(_missing(f"Real or synthetic lesion samples of {bone}"))
                continue
            if not any(not is_real for _, is_real, _ in rows):
                out.append(_missing(f"Synthetic lesion crops of {bone}"))
            fig, axes = plt.subplots(len(rows), SAMPLES_PER_ROW,
                                     figsize=(1.3 * SAMPLES_PER_ROW + 2.6, 1.45 * len(rows)),
                                     squeeze=False)
            for (label, is_real, tiles), axrow in zip(rows, axes, strict=True):
                colour = "#1b6e2b" if is_real else "#b04a00"
                for k, ax in enumerate(axrow):
                    ax.set_xticks([])
                    ax.set_yticks([])
                    if k < len(tiles):
                        ax.imshow(tiles[k], cmap="gray", vmin=0.0, vmax=1.0,
                                  interpolation="nearest")
                        for spine in ax.spines.values():
                            spine.set_color(colour)
                            spine.set_linewidth(2)
                    else:
                        ax.axis("off")
                axrow[0].axis("on")
                axrow[0].set_ylabel(label, rotation=0, ha="right", va="center",
                                    fontsize=9, color=colour, labelpad=8)
            fig.suptitle(f"{bone}: real (green) and synthetic (orange) lesions", fontsize=10)
            out.append(_figure(fig, f"sample sheet {bone}: real and synthetic lesions"))
        return "\n".join(out)

    def _real_patches(self, bone: str) -> tuple[np.ndarray | None, str | None]:
        path = self.run / "patches" / bone / "lesion" / "patches.npy"
        if not path.is_file():
            return None, f"real lesion patches ({path.relative_to(self.run)}): {NOT_IN_RUN}"
        try:
            raw = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            return None, f"{path.relative_to(self.run)} could not be read ({_first_line(exc)})"
        if raw.ndim != 3 or raw.shape[0] == 0 or raw.shape[1] != raw.shape[2]:
            return None, f"{path.relative_to(self.run)} has shape {raw.shape}, not (N, P, P)"
        # Spread over the store: the first patches often come from one radiograph.
        picks = np.unique(np.linspace(0, raw.shape[0] - 1, min(SAMPLES_PER_ROW, raw.shape[0]))
                          .round().astype(int))
        tiles = np.asarray(raw[picks])
        return _unit(tiles), None

    def _synth_groups(self, bone: str) -> list[tuple[str, list[Path]]]:
        """(row label, synthetic.csv files) of the GAN, transfer and copy-paste synthetics."""
        groups: list[tuple[str, list[Path]]] = []
        gan_root = self.run / "synth" / "gan"
        own = _seed_folders(gan_root, re.compile(rf"^{re.escape(bone)}-s(\d+)$"))
        if own:
            groups.append((f"SYNTHETIC: GAN\n({bone} generator)", [f for _, f in own]))
        transfer: dict[str, list[tuple[int, Path]]] = {}
        pattern = re.compile(rf"^{re.escape(bone)}-from-(.+)-s(\d+)$")
        if gan_root.is_dir():
            for folder in gan_root.iterdir():
                match = pattern.match(folder.name)
                if match and (folder / "synthetic.csv").is_file():
                    transfer.setdefault(match.group(1), []).append(
                        (int(match.group(2)), folder / "synthetic.csv"))
        for gen in sorted(transfer):
            files = [f for _, f in sorted(transfer[gen])]
            groups.append((f"SYNTHETIC: GAN transfer\n({gen} generator)", files))
        paste = _seed_folders(self.run / "synth" / "copypaste",
                              re.compile(rf"^{re.escape(bone)}-s(\d+)$"))
        if paste:
            groups.append(("SYNTHETIC:\ncopy-paste", [f for _, f in paste]))
        return groups

    # ------------------------------------------------------------------ 8. runs

    def _section_runs(self) -> str:
        runs = self.inputs.runs
        if "runs" in self.inputs.notes:
            return f'<p class="missing">{html.escape(self.inputs.notes["runs"])}</p>'
        if runs is None:
            return _missing("evaluation/runs.csv")
        needed = {"bone", "condition"}
        if not needed <= set(runs.columns) or runs.empty:
            return _missing("Classifier runs (runs.csv has no bone/condition rows)")
        columns = [("n_train", "train images", 0), ("n_train_pos_real", "real positives", 0),
                   ("n_train_pos_extra", "extra positives", 0), ("n_train_neg", "negatives", 0),
                   ("best_epoch", "epoch kept", 0), ("val_auc", "its val AUC", 3),
                   ("train_seconds", "train s / run", 1)]
        columns = [c for c in columns if c[0] in runs.columns]
        keyed = runs.assign(bone=runs["bone"].map(_text), condition=runs["condition"].map(_text))
        for col in ("strategy", "ratio", "generator_bone"):
            if col not in keyed.columns:
                keyed[col] = ""
        firsts = keyed.groupby(["bone", "condition"], sort=False).first().reset_index()
        rows = []
        for _, r in _ordered(firsts).iterrows():
            group = keyed[(keyed["bone"] == r["bone"]) & (keyed["condition"] == r["condition"])]
            cells = [_esc(r["bone"]), _esc(r["condition"]), _esc(len(group))]
            for col, _, digits in columns:
                values = pd.to_numeric(group[col], errors="coerce").dropna()
                cells.append(_spread(values, digits, sd=col == "val_auc"))
            rows.append(cells)
        total_text = ""
        if "train_seconds" in runs.columns:
            seconds = pd.to_numeric(runs["train_seconds"], errors="coerce")
            if seconds.notna().any():
                total_text = f" Total training time {seconds.sum() / 60:.1f} min."
        note = (f'<p class="note">{len(runs)} classifier runs. Train set sizes per run; a '
                "range where the seeds differ. val AUC: on the real validation split, mean ± "
                f"sd over seeds.{html.escape(total_text)}</p>")
        return note + _table(["bone", "condition", "runs"] + [c[1] for c in columns], rows)

    # ------------------------------------------------------------------ 9. config

    def _section_config(self) -> str:
        out = ["<h3>Config (config.yaml)</h3>"]
        for key in ("config", "config_source"):
            if key in self.inputs.notes:
                out.append(f'<p class="missing">{html.escape(self.inputs.notes[key])}</p>')
        if self.inputs.config_text is not None:
            out.append(f"<pre>{html.escape(self.inputs.config_text)}</pre>")
        elif "config" not in self.inputs.notes:
            out.append(_missing("config.yaml"))
        out.append("<h3>Versions and provenance (run.json)</h3>")
        info = self.inputs.run_info
        if info is None:
            note = self.inputs.notes.get("run")
            out.append(f'<p class="missing">{html.escape(note)}</p>' if note
                       else _missing("run.json"))
            return "\n".join(out)
        versions = info.get("versions")
        if isinstance(versions, dict) and versions:
            out.append(_table(["package", "version"],
                              [[_esc(k), _esc(v)] for k, v in versions.items()]))
        else:
            out.append(_missing("Package versions"))
        extra = [(k, info.get(k)) for k in ("command", "seed", "git_commit", "started",
                                            "wall_seconds", "platform") if k in info]
        if extra:
            out.append(_table(["field", "value"],
                              [[_esc(k), _esc(_compact(v))] for k, v in extra]))
        return "\n".join(out)


# --------------------------------------------------------------------------- helpers


def _compact(value: Any) -> str:
    """A config value on one line (mappings and lists as flow YAML)."""
    if isinstance(value, dict | list):
        return yaml.safe_dump(value, default_flow_style=True, sort_keys=False).strip()
    return _text(value)


def _spread(values: pd.Series, digits: int, sd: bool) -> str:
    if values.empty:
        return "–"
    if sd:
        return _pm(values.mean(), values.std(ddof=1) if len(values) > 1 else None, digits)
    lo, hi = values.min(), values.max()
    if math.isclose(lo, hi):
        return _num(lo, digits)
    return f"{_num(lo, digits)}–{_num(hi, digits)}"


def _line_name(strategy: Any, generator_bone: Any) -> str:
    strategy = _text(strategy)
    if strategy == "gan-transfer" and _text(generator_bone):
        return f"gan-transfer from {_text(generator_bone)}"
    return strategy


def _color(i: int) -> str:
    palette = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
               "#17becf", "#bcbd22", "#7f7f7f")
    return palette[i % len(palette)]


def _dash(i: int) -> str:
    # Past ten lines the colours repeat; the dash pattern keeps them apart.
    return ("-", "--", "-.", ":")[(i // 10) % 4]


def _line_styles(conditions: list[str], rows: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Baseline black and thick, oracle grey dashed (the bounds); the rest in colour."""
    strategy = dict(zip(rows["condition"].map(_text), rows["strategy"].map(_text), strict=True))
    styles: dict[str, dict[str, Any]] = {}
    i = 0
    for condition in conditions:
        kind = strategy.get(condition, "")
        if kind == "baseline":
            styles[condition] = {"color": "black", "lw": 2.2}
        elif kind == "oracle":
            styles[condition] = {"color": "#555555", "lw": 1.8, "ls": "--"}
        else:
            styles[condition] = {"color": _color(i), "lw": 1.3, "ls": _dash(i)}
            i += 1
    return styles


def _seed_folders(root: Path, pattern: re.Pattern[str]) -> list[tuple[int, Path]]:
    """(seed, synthetic.csv) of the folders under `root` whose name matches `pattern`."""
    if not root.is_dir():
        return []
    found = []
    for folder in root.iterdir():
        match = pattern.match(folder.name)
        if match and (folder / "synthetic.csv").is_file():
            found.append((int(match.group(match.re.groups)), folder / "synthetic.csv"))
    return sorted(found)


def _unit(tiles: np.ndarray) -> np.ndarray:
    """Patch store values as float32 in [0, 1] (uint16 stores are value / 65535)."""
    if tiles.dtype == np.uint16:
        return tiles.astype(np.float32) / 65535.0
    if tiles.dtype == np.uint8:
        return tiles.astype(np.float32) / 255.0
    return np.clip(np.nan_to_num(tiles.astype(np.float32)), 0.0, 1.0)


def _synthetic_crops(files: list[Path], size: int) -> tuple[np.ndarray, str | None]:
    """Up to 8 lesion crops `(n, size, size)` in [0, 1] from synthetic manifests, in order."""
    crops: list[np.ndarray] = []
    problems: list[str] = []
    for path in files:
        try:
            manifest = load_manifest(path, check_images=False)
        except BoneaugError as exc:
            problems.append(_first_line(exc))
            continue
        for index in manifest.table.index:
            if len(crops) >= SAMPLES_PER_ROW:
                break
            row = manifest.table.loc[index]
            try:
                image = read_image(manifest.image_path(index))
            except BoneaugError as exc:
                problems.append(_first_line(exc))
                continue
            x0, y0, x1, y1 = _crop_box(row, image.shape)
            crops.append(resize_square(image[y0:y1, x0:x1], size))
        if len(crops) >= SAMPLES_PER_ROW:
            break
    note = None
    if problems:
        note = f"{len(problems)} synthetic image(s) skipped, first: {problems[0]}"
    stacked = np.stack(crops) if crops else np.zeros((0, size, size), np.float32)
    return stacked, note


def _crop_box(row: pd.Series, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The provenance crop box, else a square twice the first lesion box, else the image."""
    height, width = shape[:2]
    box = None
    try:
        provenance = json.loads(_text(row.get("provenance")) or "{}")
        if isinstance(provenance, dict) and provenance.get("crop_box") is not None:
            box = [float(v) for v in provenance["crop_box"]][:4]
    except (json.JSONDecodeError, TypeError, ValueError):
        box = None
    if box is None or len(box) != 4:
        boxes = row.get("boxes")
        if isinstance(boxes, list) and boxes and len(boxes[0]) == 4:
            bx0, by0, bx1, by1 = (float(v) for v in boxes[0])
            half = max(bx1 - bx0, by1 - by0, 1.0)  # twice the box: the lesion and its context
            cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
            box = [cx - half, cy - half, cx + half, cy + half]
        else:
            box = [0, 0, width, height]
    x0 = int(np.clip(math.floor(box[0]), 0, width - 1))
    y0 = int(np.clip(math.floor(box[1]), 0, height - 1))
    x1 = int(np.clip(math.ceil(box[2]), x0 + 1, width))
    y1 = int(np.clip(math.ceil(box[3]), y0 + 1, height))
    return x0, y0, x1, y1
