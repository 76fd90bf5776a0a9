"""Every GLUE reader on small hand-made files of the official layouts (MNLI, QQP, QNLI included)."""

from pathlib import Path

import pytest

from bertprune.data.glue import TASKS, get_task, load_glue, read_tsv, subsample
from bertprune.errors import BertpruneError

BOM = "\ufeff"
MNLI_TRAIN_HEADER = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                     "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label")
MNLI_DEV_HEADER = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                   "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label")


def _mnli_row(i, a, b, gold, dev=False):
    labels = [gold] * (5 if dev else 1)
    return "\t".join([str(i), "31193", f"{i}n", "government", f"( ( {a} ) )", f"( {b} )", f"(ROOT {a})", f"(ROOT {b})", a, b, *labels, gold])


# (task, file name, content, expected rows as (text_a, text_b, label))
LAYOUTS = {
    "cola": (
        "gj04\t1\t\tOur friends won't buy this analysis, let alone the next one we propose.\n"
        "gj04\t0\t*\tThey drank the pub \"dry\".\n",
        [("Our friends won't buy this analysis, let alone the next one we propose.", None, 1),
         ('They drank the pub "dry".', None, 0)],
    ),
    "sst2": (
        "sentence\tlabel\nhide new secretions from the parental units \t0\nit 's \" charming \" \t1\n",
        [("hide new secretions from the parental units ", None, 0), ('it \'s " charming " ', None, 1)],
    ),
    "mrpc": (
        BOM + "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
        "1\t702876\t702977\tAmrozi accused his brother, whom he called \"the witness\".\tReferring to him as \"the witness\".\n"
        "0\t2108705\t2108831\tYucaipa owned Dominick's.\tYucaipa bought Dominick's in 1995.\n",
        [('Amrozi accused his brother, whom he called "the witness".', 'Referring to him as "the witness".', 1),
         ("Yucaipa owned Dominick's.", "Yucaipa bought Dominick's in 1995.", 0)],
    ),
    "stsb": (
        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
        "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is taking off.\tAn air plane is taking off.\t5.000\n"
        "1\tmain-captions\tMSRvid\t2012test\t0004\tnone\tnone\tA man plays a flute.\tA man plays.\t3.800\n",
        [("A plane is taking off.", "An air plane is taking off.", 5.0), ("A man plays a flute.", "A man plays.", 3.8)],
    ),
    "qqp": (
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
        "133273\t213221\t213222\tHow is the life of a math student?\tWhich level of prepration is enough?\t0\n"
        "402555\t536040\t536041\tHow do I control my horny emotions?\tHow do you control your horniness?\t1\n",
        [("How is the life of a math student?", "Which level of prepration is enough?", 0),
         ("How do I control my horny emotions?", "How do you control your horniness?", 1)],
    ),
    "mnli": (
        MNLI_TRAIN_HEADER + "\n" + _mnli_row(0, "Conceptually cream skimming has two dimensions.", "Product and geography.", "neutral") + "\n"
        + _mnli_row(1, "you know during the season", "You lose the things.", "entailment") + "\n"
        + _mnli_row(2, "One of our number will carry out.", "A member will not.", "contradiction") + "\n",
        [("Conceptually cream skimming has two dimensions.", "Product and geography.", 1),
         ("you know during the season", "You lose the things.", 0),
         ("One of our number will carry out.", "A member will not.", 2)],
    ),
    "qnli": (
        "index\tquestion\tsentence\tlabel\n"
        "0\tWhen did the third Digimon series begin?\tUnlike the two seasons before it.\tnot_entailment\n"
        "1\tWhich missile batteries often have individual launchers?\tThe missile batteries have launchers.\tentailment\n",
        [("When did the third Digimon series begin?", "Unlike the two seasons before it.", 1),
         ("Which missile batteries often have individual launchers?", "The missile batteries have launchers.", 0)],
    ),
    "rte": (
        "index\tsentence1\tsentence2\tlabel\n0\tNo Weapons Found in Iraq Yet.\tWeapons Found in Iraq.\tnot_entailment\n"
        "1\tA place of sorrow became celebration.\tPope Benedict XVI is the new leader.\tentailment\n",
        [("No Weapons Found in Iraq Yet.", "Weapons Found in Iraq.", 1),
         ("A place of sorrow became celebration.", "Pope Benedict XVI is the new leader.", 0)],
    ),
    "wnli": (
        "index\tsentence1\tsentence2\tlabel\n0\tI stuck a pin through a carrot.\tThe carrot had a hole.\t1\n"
        "1\tJohn couldn't see the stage.\tJohn is so short.\t0\n",
        [("I stuck a pin through a carrot.", "The carrot had a hole.", 1), ("John couldn't see the stage.", "John is so short.", 0)],
    ),
}


def _rows(ds):
    cols = ds.column_names
    return [(r["text_a"], r["text_b"] if "text_b" in cols else None, r["label"]) for r in ds]


