"""The report's page: what every section reads (`Page`), the sections' titles and the
page's style.

The sections live by kind: the run and its config in `report_run`, the tables of results
and evidence in `report_tables`, the figures in `report_figures`; each is a function of
the `Page` that returns its section's body, and `report.render` puts them together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from boneaug.classify.strategies import FOCUS
from boneaug.experiment.paths import RunPaths
from boneaug.experiment.report_format import NOT_IN_RUN, cell_text, finite, ordered, wall
from boneaug.experiment.report_inputs import Inputs

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
    "10. Realism of the synthetic lesions",
    "11. Sample sheets",
    "12. Classifier runs",
    "13. Config and versions",
)
LEVEL_MEANING = {
    "image": "a classifier of whole films (the bone's crop): film style can help it",
    "region": "a classifier of lesion-scale regions, tested on lesion and healthy regions "
              "of the same real test films and on regions of normal test films: nothing "
              "outside the lesion can help it",
}

# the predictions and summary of one level
Level = tuple[pd.DataFrame, pd.DataFrame]


@dataclass
class Page:
    """What the sections of one report read: the run's first level (`summary`, ordered
    for tables, and its `predictions`), the other levels' (`others`), the optional inputs
    and the main ratio (`main_ratio`, with where it came from)."""

    run: Path
    predictions: pd.DataFrame
    summary: pd.DataFrame
    inputs: Inputs
    n_boot: int
    level: str = "image"
    others: dict[str, Level] = field(default_factory=dict)
    paths: RunPaths = field(init=False)
    bones: list[str] = field(init=False)
    main_ratio: float | None = field(init=False)
    ratio_source: str = field(init=False)

    def __post_init__(self) -> None:
        self.paths = RunPaths(self.run)
        self.bones = sorted({cell_text(b) for b in self.summary["bone"]})
        self.summary = ordered(self.summary.copy())
        # the first level's results fill the page; the others get their own section
        self.others = {level: (pred, ordered(summ.copy()))
                       for level, (pred, summ) in self.others.items()}
        self.main_ratio, self.ratio_source = self._main_ratio()

    def _main_ratio(self) -> tuple[float | None, str]:
        """`report.ratio` of the config, else `protocol.main_ratio`, else the most common
        ratio of the focus strategy's conditions (then of all conditions)."""
        config = self.inputs.config or {}
        for section, key in (("report", "ratio"), ("protocol", "main_ratio")):
            block = config.get(section)
            if isinstance(block, dict) and finite(block.get(key)) is not None:
                return float(block[key]), f"config {section}.{key}"
        ratios = pd.to_numeric(self.summary["ratio"], errors="coerce")
        for strategies, source in (
                ((FOCUS.name,), f"the most common ratio of the {FOCUS.name} conditions"),
                (None, "the most common ratio of all conditions")):
            mask = ratios.notna()
            if strategies is not None:
                mask &= self.summary["strategy"].map(cell_text).isin(strategies)
            counts = ratios[mask].value_counts()
            if len(counts):
                # Ties go to the larger ratio: the strongest augmentation that was run as
                # often.
                top = counts[counts == counts.max()].index.max()
                return float(top), source
        return None, "no condition has a ratio"

    def rows(self, bone: str | None = None, strategy: str | None = None) -> pd.DataFrame:
        """The summary rows of `bone` and `strategy` (either None: all)."""
        table = self.summary
        if bone is not None:
            table = table[table["bone"].map(cell_text) == bone]
        if strategy is not None:
            table = table[table["strategy"].map(cell_text) == strategy]
        return table

    def summaries(self) -> dict[str, pd.DataFrame]:
        return {self.level: self.summary, **{v: s for v, (_, s) in self.others.items()}}

    def wall_text(self) -> str:
        info = self.inputs.run_info or {}
        return wall(info) if finite(info.get("wall_seconds")) is not None else NOT_IN_RUN

    def ensembles(self) -> pd.DataFrame:
        """Per (bone, condition, test image): the label and the score averaged over seeds."""
        return (self.predictions.groupby(["bone", "condition", "image_id"], sort=False)
                .agg(label=("label", "first"), score=("score", "mean")).reset_index())


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

