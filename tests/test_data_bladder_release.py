"""Bladder Tissue in the released layout (REFERENCE §1), through the loader and `medlib data inspect`.

Fixtures are written exactly as the Zenodo archive unpacks: baldder_tissue_classification/
{HGC,LGC,NST,NTL}/*.png (square 300/350 px frames) with annotations.csv in that folder, columns
HLY, imaging type, tissue type, sub_dataset in that order.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medlib.cli import main
from medlib.data import load_dataset
from medlib.data.bladder import ANNOTATION_COLUMNS, RELEASE_DIR
from medlib.errors import DataError

# (HLY, imaging type, tissue type, sub_dataset): counts HGC 3, LGC 2, NST 2, NTL 1;
# train 4 / val 2 / test 2; cases 2, 3, 6, 7 (one name in the release's other pattern)
ROWS = [
    ("case_002_pt_003_frame_0009.png", "WLI", "HGC", "train"),
    ("case_002_pt_003_frame_0010.png", "NBI", "HGC", "train"),
    ("case_003_pt_001_frame_0001.png", "WLI", "LGC", "train"),
    ("case_6_cys_pt4_0062.png", "WLI", "NST", "train"),
    ("case_003_pt_002_frame_0001.png", "WLI", "LGC", "val"),
    ("case_006_pt_001_frame_0004.png", "NBI", "NST", "val"),
    ("case_007_pt_001_frame_0001.png", "WLI", "HGC", "test"),
    ("case_007_pt_002_frame_0001.png", "WLI", "NTL", "test"),
]


def _write_release(root, rows=ROWS, skip_frames=()):
    release = root / RELEASE_DIR
    for k, (name, _, tissue, _) in enumerate(rows):
        if name in skip_frames:
            continue
        path = release / tissue / name
        path.parent.mkdir(parents=True, exist_ok=True)
        side = 300 if k % 2 == 0 else 350
        Image.new("RGB", (side, side), (180, 40 + k, 60)).save(path)
    release.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=ANNOTATION_COLUMNS).to_csv(release / "annotations.csv", index=False)
    return release


def _listing(root):
    return sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*"))


def test_release_layout_counts_splits_cases_and_imaging(tmp_path):
    release = _write_release(tmp_path)
    ds = load_dataset("bladder-tissue", tmp_path)
    assert ds.root == release.resolve() and ds.split_column == "sub_dataset"
    assert ds.counts() == {"label": {"HGC": 3, "LGC": 2, "NST": 2, "NTL": 1}}
    assert {k: v.tolist() for k, v in ds.splits.items()} == {"train": [0, 1, 2, 3], "val": [4, 5], "test": [6, 7]}
    assert ds.groups.tolist() == ["case_002", "case_002", "case_003", "case_006", "case_003", "case_006",
                                  "case_007", "case_007"]
    assert ds.imaging_type.tolist() == ["WLI", "NBI", "WLI", "WLI", "WLI", "NBI", "WLI", "WLI"]
    assert ds.load_image(1).size == (350, 350)


def test_case_split_never_puts_a_case_on_both_sides(tmp_path):
    _write_release(tmp_path)
    ds = load_dataset("bladder-tissue", tmp_path)
    for seed in range(5):
        split = ds.case_split(n_test=3, seed=seed)
        assert sorted(np.concatenate([split["train"], split["test"]]).tolist()) == list(range(8))
        assert not set(ds.groups[split["train"]]) & set(ds.groups[split["test"]])
        assert 2 <= len(split["test"]) <= 4  # whole cases of 2 frames each, as close to 3 as they get


@pytest.mark.parametrize("bad", ["validation", "", "TRAIN "])
def test_split_value_outside_train_val_test_names_row_and_value(tmp_path, bad):
    rows = list(ROWS)
    rows[5] = (*rows[5][:3], bad)
    _write_release(tmp_path, rows)
    if bad == "TRAIN ":  # letter case and spaces are not a different split
        assert len(load_dataset("bladder-tissue", tmp_path).splits["train"]) == 5
        return
    with pytest.raises(DataError) as err:
        load_dataset("bladder-tissue", tmp_path)
    msg = str(err.value)
    assert "row 7" in msg and "case_006_pt_001_frame_0004.png" in msg and f"sub_dataset {bad!r}" in msg
    assert "['train', 'val', 'test']" in msg


def test_imaging_type_must_be_wli_or_nbi(tmp_path):
    rows = list(ROWS)
    rows[2] = (rows[2][0], "white light", *rows[2][2:])
    _write_release(tmp_path, rows)
    with pytest.raises(DataError, match=r"row 4 .*imaging type 'white light'; expected one of \['WLI', 'NBI'\]"):
        load_dataset("bladder-tissue", tmp_path)


def test_missing_frames_are_counted_and_named(tmp_path):
    gone = ("case_003_pt_001_frame_0001.png", "case_007_pt_002_frame_0001.png")
    _write_release(tmp_path, skip_frames=gone)
    with pytest.raises(DataError) as err:
        load_dataset("bladder-tissue", tmp_path)
    msg = str(err.value)
    assert "2 of 8 frames" in msg and all(name in msg for name in gone)


def test_identical_annotation_csvs_are_one_different_ones_an_error(tmp_path):
    release = _write_release(tmp_path)
    # the Zenodo record may list annotations.csv beside the zip that holds it too
    (tmp_path / "annotations.csv").write_bytes((release / "annotations.csv").read_bytes())
    ds = load_dataset("bladder-tissue", tmp_path)
    assert len(ds) == 8 and ds.csv_path == (tmp_path / "annotations.csv").resolve()
    pd.DataFrame(ROWS[:4], columns=ANNOTATION_COLUMNS).to_csv(tmp_path / "annotations.csv", index=False)
    with pytest.raises(DataError, match="2 different annotation CSVs"):
        load_dataset("bladder-tissue", tmp_path)


def test_inspect_cli_counts_or_clean_error_and_nothing_written(tmp_path, capsys):
    _write_release(tmp_path)
    before = _listing(tmp_path)
    assert main(["data", "inspect", "bladder-tissue", "--root", str(tmp_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info == {"dataset": "bladder-tissue", "n_items": 8,
                    "tasks": {"label": {"HGC": 3, "LGC": 2, "NST": 2, "NTL": 1}},
                    "splits": {"train": 4, "val": 2, "test": 2}}

    rows = list(ROWS)
    rows[0] = (*rows[0][:3], "holdout")
    _write_release(tmp_path, rows)
    before = _listing(tmp_path)
    assert main(["data", "inspect", "bladder-tissue", "--root", str(tmp_path), "--json"]) == 2
    captured = capsys.readouterr()
    assert "row 2" in captured.err and "'holdout'" in captured.err and "Traceback" not in captured.err
    assert captured.out == "" and _listing(tmp_path) == before


def test_synth_real_size_writes_the_release_layout(tmp_path):
    from medlib.data.synth import synthesize

    root = synthesize("bladder-tissue", tmp_path / "b", size="real-size")
    release = root / RELEASE_DIR
    assert (release / "annotations.csv").read_text().splitlines()[0] == "HLY,imaging type,tissue type,sub_dataset"
    ds = load_dataset("bladder-tissue", root)
    assert min(ds.counts()["label"].values()) >= 4 and len(ds) == 24
    assert {ds.load_image(i).size for i in range(len(ds))} <= {(300, 300), (350, 350)}


def test_a_crlf_copy_of_the_annotations_is_the_same_file(tmp_path):
    release = _write_release(tmp_path)
    lf = (release / "annotations.csv").read_bytes()
    assert b"\r\n" not in lf
    (tmp_path / "annotations.csv").write_bytes(lf.replace(b"\n", b"\r\n"))  # saved on Windows
    ds = load_dataset("bladder-tissue", tmp_path)
    assert len(ds) == 8 and ds.counts() == {"label": {"HGC": 3, "LGC": 2, "NST": 2, "NTL": 1}}
    (tmp_path / "annotations.csv").write_bytes(lf.replace(b"\n", b"\r\n").replace(b"HGC,test", b"NTL,test"))
    with pytest.raises(DataError, match="2 different annotation CSVs"):
        load_dataset("bladder-tissue", tmp_path)


def test_imaging_type_ignores_letter_case(tmp_path):
    rows = list(ROWS)
    rows[1] = (rows[1][0], "nbi", *rows[1][2:])
    rows[2] = (rows[2][0], " Wli", *rows[2][2:])
    _write_release(tmp_path, rows)
    assert load_dataset("bladder-tissue", tmp_path).imaging_type.tolist()[:3] == ["WLI", "NBI", "WLI"]