def test_all_nine_tasks_are_defined():
    assert set(TASKS) == {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"}
    assert get_task("SST-2").name == "sst2" and get_task("MNLI").name == "mnli"


@pytest.mark.parametrize("task", list(LAYOUTS))
def test_reader_parses_official_layout(tmp_path, task):
    content, expected = LAYOUTS[task]
    f = tmp_path / "train.tsv"
    f.write_text(content, encoding="utf-8")
    rows = _rows(read_tsv(f, get_task(task)))
    assert [(a, b) for a, b, _ in rows] == [(a, b) for a, b, _ in expected]
    for (_, _, got), (_, _, want) in zip(rows, expected):
        assert got == pytest.approx(want)


def test_mnli_dev_files_with_16_columns_and_both_dev_sets(tmp_path):
    folder = tmp_path / "MNLI"
    folder.mkdir()
    (folder / "train.tsv").write_text(LAYOUTS["mnli"][0])
    (folder / "dev_matched.tsv").write_text(MNLI_DEV_HEADER + "\n" + _mnli_row(7, "The new rights are nice.", "Everyone loves them.", "neutral", dev=True) + "\n")
    (folder / "dev_mismatched.tsv").write_text(MNLI_DEV_HEADER + "\n" + _mnli_row(8, "Your gift is appreciated.", "We thank you.", "entailment", dev=True) + "\n")
    data = load_glue("mnli", str(tmp_path))
    assert len(data.train) == 3 and set(data.eval) == {"dev", "dev_mm"}
    assert _rows(data.eval["dev"]) == [("The new rights are nice.", "Everyone loves them.", 1)]
    assert _rows(data.eval["dev_mm"]) == [("Your gift is appreciated.", "We thank you.", 0)]


def test_real_shared_files_parse_when_present():
    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"
    if not root.is_dir():
        pytest.skip(f"{root} not present")
    sizes = {"cola": (8551, 1043), "sst2": (67349, 872), "mrpc": (3668, 408), "stsb": (5749, 1500), "rte": (2490, 277), "wnli": (635, 71)}
    for task, (n_train, n_dev) in sizes.items():
        data = load_glue(task, str(root))
        assert (len(data.train), len(data.eval["dev"])) == (n_train, n_dev), task


def test_wrong_column_count_names_file_and_line(tmp_path):
    f = tmp_path / "train.tsv"
    f.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta b\tentailment\n")
    with pytest.raises(BertpruneError, match=r"line 3: 3 tab-separated fields, expected 4"):
        read_tsv(f, get_task("rte"))
    f.write_text("gj04\t1\tThe sentence without the original-label column.\n")
    with pytest.raises(BertpruneError, match="line 1"):
        read_tsv(f, get_task("cola"))


def test_bad_label_and_bad_score(tmp_path):
    f = tmp_path / "train.tsv"
    f.write_text("sentence\tlabel\ngood movie\tpositive\n")
    with pytest.raises(BertpruneError, match=r"line 2: label 'positive' is not one of \['0', '1'\]"):
        read_tsv(f, get_task("sst2"))
    f.write_text(LAYOUTS["stsb"][0].replace("3.800", "high"))
    with pytest.raises(BertpruneError, match="score 'high' is not a number"):
        read_tsv(f, get_task("stsb"))


def test_missing_column_missing_file_and_unknown_task(tmp_path):
    f = tmp_path / "test.tsv"
    f.write_text("index\tsentence\n0\tunlabelled\n")
    with pytest.raises(BertpruneError, match="header lacks column"):
        read_tsv(f, get_task("sst2"))
    with pytest.raises(BertpruneError, match="GLUE file not found.*--glue-dir"):
        load_glue("rte", str(tmp_path))
    with pytest.raises(BertpruneError, match="GLUE folder not found"):
        load_glue("rte", str(tmp_path / "nope"))
    with pytest.raises(BertpruneError, match="unknown task 'sst3'.*cola, sst2"):
        get_task("sst3")


def test_subsample_is_seeded_and_ordered(tiny_glue):
    data = load_glue("sst2", str(tiny_glue))
    a, b = subsample(data.train, 10, seed=3), subsample(data.train, 10, seed=3)
    assert _rows(a) == _rows(b) and len(a) == 10
    assert _rows(subsample(data.train, 10, seed=4)) != _rows(a)
    assert len(subsample(data.train, None, 0)) == len(data.train)


def test_hub_path_maps_columns_and_splits(monkeypatch):
    """Offline stand-in for ``datasets.load_dataset("nyu-mll/glue", ...)`` with the hub's schema."""
    import datasets

    calls = []

    def fake_load_dataset(path, name, split):
        calls.append((path, name, split))
        return datasets.Dataset.from_dict({"premise": [f"p {split}"], "hypothesis": ["h"], "label": [2], "idx": [0]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_glue("mnli", None)
    assert calls == [("nyu-mll/glue", "mnli", "train"), ("nyu-mll/glue", "mnli", "validation_matched"),
                     ("nyu-mll/glue", "mnli", "validation_mismatched")]
    assert _rows(data.eval["dev_mm"]) == [("p validation_mismatched", "h", 2)]


def test_hub_failure_explains_the_local_option(monkeypatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(BertpruneError, match="--glue-dir"):
        load_glue("sst2", None)
