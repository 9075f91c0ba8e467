"""How the report writes a value: table cells, intervals, p values, HTML tables and
embedded figures. Every piece of text that comes from a file goes through `esc` (or
`html.escape`) before it enters the page."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from boneaug.classify.strategies import REFERENCE, rank

NOT_IN_RUN = "not in this run"


def esc(value: Any) -> str:
    return html.escape(cell_text(value), quote=True)


def cell_text(value: Any) -> str:
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


def finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def num(value: Any, digits: int = 3) -> str:
    number = finite(value)
    return "–" if number is None else f"{number:.{digits}f}"


def command_line(info: dict[str, Any]) -> str:
    """The command as typed, from run.json's argv (``boneaug experiment --config …``);
    only the stage's name where the run came from Python, not the command line."""
    argv = [str(a) for a in info.get("argv") or []]
    if argv and Path(argv[0]).name in ("boneaug", "__main__.py") and len(argv) > 1:
        return "boneaug " + " ".join(argv[1:])
    return f"boneaug {info['command']}" if info.get("command") else ""


def probe_cell(r: pd.Series) -> str:
    """The probe AUC of a headline row with its 95 % interval when it has one."""
    if finite(r["probe_auc"]) is None:
        return "–"
    if finite(r.get("probe_low")) is None:
        return num(r["probe_auc"], 2)
    return f"{r['probe_auc']:.2f} [{r['probe_low']:.2f}, {r['probe_high']:.2f}]"


def pm(mean: Any, sd: Any, digits: int = 3) -> str:
    if finite(mean) is None:
        return "–"
    if finite(sd) is None:
        return num(mean, digits)
    return f"{num(mean, digits)} ± {num(sd, digits)}"


def ci(estimate: Any, lo: Any, hi: Any) -> str:
    if finite(estimate) is None:
        return "–"
    if finite(lo) is None or finite(hi) is None:
        return num(estimate)
    return f"{num(estimate)} [{num(lo)}, {num(hi)}]"


def pvalue(value: Any) -> str:
    number = finite(value)
    if number is None:
        return "–"
    return "&lt;0.001" if number < 0.001 else f"{number:.3f}"


def signed(value: Any) -> str:
    number = finite(value)
    return "–" if number is None else f"{number:+.3f}"


def signed_ci(estimate: Any, lo: Any, hi: Any) -> str:
    """A difference with its interval, all signed: ``+0.120 [+0.010, +0.230]``."""
    if finite(lo) is None or finite(hi) is None:
        return signed(estimate)
    return f"{signed(estimate)} [{signed(lo)}, {signed(hi)}]"


def gap_cell(value: Any, note: Any) -> str:
    """A gap closed as a percentage, or "–" with the reason it is not defined (nothing
    for the baseline's own row)."""
    if finite(value) is not None:
        return percent(value)
    reason = cell_text(note)
    if reason in ("", REFERENCE.name):  # nothing for the reference's own row
        return "–"
    return f'– <span class="note">({esc(reason)})</span>'


def wall(info: dict[str, Any]) -> str:
    """The last invocation's wall time, in minutes when long; says so when the run is not
    complete (an interrupted run's run.json is from its start)."""
    seconds = float(info["wall_seconds"])
    text = f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"
    if info.get("completed") is False:
        text += " (the run did not complete)"
    return esc(text + " (this invocation; a resumed run counts only its own time)")


def headline_cell(r: pd.Series, key: str) -> str:
    """One headline cell: condition, mean AUC, ΔAUC of means and the seeds x images
    bootstrap p against the baseline, then DeLong's p of the seed ensembles."""
    if not cell_text(r[key]):
        return "-"
    return (f"{esc(r[key])}: {num(r[f'{key}_auc'])} ({signed(r[f'{key}_delta'])}, "
            f"p {pvalue(r[f'{key}_p'])}; DeLong p {pvalue(r.get(f'{key}_delong_p'))})")


def percent(value: Any) -> str:
    number = finite(value)
    return "–" if number is None else f"{100 * number:.0f} %"


def ratio_cell(value: Any) -> str:
    number = finite(value)
    return "" if number is None else f"{number:g}"


def html_table(header: Iterable[str], rows: Iterable[Iterable[str]],
               row_classes: Iterable[str] | None = None) -> str:
    """An HTML table; header and cells must already be escaped."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = []
    classes = list(row_classes) if row_classes is not None else None
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def missing(what: str) -> str:
    return f'<p class="missing">{html.escape(what)}: {NOT_IN_RUN}.</p>'


def figure(fig: Any, alt: str) -> str:
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


def strategy_rank(strategy: Any) -> int:
    """A table cell's strategy in the order of `boneaug.classify.strategies.TABLE`."""
    return rank(cell_text(strategy))


def ordered(table: pd.DataFrame) -> pd.DataFrame:
    """Rows by bone, then strategy order, ratio, generator bone and condition name."""
    if table.empty:
        return table
    key = pd.DataFrame({
        "bone": table["bone"].map(cell_text),
        "rank": table["strategy"].map(strategy_rank),
        "ratio": pd.to_numeric(table["ratio"], errors="coerce").fillna(-1.0),
        "gen": table["generator_bone"].map(cell_text),
        "condition": table["condition"].map(cell_text),
    }, index=table.index)
    order = key.sort_values(["bone", "rank", "ratio", "gen", "condition"]).index
    return table.loc[order]


def same_ratio(a: Any, b: float | None) -> bool:
    x = finite(a)
    return x is not None and b is not None and math.isclose(x, b, rel_tol=1e-9, abs_tol=1e-9)


def compact(value: Any) -> str:
    """A config value on one line (mappings and lists as flow YAML)."""
    if isinstance(value, dict | list):
        return yaml.safe_dump(value, default_flow_style=True, sort_keys=False).strip()
    return cell_text(value)


def spread(values: pd.Series, digits: int, sd: bool) -> str:
    if values.empty:
        return "–"
    if sd:
        return pm(values.mean(), values.std(ddof=1) if len(values) > 1 else None, digits)
    lo, hi = values.min(), values.max()
    if math.isclose(lo, hi):
        return num(lo, digits)
    return f"{num(lo, digits)}–{num(hi, digits)}"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
