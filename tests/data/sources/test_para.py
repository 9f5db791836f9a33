"""PARA adapter: per-user ratings, user profiles, GIAA aggregates and the official split."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from aestimo.data.sources import read_source
from aestimo.data.sources.schema import USER_PROFILES_SCHEMA

HEAD = ("sessionId,imageName,userId,aestheticScore,qualityScore,compositionScore,colorScore,dofScore,"
        "contentScore,lightScore,isObjectEmphasis,imgEmotion,difficultyOfJudgment,contentPreference,"
        "willingnessToShare,semantic")
ROWS = [
    HEAD,
    "session1,iaa_pub1_.jpg,A19895a,3.5,3,4,3,2,5,4,1,Neutral,2,4,3,portrait",
    "session1,iaa_pub1_.jpg,B20001b,4.0,4,4,3,2,5,4,0,Awe,1,5,4,portrait",
    "session1,iaa_pub2_.jpg,A19895a,2.5,2,3,3,3,2,2,0,Neutral,3,2,1,landscape",
    "session2,iaa_pub3_.jpg,B20001b,1.0,1,1,1,1,1,1,0,Sadness,4,1,1,night",
]
USERS = [
    "userId,age,gender,EducationalLevel,artExperience,photographyExperience,personality-E,personality-A,"
    "personality-N,personality-O,personality-C",
    "A19895a,22-25,male,undergraduate,beginner,Competent,5,4,3,2,1",
    "B20001b,30-34,female,postgraduate,expert,proficient,9,8,7,6,1",
]
IMAGES = ("session1/iaa_pub1_.jpg", "session1/iaa_pub2_.jpg", "session2/iaa_pub3_.jpg")
ATTRS = ["composition", "color", "dof", "light", "content", "contentPreference", "willingnessToShare"]


def giaa_head() -> str:
    head = ["imageName", "sessionId", "semantic"] + [f"aestheticScore_{v:.1f}" for v in np.arange(1, 5.01, 0.5)]
    head += ["aestheticScore_mean", "aestheticScore_std", "qualityScore_mean", "qualityScore_std"]
    for a in ATTRS:
        head += [f"{a}Score_{v}" for v in range(1, 6)] + [f"{a}Score_mean", f"{a}Score_std"]
    return ",".join(head)


def giaa_row(name, session, semantic, hist, mean, std, quality):
    cells = [name, session, semantic, *map(str, hist), str(mean), str(std), str(quality), "0.5"]
    for _ in ATTRS:
        cells += ["0", "1", "1", "0", "0", "2.5", "0.5"]
    return ",".join(cells)


GIAA_TRAIN = [giaa_head(), giaa_row("iaa_pub1_.jpg", "session1", "portrait", [0, 0, 0, 0, 0, 1, 1, 0, 0],
                                    3.8, 0.35, 3.6)]
GIAA_TEST = [giaa_head(), giaa_row("iaa_pub3_.jpg", "session2", "night", [1, 0, 0, 0, 0, 0, 0, 0, 0], 1.0, 0, 1)]


@pytest.fixture
def para(newdir, jpeg, text):
    def make(rows=ROWS, users=USERS, train=GIAA_TRAIN, test=GIAA_TEST, images=IMAGES):
        root = newdir()
        ann = root / "annotation"
        text(ann / "PARA-Images.csv", "\n".join(rows) + "\n")
        for name, lines in (("PARA-UserInfo.csv", users), ("PARA-GiaaTrain.csv", train),
                            ("PARA-GiaaTest.csv", test)):
            if lines is not None:
                text(ann / name, "\n".join(lines) + "\n")
        jpeg(*[root / "imgs" / i for i in images])
        return root

    return make


def test_tables(para):
    root = para()
    t = read_source("para", root)
    ids = [f"para:{i}" for i in IMAGES]
    assert t.images["image_id"].to_list() == ids
    assert t.images["path"].to_list() == [str(root / "imgs" / i) for i in IMAGES]
    assert t.images["theme"].to_list() == ["portrait", "landscape", "night"]
    assert t.ratings["rater_id"].to_list() == ["A19895a", "B20001b", "A19895a", "B20001b"]
    assert t.ratings["score"].to_list() == [3.5, 4.0, 2.5, 1.0]

    g = t.generic_scores.sort("image_id")
    assert g["mean"].to_list() == pytest.approx([3.8, 2.5, 1.0])  # Giaa mean preferred; pub2 from its rating
    assert g["std"][0] == 0.35 and g["std"][1] is None
    assert g["n_votes"].to_list() == [2, 1, 1]
    assert g["attr_quality"].to_list() == pytest.approx([3.6, 2.0, 1.0])
    assert g["attr_composition"].to_list() == pytest.approx([2.5, 3.0, 2.5])  # Giaa's 2.5 where listed
    assert g["attr_willingness_to_share"][1] == 1.0 and g["attr_difficulty"][0] == 1.5
    dist = np.array(g["dist"].to_list())
    np.testing.assert_allclose(dist[0], [0, 0, 0, 0, 0, 0, 0.5, 0.5, 0, 0])  # 3.5 and 4.0
    np.testing.assert_allclose(dist[1], [0, 0, 0, 0, 1, 0, 0, 0, 0, 0])  # 2.5 from the ratings

    assert t.official_splits.sort("image_id")["split"].to_list() == ["train", "test"]
    p = t.user_profiles
    assert p.schema == pl.Schema(USER_PROFILES_SCHEMA)
    assert p.row(0, named=True) == {
        "source": "para", "rater_id": "A19895a", "age": "22-25", "gender": "male", "education": "undergraduate",
        "art_experience": "beginner", "photo_experience": "competent",
        "big5_E": 5, "big5_A": 4, "big5_N": 3, "big5_O": 2, "big5_C": 1,
    }


def test_without_optional_files(para):
    t = read_source("para", para(users=None, train=None, test=None))
    assert t.user_profiles.height == 0 and t.official_splits.height == 0
    assert t.generic_scores["mean"].to_list() == pytest.approx([3.75, 2.5, 1.0])


@pytest.mark.parametrize(
    "index, old, new, column",
    [
        (2, ",3.5,", ",3.75,", "aestheticScore"),  # off the 0.5 step
        (2, ",3.5,", ",5.5,", "aestheticScore"),  # off the scale
        (2, ",3.5,", ",high,", "aestheticScore"),
        (2, ",3.5,3,", ",3.5,7,", "qualityScore"),
        (3, "B20001b", "A19895a", "imageName"),  # A19895a rated pub1 twice
    ],
)
def test_bad_ratings(para, raises_at, index, old, new, column):
    rows = list(ROWS)
    if index == 3:
        rows[2] = rows[2].replace(old, new)
    else:
        rows[1] = rows[1].replace(old, new, 1)
    raises_at(lambda: read_source("para", para(rows=rows)), "PARA-Images.csv", index, column)


def test_bad_profiles_and_giaa(para, raises_at):
    users = [USERS[0], USERS[1], USERS[2].replace(",9,", ",10,")]
    raises_at(lambda: read_source("para", para(users=users)), "PARA-UserInfo.csv", 3, "personality-E")
    users = [USERS[0], USERS[1].replace("beginner", "novice"), USERS[2]]
    raises_at(lambda: read_source("para", para(users=users)), "PARA-UserInfo.csv", 2, "artExperience")
    users = [USERS[0].replace("personality-C", "personality-X"), *USERS[1:]]
    raises_at(lambda: read_source("para", para(users=users)), "PARA-UserInfo.csv", 1, "personality-C")
    test = [GIAA_TEST[0], GIAA_TEST[1].replace(",night,1,", ",night,-1,")]
    raises_at(lambda: read_source("para", para(test=test)), "PARA-GiaaTest.csv", 2, "aestheticScore_1.0")
    test = [GIAA_TEST[0], GIAA_TRAIN[1]]
    raises_at(lambda: read_source("para", para(test=test)), "PARA-GiaaTest.csv", 2, "imageName")
    raises_at(lambda: read_source("para", para(images=IMAGES[:2])), "PARA-Images.csv", 5, "imageName")
    raises_at(lambda: read_source("para", para(rows=[HEAD.replace("userId", "user")] + ROWS[1:])),
              "PARA-Images.csv", 1, "userId")


def test_drop_mode(para):
    rows = [*ROWS, "session2,iaa_pub3_.jpg,A19895a,0.5,1,1,1,1,1,1,0,Fear,4,1,1,night",
            "session9,iaa_pub9_.jpg,A19895a,3.0,1,1,1,1,1,1,0,Fear,4,1,1,night"]
    t = read_source("para", para(rows=rows), on_bad_rows="drop")
    assert t.dropped["row"].to_list() == [6, 7]
    assert t.dropped["column"].to_list() == ["aestheticScore", "imageName"]
    assert t.ratings.height == 4


# ----------------------------------------------------------------- the release's codings

RELEASE_ROWS = [
    HEAD,
    "session1,iaa_pub1_.jpg,A19895a,3.5,3,4,3,2,5,4,1,Amusement,-1,4,3,portrait",
    "session1,iaa_pub1_.jpg,B20001b,4.0,4,4,3,2,5,4,0,Contentment,0,5,4,portrait",
    "session1,iaa_pub2_.jpg,A19895a,2.5,2,3,3,3,2,2,0,Excitement,1,2,1,landscape",
    "session2,iaa_pub3_.jpg,B20001b,1.0,1,1,1,1,1,1,1,Sadness,0,1,1,night",
]


@pytest.mark.parametrize("mode", ["error", "drop"])
def test_release_codes_difficulty_minus_one_to_one_and_emotions_as_names(para, mode):
    """The real PARA codes difficultyOfJudgment -1/0/1 (easy/normal/hard), imgEmotion by name,
    isObjectEmphasis 0/1: read as coded, nothing dropped."""
    t = read_source("para", para(rows=RELEASE_ROWS), on_bad_rows=mode)
    assert t.dropped.height == 0 and t.ratings.height == 4
    g = t.generic_scores.sort("image_id")
    assert g["attr_difficulty"].to_list() == pytest.approx([-0.5, 1.0, 0.0])  # kept on the file's coding


@pytest.mark.parametrize("mode", ["error", "drop"])
def test_unused_columns_are_not_judged(para, mode):
    rows = [RELEASE_ROWS[0], RELEASE_ROWS[1].replace(",1,Amusement,", ",yes,Some{0} feeling,"), *RELEASE_ROWS[2:]]
    t = read_source("para", para(rows=rows), on_bad_rows=mode)
    assert t.dropped.height == 0 and t.ratings.height == 4


def test_world_codes_difficulty_one_to_five(para):
    """The synthetic world writes difficultyOfJudgment 1-5; ROWS code it so."""
    t = read_source("para", para())
    assert t.generic_scores.sort("image_id")["attr_difficulty"].to_list() == pytest.approx([1.5, 3.0, 4.0])


def test_difficulty_off_the_files_coding_is_a_bad_row(para, raises_at):
    rows = [*RELEASE_ROWS[:4], RELEASE_ROWS[4].replace(",Sadness,0,", ",Sadness,3,")]  # 3 in a -1/0/1 file
    e = raises_at(lambda: read_source("para", para(rows=rows)), "PARA-Images.csv", 5, "difficultyOfJudgment")
    assert "3.0 is not one of -1, 0, 1" in str(e)
    t = read_source("para", para(rows=rows), on_bad_rows="drop")
    assert t.dropped.select("row", "column").rows() == [(5, "difficultyOfJudgment")]
    rows = [*ROWS[:4], ROWS[4].replace(",Sadness,4,", ",Sadness,0,")]  # 0 in a 1-5 file
    e = raises_at(lambda: read_source("para", para(rows=rows)), "PARA-Images.csv", 5, "difficultyOfJudgment")
    assert "outside the scale [1, 5]" in str(e)
    t = read_source("para", para(rows=rows), on_bad_rows="drop")
    assert t.dropped.select("row", "column").rows() == [(5, "difficultyOfJudgment")]


# ----------------------------------------------------------------- other faults


@pytest.mark.parametrize("content", [b"", b"not an image\n"])
def test_image_file_that_is_not_an_image(para, raises_at, content):
    root = para()
    (root / "imgs" / IMAGES[1]).write_bytes(content)
    e = raises_at(lambda: read_source("para", root), "PARA-Images.csv", 4, "imageName")
    assert IMAGES[1] in str(e)
    t = read_source("para", root, on_bad_rows="drop")
    assert t.dropped.select("row", "column").rows() == [(4, "imageName")]
    assert "not an image" in t.dropped["reason"].item() or "0 bytes" in t.dropped["reason"].item()


@pytest.mark.parametrize("mode", ["error", "drop"])
def test_giaa_file_naming_no_rated_image_raises(para, raises_at, mode):
    test = [GIAA_TEST[0], GIAA_TEST[1].replace("iaa_pub3_.jpg", "other.jpg")]
    raises_at(lambda: read_source("para", para(test=test), on_bad_rows=mode), "PARA-GiaaTest.csv", None,
              "imageName")


def test_empty_experience_says_empty(para, raises_at):
    users = [USERS[0], USERS[1].replace("beginner", ""), USERS[2]]
    e = raises_at(lambda: read_source("para", para(users=users)), "PARA-UserInfo.csv", 2, "artExperience")
    assert "artExperience (empty) is not one of" in str(e) and "None" not in str(e)


def test_giaa_in_both_files_names_the_train_row(para, raises_at):
    test = [GIAA_TEST[0], GIAA_TEST[1], GIAA_TRAIN[1]]
    e = raises_at(lambda: read_source("para", para(test=test)), "PARA-GiaaTest.csv", 3, "imageName")
    assert "also in PARA-GiaaTrain.csv, row 2" in str(e)
