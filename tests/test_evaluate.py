"""summarise / read_predictions / format_table on small synthetic prediction tables."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from boneaug.classify.evaluate import (
    SUMMARY_COLUMNS,
    format_table,
    read_predictions,
    summarise,
)
from boneaug.classify.metrics import delong_test, roc_auc, seed_image_bootstrap
from boneaug.errors import BoneaugError

# name -> (strategy, ratio, generator bone or None for "the bone itself", signal strength)
CONDITIONS = {
    "baseline": ("baseline", math.nan, "", 0.4),
    "gan-r3": ("gan", 3.0, None, 1.0),
    "oracle-r3": ("oracle", 3.0, "", 2.5),
}


def make_predictions(
    conditions: dict[str, tuple[str, float, str | None, float]] = CONDITIONS,
    bones: tuple[str, ...] = ("tibia", "femur"),
    seeds: tuple[int, ...] = (0, 1, 2),
    n: int = 60,
) -> pd.DataFrame:
    """Scores = strength * label + noise; a third of the test images have a lesion."""
    rng = np.random.default_rng(0)
    rows = []
    for bone in bones:
        labels = (np.arange(n) % 3 == 0).astype(int)
        for name, (strategy, ratio, generator, strength) in conditions.items():
            for seed in seeds:
                scores = strength * labels + rng.normal(size=n)
                for i in range(n):
                    rows.append({
                        "bone": bone, "condition": name, "strategy": strategy, "ratio": ratio,
                        "generator_bone": bone if generator is None else generator,
                        "seed": seed, "image_id": f"{bone}-{i:03d}", "label": labels[i],
                        "score": scores[i],
                    })
    # Shuffled: nothing may depend on the order of the rows.
    return pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)


def per_seed_auc(table: pd.DataFrame, bone: str, condition: str) -> list[float]:
    part = table[(table["bone"] == bone) & (table["condition"] == condition)]
    return [roc_auc(g["label"].to_numpy(), g["score"].to_numpy())
            for _, g in part.groupby("seed")]


def seed_matrix(table: pd.DataFrame, bone: str, condition: str
                ) -> tuple[np.ndarray, np.ndarray]:
    """Labels (n,) and scores (K, n) of one condition, images sorted by id."""
    part = table[(table["bone"] == bone) & (table["condition"] == condition)]
    wide = part.pivot(index="image_id", columns="seed", values="score").sort_index()
    labels = part.groupby("image_id")["label"].first().sort_index()
    return labels.to_numpy(), wide.to_numpy().T


def ensemble(table: pd.DataFrame, bone: str, condition: str) -> tuple[np.ndarray, np.ndarray]:
    part = table[(table["bone"] == bone) & (table["condition"] == condition)]
    mean = part.groupby("image_id").agg(label=("label", "first"), score=("score", "mean"))
    return mean["label"].to_numpy(), mean["score"].to_numpy()


def row_of(summary: pd.DataFrame, bone: str, condition: str) -> pd.Series:
    match = summary[(summary["bone"] == bone) & (summary["condition"] == condition)]
    assert len(match) == 1
    return match.iloc[0]


def test_summarise_two_bones_three_conditions() -> None:
    table = make_predictions()
    summary = summarise(table, n_boot=60, seed=3)
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert list(zip(summary["bone"], summary["condition"], strict=True)) == [
        ("femur", "baseline"), ("femur", "gan-r3"), ("femur", "oracle-r3"),
        ("tibia", "baseline"), ("tibia", "gan-r3"), ("tibia", "oracle-r3"),
    ]
    assert (summary["seeds"] == 3).all()
    assert (summary["n_test"] == 60).all() and (summary["n_test_pos"] == 20).all()

    for bone in ("femur", "tibia"):
        base, gan, oracle = (row_of(summary, bone, c) for c in ("baseline", "gan-r3",
                                                                "oracle-r3"))
        assert gan["generator_bone"] == bone and base["generator_bone"] == ""
        assert math.isnan(base["ratio"]) and gan["ratio"] == 3.0
        means = {c: float(np.mean(per_seed_auc(table, bone, c))) for c in CONDITIONS}
        assert gan["auc_mean"] == pytest.approx(means["gan-r3"])
        assert gan["auc_sd"] == pytest.approx(np.std(per_seed_auc(table, bone, "gan-r3"),
                                                     ddof=1))
        ens = {c: roc_auc(*ensemble(table, bone, c)) for c in CONDITIONS}
        assert gan["auc"] == pytest.approx(ens["gan-r3"])
        assert gan["delta_auc"] == pytest.approx(ens["gan-r3"] - ens["baseline"])
        assert base["delta_auc"] == 0.0
        expected_gap = (means["gan-r3"] - means["baseline"]) / (means["oracle-r3"]
                                                               - means["baseline"])
        # The oracle beats the baseline by the seeds x images test: the gap is defined.
        assert oracle["beats_baseline"] and oracle["boot_p"] < 0.05
        assert gan["gap_closed"] == pytest.approx(expected_gap) and gan["gap_note"] == ""
        assert oracle["gap_closed"] == pytest.approx(1.0) and oracle["gap_note"] == ""
        assert math.isnan(base["gap_closed"]) and base["gap_note"] == "baseline"
        assert math.isnan(base["delong_p"])
        y, gan_scores = ensemble(table, bone, "gan-r3")
        _, base_scores = ensemble(table, bone, "baseline")
        assert gan["delong_p"] == pytest.approx(delong_test(y, gan_scores, base_scores).p)
        # The main test: mean AUC over seeds against the baseline's, seeds and images
        # resampled with summarise's n_boot and seed.
        _, gan_seeds = seed_matrix(table, bone, "gan-r3")
        _, base_seeds = seed_matrix(table, bone, "baseline")
        test = seed_image_bootstrap(y, gan_seeds, base_seeds, n_boot=60, seed=3)
        assert gan["delta_seeds"] == pytest.approx(means["gan-r3"] - means["baseline"])
        assert (gan["delta_seeds"], gan["delta_seeds_lo"], gan["delta_seeds_hi"],
                gan["boot_p"]) == pytest.approx((test.difference, test.lo, test.hi, test.p))
        assert gan["beats_baseline"] == (test.difference > 0 and test.p < 0.05)
        assert base["delta_seeds"] == 0.0 and not base["beats_baseline"]
        for column in ("delta_seeds_lo", "delta_seeds_hi", "boot_p"):
            assert math.isnan(base[column]), column
        for row in (base, gan, oracle):
            for name in ("auc", "pr_auc", "sens90"):
                assert row[f"{name}_lo"] <= row[name] <= row[f"{name}_hi"]
    # The signal strengths order the conditions; the oracle is clearly above the baseline.
    oracle = row_of(summary, "femur", "oracle-r3")
    assert oracle["auc"] > row_of(summary, "femur", "baseline")["auc"]
    assert oracle["delong_p"] < 0.05


def test_summarise_is_deterministic() -> None:
    table = make_predictions(bones=("femur",), seeds=(0, 1))
    first = summarise(table, n_boot=40, seed=5)
    again = summarise(table.iloc[::-1], n_boot=40, seed=5)
    pd.testing.assert_frame_equal(first, again)


def test_summarise_orders_strategies_and_picks_the_oracle() -> None:
    conditions = {
        "tstr-r3": ("tstr", 3.0, None, 0.8),
        "oracle-r3": ("oracle", 3.0, "", 2.5),
        "gan-transfer-r3-from-tibia": ("gan-transfer", 3.0, "tibia", 0.9),
        "oracle-r1": ("oracle", 1.0, "", 1.5),
        "oversample-r3": ("oversample", 3.0, "", 0.6),
        "gan-r3": ("gan", 3.0, None, 1.0),
        "oversample-r1": ("oversample", 1.0, "", 0.5),
        "weighted": ("weighted", math.nan, "", 0.5),
        "baseline": ("baseline", math.nan, "", 0.4),
    }
    table = make_predictions(conditions, bones=("femur",), seeds=(0, 1))
    # n_boot >= 40: a bootstrap p is at least 2 / (n_boot + 1), and the oracles must reach
    # p < 0.05 for a gap to be defined.
    summary = summarise(table, n_boot=200)
    assert summary.loc[summary["strategy"] == "oracle", "beats_baseline"].all()
    assert list(summary["condition"]) == [
        "baseline", "weighted", "oversample-r1", "oversample-r3", "gan-r3",
        "gan-transfer-r3-from-tibia", "oracle-r1", "oracle-r3", "tstr-r3",
    ]
    mean = dict(zip(summary["condition"], summary["auc_mean"], strict=True))
    gap = dict(zip(summary["condition"], summary["gap_closed"], strict=True))

    def closed(condition: str, oracle: str) -> float:
        return (mean[condition] - mean["baseline"]) / (mean[oracle] - mean["baseline"])

    # Same ratio -> that oracle; no ratio -> the oracle with the largest ratio.
    assert gap["oversample-r1"] == pytest.approx(closed("oversample-r1", "oracle-r1"))
    assert gap["oversample-r3"] == pytest.approx(closed("oversample-r3", "oracle-r3"))
    assert gap["weighted"] == pytest.approx(closed("weighted", "oracle-r3"))
    assert row_of(summary, "femur", "gan-transfer-r3-from-tibia")["generator_bone"] == "tibia"


def test_summarise_without_baseline_or_oracle() -> None:
    no_baseline = {k: v for k, v in CONDITIONS.items() if k != "baseline"}
    summary = summarise(make_predictions(no_baseline, bones=("femur",)), n_boot=20)
    for column in ("delta_auc", "delong_p", "gap_closed", "delta_seeds", "delta_seeds_lo",
                   "delta_seeds_hi", "boot_p"):
        assert summary[column].isna().all(), column
    assert not summary["beats_baseline"].any()
    assert (summary["gap_note"] == "no baseline").all()
    no_oracle = {k: v for k, v in CONDITIONS.items() if k != "oracle-r3"}
    summary = summarise(make_predictions(no_oracle, bones=("femur",)), n_boot=20)
    assert summary["gap_closed"].isna().all()
    assert summary["delta_auc"].notna().all() and summary["delta_seeds"].notna().all()
    assert list(summary["gap_note"]) == ["baseline", "no oracle"]
    # An oracle that does not beat the baseline leaves no gap to close.
    weak_oracle = dict(CONDITIONS, **{"oracle-r3": ("oracle", 3.0, "", 0.0)})
    weak_oracle["baseline"] = ("baseline", math.nan, "", 3.0)
    summary = summarise(make_predictions(weak_oracle, bones=("femur",)), n_boot=20)
    assert summary["gap_closed"].isna().all()
    assert summary["gap_note"].iloc[1:].str.startswith(
        "oracle-r3 does not beat baseline (ΔAUC -").all()


def test_gap_closed_needs_an_oracle_that_beats_the_baseline_by_the_seed_test() -> None:
    # The oracle's seeds scatter: its mean AUC is above the baseline's, and DeLong on the
    # seed ensembles calls it significant, but the seeds x images bootstrap does not.
    rng = np.random.default_rng(1)
    n = 240
    labels = (np.arange(n) % 4 == 0).astype(int)
    strengths = {"baseline": (0.8, 0.8, 0.8), "gan-r3": (1.0, 1.0, 1.0),
                 "oracle-r3": (3.0, 1.0, 0.3)}
    strategy = {"baseline": "baseline", "gan-r3": "gan", "oracle-r3": "oracle"}
    rows = [{"bone": "femur", "condition": name, "strategy": strategy[name],
             "ratio": math.nan if name == "baseline" else 3.0, "generator_bone": "",
             "seed": k, "image_id": f"f{i:03d}", "label": labels[i], "score": score}
            for name, seeds in strengths.items() for k, strength in enumerate(seeds)
            for i, score in enumerate(strength * labels + rng.normal(size=n))]
    summary = summarise(pd.DataFrame(rows), n_boot=200)
    oracle = row_of(summary, "femur", "oracle-r3")
    assert oracle["delta_seeds"] > 0 and oracle["delong_p"] < 0.001
    assert oracle["boot_p"] > 0.05 and not oracle["beats_baseline"]
    assert oracle["delta_seeds_lo"] < 0 < oracle["delta_seeds_hi"]
    gan = row_of(summary, "femur", "gan-r3")
    assert math.isnan(gan["gap_closed"]) and math.isnan(oracle["gap_closed"])
    assert gan["gap_note"] == (f"oracle-r3 does not beat baseline (ΔAUC "
                               f"{oracle['delta_seeds']:+.3f}, p {oracle['boot_p']:.3f})")
    text = format_table(summary)
    gan_line = next(line for line in text.splitlines() if line.startswith("gan-r3"))
    assert gan_line.endswith(" -a")
    assert f"gap closed -a: {gan['gap_note']}" in text


def test_summarise_names_a_missing_column() -> None:
    with pytest.raises(BoneaugError, match="missing column 'score'"):
        summarise(make_predictions(bones=("femur",)).drop(columns="score"))


def test_summarise_rejects_seeds_with_different_images() -> None:
    table = make_predictions(bones=("femur",))
    drop = table.index[(table["condition"] == "gan-r3") & (table["seed"] == 1)
                       & (table["image_id"] == "femur-004")]
    with pytest.raises(BoneaugError, match=r"condition 'gan-r3': seed 1 .*different test "
                                           r"images.*femur-004"):
        summarise(table.drop(index=drop))


def test_summarise_rejects_disagreeing_labels_and_duplicates() -> None:
    table = make_predictions(bones=("femur",))
    flip = (table["condition"] == "gan-r3") & (table["seed"] == 2) & \
        (table["image_id"] == "femur-001")
    relabelled = table.copy()
    relabelled.loc[flip, "label"] = 1
    with pytest.raises(BoneaugError, match="femur-001.*different labels"):
        summarise(relabelled)
    doubled = pd.concat([table, table[flip]], ignore_index=True)
    with pytest.raises(BoneaugError, match="more than once"):
        summarise(doubled)


def test_summarise_rejects_conditions_on_different_test_sets() -> None:
    table = make_predictions(bones=("femur",))
    oracle = table["condition"] == "oracle-r3"
    table.loc[oracle, "image_id"] = table.loc[oracle, "image_id"].str.replace("femur", "x")
    with pytest.raises(BoneaugError, match="bone 'femur'.*different test images"):
        summarise(table)


def test_summarise_rejects_a_test_set_with_one_class() -> None:
    table = make_predictions(bones=("femur",))
    table["label"] = 0
    with pytest.raises(BoneaugError, match="both classes"):
        summarise(table)


def test_read_predictions_types_and_round_trip(tmp_path: Path) -> None:
    table = make_predictions(bones=("femur",), seeds=(0,), n=6)
    table.loc[table["image_id"] == "femur-000", "image_id"] = "007"  # must stay text
    path = tmp_path / "predictions.csv"
    table.to_csv(path, index=False)
    loaded = read_predictions(path)
    assert loaded["ratio"].dtype == np.float64 and loaded["score"].dtype == np.float64
    assert loaded["seed"].dtype == np.int64 and loaded["label"].dtype == np.int64
    assert "007" in set(loaded["image_id"])
    assert set(loaded.loc[loaded["condition"] == "baseline", "generator_bone"]) == {""}
    assert loaded.loc[loaded["condition"] == "baseline", "ratio"].isna().all()
    np.testing.assert_allclose(loaded["score"], table["score"])
    summarise(loaded, n_boot=10)  # the types are what summarise needs


def test_read_predictions_errors(tmp_path: Path) -> None:
    with pytest.raises(BoneaugError, match="no such predictions file"):
        read_predictions(tmp_path / "nothing.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(BoneaugError, match="empty.csv"):
        read_predictions(empty)
    table = make_predictions(bones=("femur",), seeds=(0,), n=6)
    table["score"] = table["score"].astype(object)
    table.loc[3, "score"] = "high"
    bad = tmp_path / "bad.csv"
    table.to_csv(bad, index=False)
    with pytest.raises(BoneaugError, match=r"bad.csv line 5: score 'high'"):
        read_predictions(bad)
    table.drop(columns=["seed", "label"]).to_csv(bad, index=False)
    with pytest.raises(BoneaugError, match="bad.csv: missing columns 'seed', 'label'"):
        read_predictions(bad)


def test_format_table_is_readable() -> None:
    summary = summarise(make_predictions(), n_boot=20)
    text = format_table(summary)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert lines[0].startswith("femur: 60 test images, 20 with lesion")
    assert any(line.startswith("tibia:") for line in lines)
    gan_line = next(line for line in lines if line.startswith("gan-r3"))
    gan = row_of(summary, "femur", "gan-r3")
    assert f"{gan['auc_mean']:.3f}±{gan['auc_sd']:.3f}" in gan_line
    assert f"{gan['delta_seeds']:+.3f}" in gan_line and f" {gan['auc']:.3f} " in gan_line
    assert f"[{gan['delta_seeds_lo']:+.3f}, {gan['delta_seeds_hi']:+.3f}]" in gan_line
    baseline_line = next(line for line in lines if line.startswith("baseline"))
    # No test of the baseline against itself, no gap for it to close.
    base = row_of(summary, "femur", "baseline")
    assert baseline_line.split()[-6:] == ["+0.000", "-", "-", f"{base['auc']:.3f}", "-", "-"]
    assert "[95% CI]" in text and "DeLong" in text
    # A long condition name still fits.
    long = summary.copy()
    long.loc[1, "condition"] = "gan-transfer-r3-from-humerus"
    assert max(len(line) for line in format_table(long).splitlines()) <= 100


def test_goal_check_reads_gap_and_pairwise_delong():
    from boneaug.classify.evaluate import compare, format_goal, goal_check

    conditions = {
        "baseline": ("baseline", math.nan, "", 0.3),
        "oversample-r3": ("oversample", 3.0, "", 0.3),
        "copypaste-r3": ("copypaste", 3.0, "", 2.4),
        "gan-r3": ("gan", 3.0, None, 2.2),
        "gan-transfer-r3-from-femur": ("gan-transfer", 3.0, "femur", 0.3),
        "oracle-r3": ("oracle", 3.0, "", 2.5),
    }
    table = make_predictions(conditions, bones=("tibia",), n=240)
    summary = summarise(table, n_boot=200, seed=2)
    goal = goal_check(table, summary, 3)
    rows = {(r["condition"], r["vs"]): r for _, r in goal.iterrows()}
    gap = rows[("gan-r3", "")]
    assert gap["goal"] and gap["gap_closed"] > 0.5            # most of the way to the oracle
    assert gap["gap_note"] == "" and math.isnan(gap["boot_p"])
    over = rows[("gan-r3", "oversample-r3")]
    assert over["beats"] and over["boot_p"] < 0.05 and over["delta_seeds"] > 0
    assert over["boot_lo"] > 0 and over["delong_p"] < 0.05 and over["delta_auc"] > 0
    paste = rows[("gan-r3", "copypaste-r3")]
    assert not paste["beats"] and not paste["goal"]           # copy-paste is as good
    assert not rows[("gan-transfer-r3-from-femur", "")]["goal"]  # a third: not met
    # the pairwise test is the seeds x images bootstrap, with the summary's n_boot and
    # seed; DeLong on the two seed ensembles is the secondary column
    labels, first = seed_matrix(table, "tibia", "gan-r3")
    _, second = seed_matrix(table, "tibia", "oversample-r3")
    expected = seed_image_bootstrap(labels, first, second, n_boot=200, seed=2)
    assert (over["delta_seeds"], over["boot_lo"], over["boot_hi"], over["boot_p"]) == \
        pytest.approx((expected.difference, expected.lo, expected.hi, expected.p))
    result = compare(table, "tibia", "gan-r3", "oversample-r3", n_boot=200, seed=2)
    assert (result.difference, result.p) == pytest.approx((expected.difference, expected.p))
    ensemble_test = delong_test(labels, first.mean(axis=0), second.mean(axis=0))
    assert over["delong_p"] == pytest.approx(ensemble_test.p)
    assert compare(table, "tibia", "gan-r3", "oversample-r3", test="delong").p == \
        pytest.approx(ensemble_test.p)
    text = format_goal(goal)
    assert "MET" in text and "not met" in text and text.count("\n") == len(goal)
    assert f"p {over['boot_p']:.3f}; DeLong p" in text
    with pytest.raises(BoneaugError, match="no condition 'gan-r9'"):
        compare(table, "tibia", "gan-r9", "baseline")
    with pytest.raises(BoneaugError, match="test must be"):
        compare(table, "tibia", "gan-r3", "baseline", test="t")
    assert goal_check(table, summary, 10).empty


def test_goal_gap_is_not_met_where_the_gap_is_not_defined():
    from boneaug.classify.evaluate import format_goal, goal_check

    conditions = {
        "baseline": ("baseline", math.nan, "", 1.0),
        "gan-r3": ("gan", 3.0, None, 1.2),
        "oracle-r3": ("oracle", 3.0, "", 1.0),  # no better than the baseline
    }
    table = make_predictions(conditions, bones=("tibia",))
    summary = summarise(table, n_boot=50)
    goal = goal_check(table, summary, 3)
    assert len(goal) == 1 and not goal["goal"].iloc[0]
    assert math.isnan(goal["gap_closed"].iloc[0])
    note = goal["gap_note"].iloc[0]
    assert note.startswith("oracle-r3 does not beat baseline")
    assert f"closes >= 1/2 of the gap: - ({note})" in format_goal(goal)
