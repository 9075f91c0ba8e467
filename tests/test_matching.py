"""Matched negatives (`boneaug.data.matching`) and the rule that honours them
(`boneaug.data.films`, rule 4). Tables only: no image is read."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pytest

from boneaug.data import new_table
from boneaug.data.films import MATCHED_OUT_COLUMN, normals_of, of_bone, positives_of
from boneaug.data.matching import (
    BoneMatch,
    MatchingConfig,
    apply_matching,
    format_matching,
    match_bone,
    matched_columns,
    parse_age,
    strata,
)
from boneaug.errors import BoneaugError

_ids = itertools.count()


def film(label: int = 0, bone: str = "femur", split: str = "train", **meta: Any
         ) -> dict[str, Any]:
    """One manifest row; a positive gets a lesion box."""
    i = next(_ids)
    row = {"image_id": f"f{i}", "path": f"f{i}.png", "bone": bone, "label": label,
           "split": split, **meta}
    if label:
        row["boxes"] = [[1, 1, 4, 4]]
    return row


def films(n: int, label: int = 0, **kw: Any) -> list[dict[str, Any]]:
    return [film(label, **kw) for _ in range(n)]


def random_table(seed: int, n: int = 600, prevalence: float = 0.2) -> pd.DataFrame:
    """Films of one bone with random centre, sex and age, in three splits."""
    rng = np.random.default_rng(seed)
    rows = [film(int(rng.random() < prevalence), split=str(rng.choice(["train", "val", "test"])),
                 center=str(rng.choice(["1", "2", "3"])), sex=str(rng.choice(["F", "M"])),
                 age=str(int(rng.integers(0, 90))))
            for _ in range(n)]
    return new_table(rows)


def confounded() -> pd.DataFrame:
    """Positives mostly centre 1 and young; negatives mostly centre 2 and old."""
    rows = []
    for split, scale in (("train", 4), ("test", 1)):
        rows += films(4 * scale, 1, split=split, center="1", age="24")
        rows += films(1 * scale, 1, split=split, center="2", age="63")
        rows += films(3 * scale, 0, split=split, center="1", age="27")
        rows += films(25 * scale, 0, split=split, center="2", age="66")
        rows += films(8 * scale, 0, split=split, center="2", age="22")
    return new_table(rows)


def stratum_counts(table: pd.DataFrame, index: pd.Index, columns: list[str], band: int
                   ) -> Counter:
    return Counter(strata(table.loc[index], columns, band))


# --------------------------------------------------------------------------- strata


def test_strata_band_ages_and_keep_missing_values_apart() -> None:
    table = pd.DataFrame({"age": ["34", "34.0", 39.9, "40", "", None, "abc", "-3", "12Y"],
                          "sex": ["F", "f ", "M", "", "F", "F", "F", float("nan"), "M"]})
    keys = strata(table, ["age", "sex"], 10).tolist()
    assert keys == [("30-39", "f"), ("30-39", "f"), ("30-39", "m"), ("40-49", "missing"),
                    ("missing", "f"), ("missing", "f"), ("missing", "f"),
                    ("missing", "missing"), ("10-19", "m")]
    assert strata(table, ["age"], 1).tolist()[:3] == [("34",), ("34",), ("39",)]
    assert strata(table, [], 10).tolist() == [()] * len(table)
    assert parse_age("34.0") == 34.0 and parse_age("") is None and parse_age(True) is None


# --------------------------------------------------------------------------- the matching


def test_every_stratum_keeps_the_same_share_of_positives() -> None:
    table = random_table(seed=1)
    config = MatchingConfig(columns=["center", "sex", "age"], ratio=2.0, age_band=30)
    positives, negatives, match = match_bone(table, "femur", config, seed=0)
    columns = match.columns
    assert columns == ["center", "sex", "age"]
    for split in ("train", "val", "test"):
        rows = table.index[table["split"] == split]
        pos = stratum_counts(table, positives.intersection(rows), columns, 30)
        neg = stratum_counts(table, negatives.intersection(rows), columns, 30)
        assert set(pos) == set(neg)  # no stratum of one class alone
        common = match.ratios[split]
        assert 0 < common <= 2.0
        for key in pos:
            assert neg[key] <= 2.0 * pos[key]
            # the same negatives per positive everywhere, up to rounding to whole films
            assert abs(neg[key] - common * pos[key]) <= 0.5 + 1e-9 or neg[key] == 1
        counts = match.per_split[split]
        assert counts["positives_kept"] == sum(pos.values())
        assert counts["negatives_kept"] == sum(neg.values())
        assert counts["negatives"] > counts["negatives_kept"]


def test_ample_negatives_give_exactly_the_ratio_and_the_positives_distribution() -> None:
    rows = []
    for center, age, p in (("1", "30", 3), ("2", "45", 2), ("3", "70", 5)):
        rows += films(p, 1, center=center, age=age)
        rows += films(20, 0, center=center, age=age)
    rows += films(20, 0, center="4", age="50")  # a centre without positives
    table = new_table(rows)
    config = MatchingConfig(columns=["center", "age"], ratio=3)
    positives, negatives, match = match_bone(table, "femur", config, seed=5)
    assert len(positives) == 10 and len(negatives) == 30 and match.ratios == {"train": 3.0}
    pos = stratum_counts(table, positives, match.columns, 10)
    neg = stratum_counts(table, negatives, match.columns, 10)
    assert neg == Counter({k: 3 * v for k, v in pos.items()})
    assert match.dropped_positives == []


def test_confounded_negatives_take_the_positives_centre_and_age() -> None:
    table = confounded()
    real_pos, real_neg = positives_of(table, "femur"), normals_of(table, "femur")
    assert table.loc[real_pos, "center"].eq("1").mean() == pytest.approx(0.8)
    assert table.loc[real_neg, "center"].eq("1").mean() < 0.1  # the shortcut
    assert pd.to_numeric(table.loc[real_neg, "age"]).mean() > 50
    matched, matches = apply_matching(table, ["femur"], MatchingConfig(columns=["center", "age"]),
                                      seed=0)
    assert len(matched) == len(table)  # rows are never removed
    for split in ("train", "test"):
        in_split = matched["split"] == split
        pos = matched[in_split & positives_of(matched, "femur")]
        neg = matched[in_split & normals_of(matched, "femur")]
        assert len(neg) > 0
        # the same centre shares, up to rounding a stratum's negatives to whole films
        assert neg["center"].eq("1").mean() == pytest.approx(pos["center"].eq("1").mean(),
                                                              abs=0.06)
        bands = [pd.to_numeric(t["age"]) // 10 for t in (pos, neg)]
        assert bands[0].mean() == pytest.approx(bands[1].mean(), abs=0.3)
        # the stated ratio everywhere: positives are cut where negatives are short
        assert matches[0].ratios[split] == pytest.approx(4.0)
        assert len(neg) == 4 * len(pos)
    # young centre-2 negatives match no positive
    young_2 = (table["center"] == "2") & (table["age"] == "22")
    assert (matched.loc[young_2, MATCHED_OUT_COLUMN] == "femur").all()


def test_a_positive_without_a_negative_in_its_stratum_is_dropped_and_listed() -> None:
    rows = films(4, 1, center="1") + films(20, 0, center="1")
    lonely = film(1, center="3")
    table = new_table(rows + [lonely])
    config = MatchingConfig(columns=["center"])
    positives, _, match = match_bone(table, "femur", config, seed=0)
    assert match.dropped_positives == [lonely["image_id"]]
    assert lonely["image_id"] not in set(table.loc[positives, "image_id"])
    assert match.per_split["train"] == {"positives": 5, "positives_kept": 4,
                                        "negatives": 20, "negatives_kept": 16}
    matched, _ = apply_matching(table, ["femur"], config, seed=0)
    row = matched["image_id"] == lonely["image_id"]
    assert matched.loc[row, MATCHED_OUT_COLUMN].item() == "femur"
    assert not positives_of(matched, "femur")[row].any()
    assert int(positives_of(matched, "femur").sum()) == 4
    assert "dropped" in format_matching([match])


def test_a_split_whose_positives_share_no_stratum_with_its_negatives_is_an_error() -> None:
    rows = (films(2, 1, center="1") + films(8, 0, center="1")
            + films(2, 1, split="test", center="1") + films(8, 0, split="test", center="2"))
    with pytest.raises(BoneaugError, match=r"matching femur on center: no test positive"):
        match_bone(new_table(rows), "femur", MatchingConfig(columns=["center"]), seed=0)


def test_a_split_with_nothing_to_match_is_kept_as_it_is() -> None:
    rows = (films(2, 1, center="1") + films(8, 0, center="1")
            + films(2, 1, split="val", center="2")            # val: no negatives
            + films(3, 0, split="test", center="2"))          # test: no positives
    table = new_table(rows)
    _, _, match = match_bone(table, "femur", MatchingConfig(columns=["center"]), seed=0)
    assert match.per_split["val"] == {"positives": 2, "positives_kept": 2,
                                      "negatives": 0, "negatives_kept": 0}
    assert match.per_split["test"]["negatives_kept"] == 3
    assert set(match.ratios) == {"train"} and match.dropped_positives == []


def test_synthetic_rows_take_no_part() -> None:
    rows = films(2, 1, center="1") + films(8, 0, center="2") + films(8, 0, center="1")
    synthetic = film(1, center="9", origin="synthetic", provenance="{}")
    table = new_table(rows + [synthetic])
    matched, matches = apply_matching(table, ["femur"], MatchingConfig(columns=["center"]), seed=0)
    assert matched.loc[matched["origin"] == "synthetic", MATCHED_OUT_COLUMN].item() == ""
    assert matches[0].per_split["train"]["positives"] == 2


# --------------------------------------------------------------------------- determinism


def two_bones() -> pd.DataFrame:
    rows = []
    for bone in ("femur", "tibia"):
        rows += films(3, 1, bone=bone, center="1") + films(30, 0, bone=bone, center="1")
        rows += films(2, 1, bone=bone, center="2") + films(30, 0, bone=bone, center="2")
    rows += films(10, 0, bone="lower_limb", center="1", assigned_bones="femur;tibia")
    return new_table(rows)


def left_out_for(table: pd.DataFrame, bone: str) -> set[str]:
    listed = table[MATCHED_OUT_COLUMN].str.split(";").map(lambda b: bone in b)
    return set(table.loc[listed, "image_id"])


def test_matching_is_deterministic_and_each_bone_independent_of_the_others() -> None:
    table = two_bones()
    config = MatchingConfig(columns=["center"], ratio=8)
    once, _ = apply_matching(table, ["femur"], config, seed=3)
    again, _ = apply_matching(table, ["femur"], config, seed=3)
    pd.testing.assert_frame_equal(once, again)
    both, matches = apply_matching(table, ["tibia", "femur"], config, seed=3)
    assert [m.bone for m in matches] == ["tibia", "femur"]
    assert left_out_for(both, "femur") == left_out_for(once, "femur")
    other, _ = apply_matching(table, ["femur"], config, seed=4)
    assert left_out_for(other, "femur") != left_out_for(once, "femur")
    # a joint film left out for one bone stays a film of the other unless left out for it too
    knees = both[both["bone"] == "lower_limb"]
    for bone in ("femur", "tibia"):
        assert (of_bone(knees, bone) == ~knees["image_id"].isin(left_out_for(both, bone))).all()
    femur_only = left_out_for(knees, "femur") - left_out_for(knees, "tibia")
    assert femur_only and normals_of(knees, "tibia")[knees["image_id"].isin(femur_only)].all()


def test_matched_out_is_appended_to() -> None:
    table = two_bones()
    table[MATCHED_OUT_COLUMN] = ""
    knee = table.index[table["bone"] == "lower_limb"]
    table.loc[knee, MATCHED_OUT_COLUMN] = "Tibia"
    matched, _ = apply_matching(table, ["femur"], MatchingConfig(columns=["center"], ratio=2), 0)
    values = set(matched.loc[knee, MATCHED_OUT_COLUMN])
    assert values <= {"tibia", "tibia;femur"} and "tibia;femur" in values


# --------------------------------------------------------------------------- columns


def test_auto_takes_only_the_columns_with_values() -> None:
    rows = films(2, 1, center="1", gender="F", age="") + films(6, 0, center="1", gender="F")
    table = new_table(rows)  # an age column, all empty; no view column
    assert matched_columns(table, MatchingConfig(columns=["auto"])) == ["center", "gender"]
    _, _, match = match_bone(table, "femur", MatchingConfig(columns="auto"), seed=0)
    assert match.columns == ["center", "gender"]
    with pytest.raises(BoneaugError, match="none of the columns"):
        matched_columns(new_table(films(2, 1)), MatchingConfig(columns=["auto"]))


def test_column_aliases() -> None:
    table = new_table(films(2, 1, centre="A", gender="M") + films(6, 0, centre="A", gender="M"))
    assert matched_columns(table, MatchingConfig(columns=["center", "sex"])) == ["centre", "gender"]
    assert matched_columns(table, MatchingConfig(columns=["gender", "sex"])) == ["gender"]


def test_a_named_column_the_manifest_lacks_is_an_error() -> None:
    table = new_table(films(2, 1, center="1", view="") + films(6, 0, center="1", view=""))
    with pytest.raises(BoneaugError, match=r"'view'.*column view"):
        match_bone(table, "femur", MatchingConfig(columns=["center", "view"]), seed=0)


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize("values, message", [
    ({"columns": ["centre", "hospital"]}, "cannot match on 'hospital'"),
    ({"columns": ["auto", "age"]}, "either"),
    ({"columns": [3]}, "must be a list"),
    ({"ratio": 0}, r"matching.ratio: must be a number > 0 \(got 0\)"),
    ({"ratio": -1.5}, r"matching.ratio: must be a number > 0 \(got -1.5\)"),
    ({"ratio": True}, r"matching.ratio: must be a number > 0 \(got True\)"),
    ({"age_band": 0}, r"matching.age_band: must be an integer >= 1 \(got 0\)"),
    ({"age_band": 2.5}, r"matching.age_band: must be an integer >= 1 \(got 2.5\)"),
])
def test_bad_config_is_one_line(values: dict[str, Any], message: str) -> None:
    with pytest.raises(BoneaugError, match=message) as err:
        MatchingConfig(**values).validate("exp.yaml: matching")
    assert str(err.value).startswith("exp.yaml: matching") and "\n" not in str(err.value)


def test_off_leaves_the_table_unchanged() -> None:
    table = confounded()
    out, matches = apply_matching(table, ["femur"], MatchingConfig(), seed=0)
    assert matches == [] and out is not table
    pd.testing.assert_frame_equal(out, table)
    assert format_matching(matches) == "matching: off"


def test_reports_are_plain_data() -> None:
    config = MatchingConfig(columns=["center", "age"], ratio=4, age_band=10)
    assert config.to_dict() == {"columns": ["center", "age"], "ratio": 4, "age_band": 10}
    _, matches = apply_matching(confounded(), ["femur"], config, seed=0)
    data = matches[0].to_dict()
    assert data["bone"] == "femur" and data["columns"] == ["center", "age"]
    assert BoneMatch(**data) == matches[0]
    text = format_matching(matches)
    assert "femur" in text and "center, age" in text
    assert "7 of 20" in text and "28 of 144" in text  # positives cut to what negatives allow


# --------------------------------------------------------------------------- films rule 4


def test_matched_out_leaves_a_film_out_of_that_bone_only() -> None:
    rows = [film(1, center="1"), film(0, center="1"),
            film(0, bone="lower_limb", assigned_bones="femur;tibia"),
            film(1, bone="tibia")]
    plain = new_table(rows)
    empty = plain.assign(**{MATCHED_OUT_COLUMN: ""})
    for bone in ("femur", "tibia"):  # an empty column changes nothing
        assert of_bone(empty, bone).equals(of_bone(plain, bone))
        assert positives_of(empty, bone).equals(positives_of(plain, bone))
    marked = empty.copy()
    marked.loc[[0, 2], MATCHED_OUT_COLUMN] = ["femur", "femur"]
    marked.loc[3, MATCHED_OUT_COLUMN] = "tibia"
    assert list(positives_of(marked, "femur")) == [False, False, False, False]
    assert list(normals_of(marked, "femur")) == [False, True, False, False]
    assert list(normals_of(marked, "tibia")) == [False, False, True, False]  # still a tibia film
    assert list(positives_of(marked, "tibia")) == [False, False, False, False]
    assert list(normals_of(marked, "femur", ("lower_limb",))) == [False, True, False, False]
