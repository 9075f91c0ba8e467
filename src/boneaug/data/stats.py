"""What a user checks first about a manifest: counts, prevalence, image and box sizes,
lesions per positive image.

`manifest_stats` gathers the numbers as a JSON-able dict (later reports embed it);
`describe_manifest` formats them as the plain-text tables that `boneaug stats` prints.
Image sizes come from file headers (`image_size`), never from decoded pixels, so that a
manifest of thousands of radiographs is described in seconds.

Counts cover real images by bone x split x label; synthetic rows are counted on their
own. Sizes, boxes and prevalence describe the real images only: they are what the
patches and the classifier are learned from and measured on.

A manifest box is a lesion: the importers merge the shapes that describe one finding (a
rectangle and its polygon) into one box, so "lesions per positive" counts boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from boneaug.data.films import ASSIGNED_COLUMN, SOURCE_COLUMN, is_region, split_bones
from boneaug.data.imageio import image_size
from boneaug.data.manifest import Manifest
from boneaug.errors import BoneaugError

SPLIT_COLUMNS = ("train", "val", "test", "unsplit")
# Bins of the lesions-per-positive distribution; the last holds this many or more.
LESION_BINS = ("1", "2", "3", "4+")


def manifest_stats(manifest: Manifest) -> dict[str, Any]:
    """The numbers behind `describe_manifest`, as plain dicts, lists, ints and floats.

    Keys:
        ``source``, ``images``, ``real``, ``synthetic``, ``patients`` (real ones),
        ``splits``: the split columns present (of train, val, test, unsplit), in order;
        ``counts`` / ``synthetic_counts``: ``{bone: {split: {"neg": n, "pos": n}}}``;
        ``bones``: per bone (real images only) ``images``, ``positives``,
        ``prevalence`` (positives / images, in [0, 1]), ``positives_without_boxes``,
        ``unreadable_images``, ``image_height`` / ``image_width`` (``min``, ``median``,
        ``max`` in pixels), ``boxes``, ``boxes_per_positive`` (``mean`` and ``max`` over
        the positives that have boxes), ``lesions`` (= ``boxes``: one box per lesion),
        ``lesions_per_positive`` (``mean``, ``max`` and ``distribution``: how many of
        those positives have ``"1"``, ``"2"``, ``"3"``, ``"4+"`` lesions),
        ``box_width_px`` / ``box_height_px`` and ``box_width_rel`` / ``box_height_rel``
        (box side / image side, in (0, 1]), each with ``p10``, ``median``, ``p90``; a
        range (and ``*_per_positive``) is None when there is nothing to measure;
        ``total``: the same per-bone fields over all bones;
        ``films_of_bone``: after `boneaug bones`, per bone the real films of that bone by
        where the bone came from (``label``, ``user``, ``model``) and how many are normal;
        None before.
    """
    table = manifest.table
    synthetic = table["origin"] == "synthetic"
    splits_of = [s or "unsplit" for s in table["split"]]
    present = [s for s in SPLIT_COLUMNS if s in set(splits_of)] or ["unsplit"]

    counts: dict[str, dict[str, dict[str, int]]] = {}
    synthetic_counts: dict[str, dict[str, dict[str, int]]] = {}
    per_bone: dict[str, _BoneAccumulator] = {}
    total = _BoneAccumulator()
    for pos, row in enumerate(table.itertuples(index=False)):
        bone = str(row.bone)
        label = "pos" if row.label == 1 else "neg"
        target = synthetic_counts if synthetic.iat[pos] else counts
        cell = target.setdefault(bone, {s: {"neg": 0, "pos": 0} for s in present})
        cell[splits_of[pos]][label] += 1
        if synthetic.iat[pos]:
            continue
        try:
            height, width = image_size(manifest.resolve(str(row.path)))
            size: tuple[int, int] | None = (height, width)
        except BoneaugError:
            size = None
        for acc in (per_bone.setdefault(bone, _BoneAccumulator()), total):
            acc.add(int(row.label), list(row.boxes), size)

    real = table[~synthetic]
    return {
        "source": str(manifest.source) if manifest.source else None,
        "images": len(table),
        "real": len(real),
        "synthetic": int(synthetic.sum()),
        "patients": int(real["patient_id"].nunique()),
        "splits": present,
        "counts": {b: counts[b] for b in sorted(counts)},
        "synthetic_counts": {b: synthetic_counts[b] for b in sorted(synthetic_counts)},
        "bones": {b: per_bone[b].summary() for b in sorted(per_bone)},
        "total": total.summary(),
        "films_of_bone": _films_of_bone(real),
    }


def _films_of_bone(real: Any) -> dict[str, dict[str, int]] | None:
    """Per bone, the real films `boneaug.data.films` counts as of that bone, by where the
    bone came from (``label``: the bone column; ``user`` / ``model``: `boneaug bones` on a
    film labelled by region), and how many of them are normal; None before `boneaug bones`
    has run (then a film's bone is its bone column, counted above)."""
    if ASSIGNED_COLUMN not in real.columns:
        return None
    out: dict[str, dict[str, int]] = {}
    sources = real[SOURCE_COLUMN] if SOURCE_COLUMN in real.columns else [""] * len(real)
    for bone, assigned, source, label in zip(real["bone"], real[ASSIGNED_COLUMN], sources,
                                             real["label"], strict=True):
        if is_region(bone):
            bones, how = split_bones(assigned), ("user" if source == "user" else "model")
        else:
            bones, how = [str(bone)], "label"
        for b in bones:
            cell = out.setdefault(b, {"label": 0, "user": 0, "model": 0, "normal": 0})
            cell[how] += 1
            cell["normal"] += int(label == 0)
    return {b: out[b] for b in sorted(out)}


class _BoneAccumulator:
    """Per-bone lists of sizes and boxes, summarised once all rows are seen."""

    def __init__(self) -> None:
        self.images = 0
        self.positives = 0
        self.without_boxes = 0
        self.unreadable = 0
        self.heights: list[int] = []
        self.widths: list[int] = []
        self.boxes_per_positive: list[int] = []
        self.box_w: list[float] = []
        self.box_h: list[float] = []
        self.box_w_rel: list[float] = []
        self.box_h_rel: list[float] = []

    def add(self, label: int, boxes: list[list[float]], size: tuple[int, int] | None) -> None:
        self.images += 1
        if size is None:
            self.unreadable += 1
        else:
            self.heights.append(size[0])
            self.widths.append(size[1])
        if label != 1:
            return
        self.positives += 1
        if not boxes:
            self.without_boxes += 1
            return
        self.boxes_per_positive.append(len(boxes))
        for x0, y0, x1, y1 in boxes:
            self.box_w.append(x1 - x0)
            self.box_h.append(y1 - y0)
            if size is not None:  # relative sizes need the image's own side
                self.box_w_rel.append((x1 - x0) / size[1])
                self.box_h_rel.append((y1 - y0) / size[0])

    def summary(self) -> dict[str, Any]:
        per_positive = self.boxes_per_positive
        distribution = dict.fromkeys(LESION_BINS, 0)
        for n in per_positive:
            distribution[LESION_BINS[min(n, len(LESION_BINS)) - 1]] += 1
        return {
            "images": self.images,
            "positives": self.positives,
            "prevalence": self.positives / self.images if self.images else None,
            "positives_without_boxes": self.without_boxes,
            "unreadable_images": self.unreadable,
            "image_height": _min_median_max(self.heights),
            "image_width": _min_median_max(self.widths),
            "boxes": int(sum(per_positive)),
            "boxes_per_positive": ({"mean": float(np.mean(per_positive)),
                                    "max": int(max(per_positive))} if per_positive else None),
            "lesions": int(sum(per_positive)),
            "lesions_per_positive": ({"mean": float(np.mean(per_positive)),
                                      "max": int(max(per_positive)),
                                      "distribution": distribution} if per_positive else None),
            "box_width_px": _percentiles(self.box_w),
            "box_height_px": _percentiles(self.box_h),
            "box_width_rel": _percentiles(self.box_w_rel),
            "box_height_rel": _percentiles(self.box_h_rel),
        }


def _number(value: float) -> float | int:
    """An int when the value is whole (sizes in pixels), else a float; JSON-able."""
    value = float(value)
    return int(value) if value.is_integer() else value


def _min_median_max(values: Sequence[float]) -> dict[str, float | int] | None:
    if not values:
        return None
    return {"min": _number(min(values)), "median": _number(np.median(values)),
            "max": _number(max(values))}


def _percentiles(values: Sequence[float]) -> dict[str, float | int] | None:
    """10th percentile, median and 90th percentile (linear interpolation, numpy default)."""
    if not values:
        return None
    p10, p50, p90 = np.percentile(np.asarray(values, dtype=np.float64), [10, 50, 90])
    return {"p10": _number(p10), "median": _number(p50), "p90": _number(p90)}


# --------------------------------------------------------------------------- text


def describe_manifest(manifest: Manifest) -> str:
    """Plain-text tables of `manifest_stats`, as `boneaug stats MANIFEST` prints them."""
    return format_stats(manifest_stats(manifest))


def format_stats(stats: dict[str, Any]) -> str:
    """Format a `manifest_stats` dict (also one read back from JSON) as text tables."""
    splits = list(stats["splits"])
    bones = list(stats["bones"])
    head = (f"{stats['source'] or 'manifest'}: {stats['images']} images "
            f"({stats['real']} real, {stats['synthetic']} synthetic), "
            f"{stats['patients']} patients, {len(bones)} bone(s)")
    parts = [head]

    parts.append("Real images by bone x split x label (neg = no lesion, pos = lesion)\n"
                 + _count_table(stats["counts"], splits, stats["bones"], stats["total"]))
    films = stats.get("films_of_bone")
    if films:
        rows = [[b, str(c["label"]), str(c["user"]), str(c["model"]), str(c["normal"])]
                for b, c in films.items()]
        parts.append("Films of each bone (real): by their bone column, or given a bone by "
                     "`boneaug bones` (user / model) when labelled by region\n"
                     + _table(["bone", "label", "user", "model", "normal films"], rows))
    if stats["synthetic_counts"]:
        parts.append("Synthetic images (counted apart; they may only be in train)\n"
                     + _count_table(stats["synthetic_counts"], splits, None, None))

    rows = []
    for name, bone in [*stats["bones"].items(), ("total", stats["total"])]:
        rows.append([name, str(bone["images"]), _range(bone["image_height"]),
                     _range(bone["image_width"]), str(bone["unreadable_images"])])
    parts.append("Image size in pixels, min / median / max (real images, from headers)\n"
                 + _table(["bone", "images", "height", "width", "unreadable"], rows))

    rows = []
    for name, bone in [*stats["bones"].items(), ("total", stats["total"])]:
        # a dict saved before lesions were counted apart has boxes only: the same numbers
        per = bone.get("lesions_per_positive", bone["boxes_per_positive"])
        spread = (per or {}).get("distribution")
        rows.append([name, str(bone["positives"]), str(bone["positives_without_boxes"]),
                     str(bone.get("lesions", bone["boxes"])),
                     f"{per['mean']:.2f} / {per['max']}" if per else "-",
                     *(str(spread[k]) if spread else "-" for k in LESION_BINS)])
    note = ""
    if stats["total"]["positives_without_boxes"]:
        note = ("\nPositives without boxes train a classifier but give no lesion patch for "
                "the GAN.")
    parts.append("Lesions per positive image (real positives; one box per lesion)\n"
                 + _table(["bone", "positives", "without boxes", "lesions",
                           "lesions/positive mean / max", *LESION_BINS], rows,
                          top=[""] * 5 + ["positives with n lesions"] * len(LESION_BINS))
                 + note)

    rows = []
    for name, bone in [*stats["bones"].items(), ("total", stats["total"])]:
        rows.append([name, _range(bone["box_width_px"]), _range(bone["box_height_px"]),
                     _range(bone["box_width_rel"], relative=True),
                     _range(bone["box_height_rel"], relative=True)])
    parts.append("Lesion box size, p10 / median / p90: pixels, and box side / image side\n"
                 + _table(["bone", "width px", "height px", "width / image width",
                           "height / image height"], rows))
    return "\n\n".join(parts)


def _count_table(counts: dict[str, Any], splits: list[str], bones: dict[str, Any] | None,
                 total: dict[str, Any] | None) -> str:
    """Rows bone (+ total), columns split x (neg, pos), then total neg / pos (+ prevalence)."""
    header_top = [""] + [s for s in splits for _ in (0, 1)] + ["total", "total"]
    header = ["bone"] + ["neg", "pos"] * (len(splits) + 1)
    if bones is not None:
        header_top.append("")
        header.append("prevalence")
    rows = []
    sums = {s: {"neg": 0, "pos": 0} for s in [*splits, "total"]}
    for name, by_split in counts.items():
        row = [name]
        for s in splits:
            row += [str(by_split[s]["neg"]), str(by_split[s]["pos"])]
            for label in ("neg", "pos"):
                sums[s][label] += by_split[s][label]
                sums["total"][label] += by_split[s][label]
        neg = sum(by_split[s]["neg"] for s in splits)
        pos = sum(by_split[s]["pos"] for s in splits)
        row += [str(neg), str(pos)]
        if bones is not None:
            row.append(_percent(bones[name]["prevalence"]))
        rows.append(row)
    last = ["total"]
    for s in [*splits, "total"]:
        last += [str(sums[s]["neg"]), str(sums[s]["pos"])]
    if total is not None:
        last.append(_percent(total["prevalence"]))
    rows.append(last)
    return _table(header, rows, top=header_top)


def _table(header: list[str], rows: list[list[str]], top: list[str] | None = None) -> str:
    """Columns padded to their widest cell: the first left-aligned, the rest right-aligned.

    `top` is an optional line above the header whose equal neighbours are merged and
    centred over their columns (e.g. a split name over its neg and pos columns).
    """
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    if top is not None:  # a merged label needs its columns wide enough to hold it
        for start, end in _spans(top):
            need = len(top[start]) - (sum(widths[start:end]) + 2 * (end - start - 1))
            for k in range(max(need, 0)):
                widths[start + k % (end - start)] += 1

    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(w) if c == 0 else cell.rjust(w)
                         for c, (cell, w) in enumerate(zip(cells, widths, strict=True)))

    lines = []
    if top is not None:
        pieces = []
        for start, end in _spans(top):
            span_width = sum(widths[start:end]) + 2 * (end - start - 1)
            pieces.append(top[start].center(span_width) if top[start] else " " * span_width)
        lines.append("  ".join(pieces).rstrip())
    lines.append(line(header))
    lines += [line(r) for r in rows]
    return "\n".join(lines)


def _spans(top: list[str]) -> list[tuple[int, int]]:
    """Runs of equal neighbours in a header line, as (start, end) column indices."""
    spans, start = [], 0
    for c in range(1, len(top) + 1):
        if c == len(top) or top[c] != top[start] or not top[c]:
            spans.append((start, c))
            start = c
    return spans


def _range(values: dict[str, float | int] | None, relative: bool = False) -> str:
    if values is None:
        return "-"
    return " / ".join(f"{v:.3f}" if relative else _short(v) for v in values.values())


def _short(value: float | int) -> str:
    return str(value) if isinstance(value, int) else f"{value:.1f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
