"""Loaders on tiny hand-written fixtures in each dataset's real on-disk format.

Every fixture is written here, in tmp_path, with exact per-class and per-split counts known
by construction; malformed variants must fail with a DataError naming the bad value/path.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medlib.data import DATASET_NAMES, BladderTissue, Derm7pt, PadUfes20, Retina, load_dataset
from medlib.data.derm7pt import META_COLUMNS
from medlib.data.pad_ufes import LEAKY_COLUMNS, PAD_COLUMNS
from medlib.errors import DataError, MedlibError


def _img(path, size=(8, 6), color=(200, 60, 40)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)  # format from the suffix (.png, .jpg, .JPG)
    return path


def test_registry_names_and_unknown_name(tmp_path):
    assert DATASET_NAMES == ("retina", "pad-ufes-20", "bladder-tissue", "derm7pt")
    with pytest.raises(DataError, match="unknown dataset 'mnist'"):
        load_dataset("mnist", tmp_path)


def test_missing_root_names_path_and_download_command(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("retina", tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)
    assert "medlib data download retina --root DIR" in str(err.value)
    assert isinstance(err.value, MedlibError) and isinstance(err.value, ValueError)


# ----------------------------------------------------------------------------- Retina
RETINA_FILES = {  # folder -> file names ; counts 3 / 1 / 2 / 1
    "1_normal": ["NL_001.png", "NL_002.png", "NL_003.png"],
    "2_cataract": ["cataract_001.png"],
    "2_glaucoma": ["Glaucoma_001.png", "Glaucoma_002.png"],
    "3_retina_disease": ["Retina_001.png"],
}


def _write_retina(root, skip=()):
    base = root / "retina_dataset-master" / "dataset"
    for folder, files in RETINA_FILES.items():
        if folder in skip:
            continue
        for f in files:
            _img(base / folder / f, size=(10, 7))
    (root / "retina_dataset-master" / "README.md").parent.mkdir(parents=True, exist_ok=True)
    (root / "retina_dataset-master" / "README.md").write_text("retina\n")
    return root / "retina_dataset-master"


@pytest.mark.parametrize("level", ["above", "archive", "dataset"])
def test_retina_counts_order_and_root(tmp_path, level):
    archive = _write_retina(tmp_path)
    root = {"above": tmp_path, "archive": archive, "dataset": archive / "dataset"}[level]
    ds = load_dataset("retina", root)
    assert isinstance(ds, Retina) and ds.name == "retina"
    assert ds.tasks == {"label": ["normal", "cataract", "glaucoma", "retina_disease"]}
    assert ds.classes == ["normal", "cataract", "glaucoma", "retina_disease"]
    assert len(ds) == 7
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == [0, 0, 0, 1, 2, 2, 3]
    assert [p.name for p in ds.image_paths] == [f for files in RETINA_FILES.values() for f in files]
    assert ds.counts() == {"label": {"normal": 3, "cataract": 1, "glaucoma": 2, "retina_disease": 1}}
    assert ds.counts([0, 4, 6]) == {"label": {"normal": 1, "cataract": 0, "glaucoma": 1, "retina_disease": 1}}
    assert ds.groups is None and ds.splits == {}
    assert ds.root == archive.resolve()
    img = ds.load_image(5)
    assert img.mode == "RGB" and img.size == (10, 7)


def test_retina_missing_class_folder_is_named(tmp_path):
    _write_retina(tmp_path, skip=("3_retina_disease",))
    with pytest.raises(DataError, match=r"missing \['3_retina_disease'\]"):
        load_dataset("retina", tmp_path)


def test_retina_empty_root_explains_download(tmp_path):
    with pytest.raises(DataError, match="medlib data download retina"):
        load_dataset("retina", tmp_path)


def test_retina_unreadable_image_fails_at_load_not_construction(tmp_path):
    archive = _write_retina(tmp_path)
    bad = archive / "dataset" / "1_normal" / "NL_002.png"
    bad.write_bytes(b"not a png at all")
    ds = load_dataset("retina", tmp_path)  # construction does not decode pixels
    assert ds.load_image(0).size == (10, 7)
    with pytest.raises(DataError, match="NL_002.png"):
        ds.load_image(1)


# ----------------------------------------------------------------------------- PAD-UFES-20
def _pad_row(patient, lesion, n, diag, complete=True, **over):
    row = {c: "" for c in PAD_COLUMNS}
    row.update(patient_id=f"PAT_{patient}", lesion_id=str(lesion), age="55", region="FACE", diagnostic=diag,
               itch="UNK", grew="True", hurt="False", changed="UNK", bleed="False", elevation="True",
               img_id=f"PAT_{patient}_{lesion}_{n}.png", biopsed="True" if diag in ("BCC", "SCC", "MEL") else "False")
    if complete:
        row.update(smoke="False", drink="True", background_father="POMERANIA", background_mother="UNK",
                   pesticide="False", gender="FEMALE", skin_cancer_history="True", cancer_history="True",
                   has_piped_water="True", has_sewage_system="False", fitspatrick="2.0",
                   diameter_1="6.0", diameter_2="5.0")
    row.update(over)
    return row


PAD_ROWS = [  # (patient, lesion, n, diagnosis, complete questionnaire)
    (46, 881, 939, "BCC", True),
    (46, 882, 940, "ACK", True),
    (1516, 1765, 530, "NEV", False),
    (7, 13, 103, "NEV", True),
    (7, 13, 104, "NEV", True),
]


def _write_pad(root, rows=PAD_ROWS, drop_column=None, skip_image=None, **over):
    data = root / "pad-ufes-20"
    frame = pd.DataFrame([_pad_row(*r, **over) for r in rows])[PAD_COLUMNS]
    if drop_column:
        frame = frame.drop(columns=[drop_column])
    data.mkdir(parents=True, exist_ok=True)
    frame.to_csv(data / "metadata.csv", index=False)
    for k, r in enumerate(rows):
        name = f"PAT_{r[0]}_{r[1]}_{r[2]}.png"
        if name == skip_image:
            continue
        # the first two unzipped flat, the rest in a nested folder (as some unzip tools do)
        folder = data / "images" / "imgs_part_1" if k < 2 else data / "images" / "imgs_part_2" / "imgs_part_2"
        _img(folder / name, size=(12 + k, 9))
    return data


def test_pad_counts_groups_paths_and_raw_metadata(tmp_path):
    data = _write_pad(tmp_path)
    ds = load_dataset("pad-ufes-20", tmp_path)
    assert isinstance(ds, PadUfes20) and ds.root == data.resolve()
    assert ds.classes == ["ACK", "BCC", "MEL", "NEV", "SCC", "SEK"]
    assert ds.labels.tolist() == [1, 0, 3, 3, 3]
    assert ds.counts() == {"label": {"ACK": 1, "BCC": 1, "MEL": 0, "NEV": 3, "SCC": 0, "SEK": 0}}
    assert ds.groups.tolist() == ["PAT_46", "PAT_46", "PAT_1516", "PAT_7", "PAT_7"]
    assert [p.name for p in ds.image_paths] == [f"PAT_{r[0]}_{r[1]}_{r[2]}.png" for r in PAD_ROWS]
    assert ds.image_paths[3].parent.name == "imgs_part_2"
    assert ds.load_image(3).size == (15, 9)  # row 3 got the image written 12+3 wide
    assert ds.splits == {}
    # raw strings kept: blanks stay blank, UNK stays UNK, the misspelt column is there
    assert list(ds.metadata.columns) == PAD_COLUMNS
    assert ds.metadata.loc[2, "fitspatrick"] == "" and ds.metadata.loc[0, "fitspatrick"] == "2.0"
    assert ds.metadata.loc[0, "itch"] == "UNK"
    assert LEAKY_COLUMNS == ("diagnostic", "biopsed")


def test_pad_unknown_diagnosis_names_value_and_image(tmp_path):
    rows = PAD_ROWS[:2] + [(9, 90, 900, "MELANOMA", True)]
    _write_pad(tmp_path, rows=rows)
    with pytest.raises(DataError) as err:
        load_dataset("pad-ufes-20", tmp_path)
    msg = str(err.value)
    assert "'MELANOMA'" in msg and "PAT_9_90_900.png" in msg and "row 4" in msg


def test_pad_missing_column_lists_found_and_expected(tmp_path):
    _write_pad(tmp_path, drop_column="fitspatrick")
    with pytest.raises(DataError, match=r"lacks the column\(s\) \['fitspatrick'\]"):
        load_dataset("pad-ufes-20", tmp_path)


def test_pad_missing_image_is_named_and_zip_hint_given(tmp_path):
    data = _write_pad(tmp_path, skip_image="PAT_7_13_104.png")
    (data / "images" / "imgs_part_3.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    with pytest.raises(DataError) as err:
        load_dataset("pad-ufes-20", tmp_path)
    msg = str(err.value)
    assert "1 of 5 images" in msg and "PAT_7_13_104.png" in msg and "imgs_part_3.zip" in msg


# ----------------------------------------------------------------------------- Bladder
def test_bladder_brief_format_case_column_and_split_column(tmp_path):
    """image_name without extension, `case number`, a split column called `split`."""
    rows = [
        ("f1", "HGC", "WLI", "1", "train"),
        ("f2", "HGC", "NBI", "1", "train"),
        ("f3", "LGC", "WLI", "2", "val"),
        ("f4", "NTL", "WLI", "3", "test"),
        ("f5", "NST", "NBI", "3", "test"),
        ("f6", "LGC", "WLI", "4", "train"),
    ]
    data = tmp_path / "zenodo" / "EndoscopicBladderTissue"
    data.mkdir(parents=True)
    pd.DataFrame(rows, columns=["image_name", "tissue type", "imaging type", "case number", "split"]).to_csv(
        data / "labels.csv", index=False)
    for name, *_ in rows:
        _img(data / "frames" / f"{name}.png", size=(30, 20))
    ds = load_dataset("bladder-tissue", tmp_path)
    assert isinstance(ds, BladderTissue) and ds.root == data.resolve()
    assert ds.classes == ["HGC", "LGC", "NST", "NTL"]
    assert ds.labels.tolist() == [0, 0, 1, 3, 2, 1]
    assert ds.counts() == {"label": {"HGC": 2, "LGC": 2, "NST": 1, "NTL": 1}}
    assert ds.groups.tolist() == ["1", "1", "2", "3", "3", "4"]
    assert ds.imaging_type.tolist() == ["WLI", "NBI", "WLI", "WLI", "NBI", "WLI"]
    assert ds.split_column == "split"
    assert {k: v.tolist() for k, v in ds.splits.items()} == {"train": [0, 1, 5], "val": [2], "test": [3, 4]}
    assert ds.counts(ds.splits["train"])["label"] == {"HGC": 2, "LGC": 1, "NST": 0, "NTL": 0}
    assert [p.name for p in ds.image_paths] == [f"f{k}.png" for k in range(1, 7)]


def test_bladder_zenodo_format_hly_subdataset_duplicate_names(tmp_path):
    """`HLY` image column, `sub_dataset` split, class folders, the same frame name in two folders."""
    rows = [
        ("case_001_pt_001_frame_0001.png", "HGC", "WLI", "train"),
        ("case_001_pt_001_frame_0002.png", "HGC", "NBI", "train"),
        ("case_002_pt_001_frame_0001.png", "LGC", "WLI", "val"),
        ("case_002_pt_001_frame_0001.png", "NTL", "WLI", "val"),
        ("cys_case_010_pt01_0005.png", "NST", "WLI", "test"),
    ]
    pd.DataFrame(rows, columns=["HLY", "tissue type", "imaging type", "sub_dataset"]).to_csv(
        tmp_path / "annotations.csv", index=False)
    for k, (name, cls, *_) in enumerate(rows):
        _img(tmp_path / cls / name, size=(20 + k, 10))
    ds = load_dataset("bladder-tissue", tmp_path)
    assert ds.labels.tolist() == [0, 0, 1, 3, 2]
    assert ds.groups.tolist() == ["case_001", "case_001", "case_002", "case_002", "case_010"]
    assert ds.split_column == "sub_dataset"
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 2, "val": 2, "test": 1}
    # the duplicate frame name resolves to the copy in its own tissue folder
    assert ds.image_paths[2].parent.name == "LGC" and ds.image_paths[3].parent.name == "NTL"
    assert ds.load_image(3).size == (23, 10)


def test_bladder_image_name_with_relative_folder(tmp_path):
    rows = [("HGC/case_003_pt_001_frame_0001.png", "HGC", "WLI"), ("NST/case_003_pt_001_frame_0001", "NST", "WLI")]
    pd.DataFrame(rows, columns=["image_name", "tissue type", "imaging type"]).to_csv(tmp_path / "a.csv", index=False)
    _img(tmp_path / "HGC" / "case_003_pt_001_frame_0001.png", size=(5, 5))
    _img(tmp_path / "NST" / "case_003_pt_001_frame_0001.png", size=(7, 5))
    ds = load_dataset("bladder-tissue", tmp_path)
    assert [p.parent.name for p in ds.image_paths] == ["HGC", "NST"]
    assert ds.groups.tolist() == ["case_003", "case_003"]


def test_bladder_no_split_column_gives_empty_splits(tmp_path):
    pd.DataFrame([("a.png", "NST", "WLI"), ("b.png", "HGC", "NBI")],
                 columns=["image_name", "tissue type", "imaging type"]).to_csv(tmp_path / "a.csv", index=False)
    _img(tmp_path / "x" / "a.png")
    _img(tmp_path / "x" / "b.png")
    with pytest.warns(UserWarning, match="groups=None"):
        ds = load_dataset("bladder-tissue", tmp_path)
    assert ds.splits == {} and ds.groups is None and len(ds) == 2


def test_bladder_wrong_columns_fail_listing_found_columns(tmp_path):
    pd.DataFrame([("a.png", "NST")], columns=["file", "label"]).to_csv(tmp_path / "annotations.csv", index=False)
    with pytest.raises(DataError) as err:
        load_dataset("bladder-tissue", tmp_path)
    msg = str(err.value)
    assert "annotations.csv: ['file', 'label']" in msg and "'tissue type'" in msg


def test_bladder_unknown_tissue_and_missing_frame(tmp_path):
    cols = ["image_name", "tissue type", "imaging type", "case number"]
    pd.DataFrame([("a.png", "NST", "WLI", "1"), ("b.png", "CIS", "WLI", "2")], columns=cols).to_csv(
        tmp_path / "annotations.csv", index=False)
    _img(tmp_path / "a.png")
    _img(tmp_path / "b.png")
    with pytest.raises(DataError, match=r"'CIS'.*expected one of \['HGC', 'LGC', 'NST', 'NTL'\]"):
        load_dataset("bladder-tissue", tmp_path)
    pd.DataFrame([("a.png", "NST", "WLI", "1"), ("zz.png", "LGC", "WLI", "2")], columns=cols).to_csv(
        tmp_path / "annotations.csv", index=False)
    with pytest.raises(DataError, match=r"1 of 2 frames.*zz\.png"):
        load_dataset("bladder-tissue", tmp_path)


# ----------------------------------------------------------------------------- derm7pt
# (case_num, diagnosis, PN, STR, PIG, RS, DaG, BWV, VS) and the grouped labels expected
DERM_CASES = [
    ("1", "basal cell carcinoma", "absent", "absent", "absent", "blue areas", "irregular", "absent", "arborizing"),
    ("2", "clark nevus", "typical", "regular", "diffuse regular", "absent", "regular", "absent", "absent"),
    ("3", "melanoma (in situ)", "atypical", "irregular", "localized irregular", "combinations", "irregular",
     "present", "dotted"),
    ("4", "lentigo", "absent", "absent", "absent", "absent", "absent", "absent", "linear irregular"),
    ("5", "seborrheic keratosis", "absent", "absent", "diffuse irregular", "white areas", "absent", "absent",
     "hairpin"),
    ("6", "melanoma (more than 1.5 mm)", "atypical", "regular", "absent", "absent", "regular", "present", "absent"),
]
DERM_LABELS = [  # DIAG, PN, STR, PIG, RS, DaG, BWV, VS
    [0, 0, 0, 0, 1, 2, 0, 1],
    [1, 1, 1, 1, 0, 1, 0, 0],
    [2, 2, 2, 2, 1, 2, 1, 2],
    [3, 0, 0, 0, 0, 0, 0, 2],
    [4, 0, 0, 2, 1, 0, 0, 1],
    [2, 2, 1, 0, 0, 1, 1, 0],
]
DERM_SPLITS = {"train": [3, 0, 5], "valid": [1, 4], "test": [2]}  # unsorted, as the official files


def _write_derm(root, cases=DERM_CASES, splits=DERM_SPLITS, rename=None):
    release = root / "derm7pt" / "release_v0"
    rows = []
    for k, (num, diag, pn, st, pig, rs, dag, bwv, vs) in enumerate(cases):
        clinic, derm = f"Aal/AAL{2 * k + 1:03d}.JPG", f"Aal/Aal{2 * k + 2:03d}.jpg"
        if num == "6":  # no clinical image: the dermoscopic one is listed twice
            clinic = derm
        rows.append({"case_num": num, "diagnosis": diag, "seven_point_score": "1", "pigment_network": pn,
                     "streaks": st, "pigmentation": pig, "regression_structures": rs, "dots_and_globules": dag,
                     "blue_whitish_veil": bwv, "vascular_structures": vs, "level_of_diagnostic_difficulty": "low",
                     "elevation": "flat", "location": "back", "sex": "female", "management": "excision",
                     "clinic": clinic, "derm": derm, "case_id": "",
                     "notes": "no clinical image available" if num == "6" else ""})
        if clinic != derm:
            _img(release / "images" / clinic, size=(12, 8), color=(10, 200, 10))
        _img(release / "images" / (rename.get(derm, derm) if rename else derm), size=(24, 16), color=(10, 10, 200))
    (release / "meta").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows)[META_COLUMNS].to_csv(release / "meta" / "meta.csv", index=False)
    for split, idx in splits.items():
        (release / "meta" / f"{split}_indexes.csv").write_text("indexes\n" + "".join(f"{i}\n" for i in idx))
    return release


def test_derm7pt_labels_splits_pairs_and_clinic_equals_derm(tmp_path):
    release = _write_derm(tmp_path)
    ds = load_dataset("derm7pt", tmp_path)
    assert isinstance(ds, Derm7pt) and ds.root == release.resolve()
    assert list(ds.tasks) == ["DIAG", "PN", "STR", "PIG", "RS", "DaG", "BWV", "VS"]
    assert ds.classes == ["BCC", "NEV", "MEL", "MISC", "SK"]
    assert ds.tasks["PN"] == ["ABS", "TYP", "ATP"] and ds.tasks["RS"] == ["ABS", "PRS"]
    assert ds.tasks["VS"] == ["ABS", "REG", "IR"] and ds.tasks["BWV"] == ["ABS", "PRS"]
    assert ds.labels.shape == (6, 8) and ds.labels.dtype == np.int64
    assert ds.labels.tolist() == DERM_LABELS
    assert {k: v.tolist() for k, v in ds.splits.items()} == DERM_SPLITS
    train = ds.counts(ds.splits["train"])
    assert train["DIAG"] == {"BCC": 1, "NEV": 0, "MEL": 1, "MISC": 1, "SK": 0}
    assert train["VS"] == {"ABS": 1, "REG": 1, "IR": 1}
    assert ds.counts()["PIG"] == {"ABS": 3, "REG": 1, "IR": 2}
    assert ds.groups.tolist() == ["1", "2", "3", "4", "5", "6"]
    assert ds.clinic_is_derm.tolist() == [False] * 5 + [True]
    assert ds.clinical_paths[0].name == "AAL001.JPG" and ds.derm_paths[0].name == "Aal002.jpg"
    clinical, derm = ds.load_pair(0)
    assert clinical.size == (12, 8) and derm.size == (24, 16)
    assert clinical.getpixel((0, 0))[1] > 150 and derm.getpixel((0, 0))[2] > 150
    c6, d6 = ds.load_pair(5)
    assert c6.size == d6.size == (24, 16)
    assert ds.load_image(1).size == (24, 16)  # image_paths = the dermoscopic images
    assert ds.image_paths == ds.derm_paths


def test_derm7pt_unknown_string_names_case_column_value(tmp_path):
    cases = list(DERM_CASES)
    cases[2] = ("3", "melanoma (thick)") + cases[2][2:]
    _write_derm(tmp_path, cases=cases)
    with pytest.raises(DataError, match=r"case_num 3\) has diagnosis = 'melanoma \(thick\)'"):
        load_dataset("derm7pt", tmp_path)
    cases = list(DERM_CASES)
    cases[4] = cases[4][:4] + ("patchy",) + cases[4][5:]
    _write_derm(tmp_path, cases=cases)
    with pytest.raises(DataError, match=r"case_num 5\) has pigmentation = 'patchy'"):
        load_dataset("derm7pt", tmp_path)


@pytest.mark.parametrize(
    "splits, message",
    [
        ({"train": [3, 0, 6], "valid": [1, 4], "test": [2]}, r"train_indexes.csv holds index 6, outside 0..5"),
        ({"train": [3, 0, 5], "valid": [1, 3], "test": [2]}, r"rows \[3\] are in both the train and the valid"),
        ({"train": [3, 0, 5, 0], "valid": [1, 4], "test": [2]}, r"lists index 0 more than once"),
    ],
)
def test_derm7pt_bad_index_files(tmp_path, splits, message):
    _write_derm(tmp_path, splits=splits)
    with pytest.raises(DataError, match=message):
        load_dataset("derm7pt", tmp_path)


def test_derm7pt_letter_case_mismatch_is_explained(tmp_path):
    _write_derm(tmp_path, rename={"Aal/Aal004.jpg": "Aal/Aal004.JPG"})
    with pytest.raises(DataError) as err:
        load_dataset("derm7pt", tmp_path)
    msg = str(err.value)
    assert "case_num 2" in msg and "'Aal/Aal004.jpg'" in msg and "letter case" in msg and "Aal004.JPG" in msg


def test_derm7pt_missing_release_explains_registration(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("derm7pt", tmp_path)
    msg = str(err.value)
    assert "https://derm.cs.sfu.ca" in msg and "release_v0/meta/meta.csv" in msg


def test_derm7pt_missing_index_file(tmp_path):
    release = _write_derm(tmp_path)
    (release / "meta" / "valid_indexes.csv").unlink()
    with pytest.raises(DataError, match="valid_indexes.csv is missing"):
        load_dataset("derm7pt", release)
