"""The report's figures: ROC curves (section 6), AUC against the ratio (7), the
generator-transfer and TSTR matrices (8) and the sample sheets of real and synthetic
lesions (10). Each figure is embedded in the page as a PNG data URI (`figure`)."""

from __future__ import annotations

import base64
import html
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from boneaug.classify.metrics import roc_curve
from boneaug.classify.strategies import FOCUS, REFERENCE, TABLE, strategy_of
from boneaug.data import load_manifest, read_image
from boneaug.errors import BoneaugError
from boneaug.experiment.paths import COPY_PASTE, GAN
from boneaug.experiment.report_format import (
    NOT_IN_RUN,
    cell_text,
    esc,
    figure,
    finite,
    first_line,
    html_table,
    missing,
    num,
    pm,
    same_ratio,
    strategy_rank,
)
from boneaug.experiment.report_page import Page
from boneaug.files import atomic_path
from boneaug.patches import resize_square

SAMPLES_PER_ROW = 8
DEFAULT_PATCH = 64  # sample tile side when the run has no real patches to match
_TRANSFER = next(s for s in TABLE if s.transfer)  # another bone's generator
_SYNTHETIC_ONLY = next(s for s in TABLE if not s.real_positives)  # no real positive


def section_roc(page: Page) -> str:
    import matplotlib.pyplot as plt

    ensembles = page.ensembles()
    n = len(page.bones)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 5.0 * rows), squeeze=False)
    notes = []
    for ax, bone in zip(axes.flat, page.bones, strict=False):
        ax.plot([0, 1], [0, 1], color="#bbbbbb", lw=0.8, ls=":")
        conditions = _roc_conditions(page, bone)
        styles = _line_styles(conditions, page.rows(bone))
        for condition in conditions:
            sel = ensembles[(ensembles["bone"] == bone)
                            & (ensembles["condition"] == condition)]
            labels = sel["label"].to_numpy()
            if len(np.unique(labels)) < 2:
                notes.append(f"{bone} {condition}: the test set has one class only")
                continue
            fpr, tpr, _ = roc_curve(labels, sel["score"].to_numpy())
            auc = page.rows(bone).set_index("condition")["auc"].get(condition)
            label = f"{condition} (AUC {num(auc)})"
            ax.plot(fpr, tpr, label=label, **styles[condition])
        k = pd.to_numeric(page.rows(bone)["seeds"], errors="coerce").max()
        ax.set_title(f"{bone}: ensemble of {num(k, 0)} seeds per condition")
        ax.set_xlabel("1 − specificity (false positive rate)")
        ax.set_ylabel("sensitivity (true positive rate)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_aspect("equal")
        ax.legend(loc="lower right", fontsize=7, framealpha=0.9)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    ratio = f"{page.main_ratio:g}" if page.main_ratio is not None else "–"
    text = (f'<p class="note">ROC curves of the ensemble (scores averaged over the K '
            f"seeds) on the real test images: the conditions without a ratio, all "
            f"conditions at the main ratio {html.escape(ratio)}, and the best gan "
            "condition. AUC in the legend: ensemble AUC (section 2).</p>")
    if notes:
        text += '<p class="missing">' + html.escape("; ".join(notes)) + "</p>"
    return text + figure(fig, "ROC curves per bone")


def _roc_conditions(page: Page, bone: str) -> list[str]:
    """Conditions without a ratio, those at the main ratio, and the best gan condition."""
    chosen: list[str] = []
    rows = page.rows(bone)
    for _, r in rows.iterrows():
        if finite(r["ratio"]) is None or same_ratio(r["ratio"], page.main_ratio):
            chosen.append(cell_text(r["condition"]))
    gan = rows[rows["strategy"].map(cell_text) == FOCUS.name]
    if len(gan):
        auc = pd.to_numeric(gan["auc"], errors="coerce")
        if auc.notna().any():
            best = cell_text(gan.loc[auc.idxmax(), "condition"])
            if best not in chosen:
                chosen.append(best)
    return chosen


def section_ratio(page: Page) -> str:
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[str, pd.DataFrame]]] = {}
    for bone in page.bones:
        rows = page.rows(bone)
        rows = rows[pd.to_numeric(rows["ratio"], errors="coerce").notna()]
        keyed = rows.assign(_line=[_line_name(s, g) for s, g in
                                   zip(rows["strategy"], rows["generator_bone"],
                                       strict=True)])
        for line, group in keyed.groupby("_line", sort=False):
            if group["ratio"].nunique() >= 2:
                series.setdefault(bone, []).append((str(line), group))
    if not series:
        return missing("A strategy with several synthetic ratios")
    bones = [b for b in page.bones if b in series]
    cols = min(len(bones), 3)
    rows_n = math.ceil(len(bones) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(5.4 * cols, 4.2 * rows_n),
                             squeeze=False)
    for ax, bone in zip(axes.flat, bones, strict=False):
        lines = sorted(series[bone], key=lambda item: (strategy_rank(
            item[1]["strategy"].iloc[0]), item[0]))
        for i, (line, group) in enumerate(lines):
            group = group.assign(_r=pd.to_numeric(group["ratio"])).sort_values("_r")
            ax.errorbar(group["_r"], pd.to_numeric(group["auc_mean"], errors="coerce"),
                        yerr=pd.to_numeric(group["auc_sd"], errors="coerce").fillna(0.0),
                        label=line, marker="o", ms=4, capsize=3, lw=1.4,
                        color=_color(i), ls=_dash(i))
        base = page.rows(bone, REFERENCE.name)
        if len(base):
            mean = finite(base["auc_mean"].iloc[0])
            sd = finite(base["auc_sd"].iloc[0]) or 0.0
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
            + figure(fig, "AUC against the synthetic ratio per bone"))


def section_transfer(page: Page) -> str:
    strategies = set(page.summary["strategy"].map(cell_text))
    own, transfer, synthetic = FOCUS.name, _TRANSFER.name, _SYNTHETIC_ONLY.name
    out = []
    if {own, transfer} & strategies:
        out.append(_matrix_block(
            page, "GAN augmentation", {True: own, False: transfer}, page.main_ratio,
            "diagonal: gan (generator of the same bone); off the diagonal: gan-transfer "
            "(the generator of the row's bone painted lesions onto the column's bone)"))
        if transfer not in strategies:
            out.append('<p class="note">No gan-transfer condition in this run: only the '
                       "diagonal is filled.</p>")
    else:
        out.append(missing("GAN and GAN-transfer conditions"))
    if synthetic in strategies:
        tstr_ratio = page.main_ratio
        tstr = page.rows(strategy=synthetic)
        if not any(same_ratio(r, tstr_ratio) for r in tstr["ratio"]):
            counts = pd.to_numeric(tstr["ratio"], errors="coerce").value_counts()
            tstr_ratio = float(counts.index[0]) if len(counts) else None
        out.append(_matrix_block(
            page, "Train on synthetic, test on real (TSTR)",
            {True: synthetic, False: synthetic},
            tstr_ratio, "a classifier trained on the generator's synthetic positives and "
            "real negatives only, tested on real images: how far the synthetics alone "
            "carry"))
    else:
        out.append(missing("TSTR (train-synthetic-test-real) conditions"))
    return "\n".join(out)


def _matrix(page: Page, strategies: dict[bool, str], ratio: float | None
            ) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """AUC mean and sd, rows = generator bone, cols = target bone, at `ratio`.

    `strategies[True]` fills the diagonal (generator bone == target bone) and
    `strategies[False]` the rest.
    """
    wanted = set(strategies.values())
    rows = page.summary[page.summary["strategy"].map(cell_text).isin(wanted)]
    rows = rows[[same_ratio(r, ratio) for r in rows["ratio"]]]
    gens = sorted({cell_text(g) or cell_text(b) for g, b in
                   zip(rows["generator_bone"], rows["bone"], strict=True)})
    targets = page.bones
    mean = np.full((len(gens), len(targets)), np.nan)
    sd = np.full_like(mean, np.nan)
    for _, r in rows.iterrows():
        target = cell_text(r["bone"])
        gen = cell_text(r["generator_bone"]) or target
        if strategies[gen == target] != cell_text(r["strategy"]) or target not in targets:
            continue
        i, j = gens.index(gen), targets.index(target)
        mean[i, j] = finite(r["auc_mean"]) if finite(r["auc_mean"]) is not None \
            else np.nan
        sd[i, j] = finite(r["auc_sd"]) if finite(r["auc_sd"]) is not None else np.nan
    return gens, targets, mean, sd


def _matrix_block(page: Page, title: str, strategies: dict[bool, str], ratio: float | None,
                  meaning: str) -> str:
    import matplotlib.pyplot as plt

    gens, targets, mean, sd = _matrix(page, strategies, ratio)
    ratio_text = f"{ratio:g}" if ratio is not None else "–"
    head = (f"<h3>{html.escape(title)}, ratio {html.escape(ratio_text)}</h3>"
            f'<p class="note">Test AUC, mean ± sd over the K seeds. Rows: the bone whose '
            f"generator made the synthetic lesions; columns: the bone the classifier was "
            f"trained and tested on; {html.escape(meaning)}. Empty: no such condition at "
            "this ratio.</p>")
    if not gens or np.isnan(mean).all():
        return head + missing(f"{title} at ratio {ratio_text}")
    rows = []
    for i, gen in enumerate(gens):
        rows.append([f"<b>{esc(gen)}</b>"] + [
            pm(mean[i, j], sd[i, j]) if not math.isnan(mean[i, j]) else ""
            for j in range(len(targets))])
    baseline = []
    for target in targets:
        base = page.rows(target, REFERENCE.name)
        baseline.append(pm(base["auc_mean"].iloc[0], base["auc_sd"].iloc[0])
                        if len(base) else "")
    rows.append(["<i>baseline (no synthetics)</i>"] + baseline)
    table = html_table(["generator ↓ / target →"] + [esc(t) for t in targets], rows)

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
    return head + table + figure(fig, f"{title} matrix")


def section_samples(page: Page) -> str:
    import matplotlib.pyplot as plt

    synth_root = page.paths.synth_root
    out = ['<p class="note">Per bone: <span class="tag-real">REAL</span> lesion patches '
           "from the training split, then <span class=\"tag-synth\">SYNTHETIC</span> "
           "lesion crops (the crop the generator translated, resized to the patch size). "
           "Up to 8 each.</p>"]
    if not synth_root.is_dir():
        out.append(missing("Synthetic images (synth/ folder)"))
    for bone in page.bones:
        real, real_note = _real_patches(page, bone)
        size = real.shape[-1] if real is not None else DEFAULT_PATCH
        rows: list[tuple[str, bool, np.ndarray]] = []
        notes = [] if real_note is None else [real_note]
        if real is not None:
            rows.append(("REAL lesion patches", True, real))
        for label, folders in _synth_groups(page, bone):
            crops, note = _synthetic_crops(folders, size)
            if note:
                notes.append(note)
            if len(crops):
                rows.append((label, False, crops))
        out.append(f"<h3>{esc(bone)}</h3>")
        if notes:
            out.append('<p class="missing">' + html.escape("; ".join(notes)) + "</p>")
        if not rows:
            out.append(missing(f"Real or synthetic lesion samples of {bone}"))
            continue
        if not any(not is_real for _, is_real, _ in rows):
            out.append(missing(f"Synthetic lesion crops of {bone}"))
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
        out.append(figure(fig, f"sample sheet {bone}: real and synthetic lesions"))
    return "\n".join(out)


def _real_patches(page: Page, bone: str) -> tuple[np.ndarray | None, str | None]:
    path = page.paths.lesion_patches(bone)
    if not path.is_file():
        return None, f"real lesion patches ({page.paths.relative(path)}): {NOT_IN_RUN}"
    try:
        raw = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        return None, f"{page.paths.relative(path)} could not be read ({first_line(exc)})"
    if raw.ndim != 3 or raw.shape[0] == 0 or raw.shape[1] != raw.shape[2]:
        return None, f"{page.paths.relative(path)} has shape {raw.shape}, not (N, P, P)"
    # Spread over the store: the first patches often come from one radiograph.
    picks = np.unique(np.linspace(0, raw.shape[0] - 1, min(SAMPLES_PER_ROW, raw.shape[0]))
                      .round().astype(int))
    tiles = np.asarray(raw[picks])
    return _unit(tiles), None


def _synth_groups(page: Page, bone: str) -> list[tuple[str, list[Path]]]:
    """(row label, synthetic.csv files) of the GAN, transfer and copy-paste synthetics."""
    found = page.paths.found_synth(bone)
    own = [page.paths.synthetic(f) for f in found if f.method == GAN and not f.generator]
    paste = [page.paths.synthetic(f) for f in found
             if f.method == COPY_PASTE and not f.generator]
    groups: list[tuple[str, list[Path]]] = []
    if own:
        groups.append((f"SYNTHETIC: GAN\n({bone} generator)", own))
    for gen in sorted({f.generator for f in found if f.method == GAN and f.generator}):
        files = [page.paths.synthetic(f) for f in found
                 if f.method == GAN and f.generator == gen]
        groups.append((f"SYNTHETIC: GAN transfer\n({gen} generator)", files))
    if paste:
        groups.append(("SYNTHETIC:\ncopy-paste", paste))
    return groups


def _line_name(strategy: Any, generator_bone: Any) -> str:
    strategy = cell_text(strategy)
    kind = strategy_of(strategy)
    if kind is not None and kind.transfer and cell_text(generator_bone):
        return f"{strategy} from {cell_text(generator_bone)}"
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
    strategy = dict(zip(rows["condition"].map(cell_text), rows["strategy"].map(cell_text),
                        strict=True))
    styles: dict[str, dict[str, Any]] = {}
    i = 0
    for condition in conditions:
        kind = strategy_of(strategy.get(condition, ""))
        if kind is not None and kind.reference:
            styles[condition] = {"color": "black", "lw": 2.2}
        elif kind is not None and kind.upper_bound:
            styles[condition] = {"color": "#555555", "lw": 1.8, "ls": "--"}
        else:
            styles[condition] = {"color": _color(i), "lw": 1.3, "ls": _dash(i)}
            i += 1
    return styles


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
            problems.append(first_line(exc))
            continue
        for index in manifest.table.index:
            if len(crops) >= SAMPLES_PER_ROW:
                break
            row = manifest.table.loc[index]
            try:
                image = read_image(manifest.image_path(index))
            except BoneaugError as exc:
                problems.append(first_line(exc))
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
        provenance = json.loads(cell_text(row.get("provenance")) or "{}")
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


_IMAGE = re.compile(r'<img alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def write_figures(page: str, folder: Path) -> list[Path]:
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
