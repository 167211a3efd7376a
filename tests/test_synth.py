"""Synthetic stand-ins: real layouts, determinism, atomic writes, learnable structure."""

from __future__ import annotations

import hashlib
import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medlib.data import load_dataset
from medlib.data import synth as synth_module
from medlib.data.derm7pt import META_COLUMNS
from medlib.data.inspect import inspect_dataset
from medlib.data.pad_ufes import PAD_COLUMNS
from medlib.data.synth import MARKER_NAME, synthesize
from medlib.errors import DataError

NAMES = ("retina", "pad-ufes-20", "bladder-tissue", "derm7pt")


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("synth")
    return {name: synthesize(name, base / name, seed=0, size="small") for name in NAMES}


def _hashes(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _header(path):
    return path.read_text().splitlines()[0].split(",")


# ----------------------------------------------------------------------------- layouts
def test_retina_layout_and_counts(roots):
    base = roots["retina"] / "retina_dataset-master" / "dataset"
    assert sorted(p.name for p in base.iterdir()) == ["1_normal", "2_cataract", "2_glaucoma", "3_retina_disease"]
    assert (base / "1_normal" / "NL_001.png").is_file() and (base / "1_normal" / "NL_120.png").is_file()
    assert (base / "2_cataract" / "cataract_040.png").is_file()
    assert (base / "2_glaucoma" / "Glaucoma_001.png").is_file()
    assert (base / "3_retina_disease" / "Retina_040.png").is_file()
    ds = load_dataset("retina", roots["retina"])
    assert ds.counts() == {"label": {"normal": 120, "cataract": 40, "glaucoma": 40, "retina_disease": 40}}
    assert ds.load_image(0).size == (112, 112)


def test_pad_layout_raw_strings_and_patients(roots):
    root = roots["pad-ufes-20"]
    assert _header(root / "metadata.csv") == PAD_COLUMNS  # 26 columns, the file's own order and spelling
    meta = pd.read_csv(root / "metadata.csv", dtype=str, keep_default_na=False)
    assert (meta["fitspatrick"] == "").any() and (meta["itch"] == "UNK").any()
    assert all(re.fullmatch(r"PAT_\d+_\d+_\d+\.png", i) for i in meta["img_id"])
    assert all(i.startswith(p + "_") for i, p in zip(meta["img_id"], meta["patient_id"]))
    assert set(meta.loc[meta["diagnostic"].isin(["BCC", "SCC", "MEL"]), "biopsed"]) == {"True"}
    assert sorted(p.name for p in (root / "images").iterdir()) == ["imgs_part_1", "imgs_part_2", "imgs_part_3"]
    ds = load_dataset("pad-ufes-20", root)
    assert ds.counts() == {"label": {"ACK": 95, "BCC": 110, "MEL": 10, "NEV": 32, "SCC": 25, "SEK": 31}}
    assert len(set(ds.groups)) < len(ds)  # several images per patient, as in the real data
    sizes = {ds.load_image(i).size for i in range(10)}
    assert len(sizes) > 1  # image sizes vary like the real phone photos


def test_bladder_layout_case_grouped_splits(roots):
    # the released archive's layout: baldder_tissue_classification/{HGC,...}/ + annotations.csv in that
    # folder, columns in the release's order (REFERENCE §1)
    release = roots["bladder-tissue"] / "baldder_tissue_classification"
    root = roots["bladder-tissue"]
    assert _header(release / "annotations.csv") == ["HLY", "imaging type", "tissue type", "sub_dataset"]
    assert sorted(p.name for p in release.iterdir() if p.is_dir()) == ["HGC", "LGC", "NST", "NTL"]
    ds = load_dataset("bladder-tissue", root)
    assert len(ds) == 240 and set(ds.splits) == {"train", "val", "test"}
    assert all(re.fullmatch(r"case_\d{3}_pt_\d{3}_frame_\d{4}\.png", p.name) for p in ds.image_paths)
    assert set(ds.imaging_type) == {"WLI", "NBI"}
    split_of = {}
    for split, idx in ds.splits.items():
        for case in set(ds.groups[idx]):
            split_of.setdefault(case, set()).add(split)
    assert all(len(s) == 1 for s in split_of.values())  # a case (video) never straddles two splits
    width, height = ds.load_image(0).size
    assert 128 <= width <= 152 and height == width  # square frames, as the release's 300/350 px


def test_derm7pt_layout_indexes_and_missing_clinical(roots):
    release = roots["derm7pt"] / "release_v0"
    assert _header(release / "meta" / "meta.csv") == META_COLUMNS
    idx = {s: pd.read_csv(release / "meta" / f"{s}_indexes.csv")["indexes"].to_numpy()
           for s in ("train", "valid", "test")}
    assert [len(v) for v in idx.values()] == [80, 40, 78]
    assert sorted(np.concatenate(list(idx.values())).tolist()) == list(range(198))
    assert any((np.diff(v) < 0).any() for v in idx.values())  # unsorted, as the official files
    ds = load_dataset("derm7pt", roots["derm7pt"])
    assert ds.clinic_is_derm.sum() == 4
    notes = ds.metadata["notes"].to_numpy()
    assert (notes[ds.clinic_is_derm] != "").all() and (notes[~ds.clinic_is_derm] == "").all()
    suffixes = {p.suffix for p in ds.clinical_paths + ds.derm_paths}
    assert suffixes == {".jpg", ".JPG"}
    clinical, derm = ds.load_pair(0)
    assert clinical.size == derm.size == (192, 128)
    raw = set(ds.metadata["diagnosis"])
    assert "clark nevus" in raw and any(r.startswith("melanoma (") for r in raw)
    assert {"diffuse irregular", "localized irregular"} & set(ds.metadata["pigmentation"])


@pytest.mark.parametrize("name", NAMES)
def test_synthetic_output_passes_inspect(roots, name):
    info = inspect_dataset(name, roots[name])
    assert info["dataset"] == name and set(info) == {"dataset", "n_items", "tasks", "splits"}
    for counts in info["tasks"].values():
        assert sum(counts.values()) == info["n_items"] and min(counts.values()) > 0
    if info["splits"]:
        assert sum(info["splits"].values()) == info["n_items"]
    assert (info["splits"] == {}) == (name in ("retina", "pad-ufes-20"))


# ----------------------------------------------------------------------------- determinism, atomicity
def test_same_seed_same_bytes_other_seed_other_bytes(roots, tmp_path):
    for name in ("retina", "derm7pt", "bladder-tissue", "pad-ufes-20"):
        again = synthesize(name, tmp_path / f"{name}-again", seed=0)
        assert _hashes(again) == _hashes(roots[name]), name
    other = _hashes(synthesize("retina", tmp_path / "retina-seed1", seed=1))
    same_names = set(other) & set(_hashes(roots["retina"]))
    assert len(same_names) == 241  # same layout (240 images + marker) ...
    differing = [k for k in same_names if other[k] != _hashes(roots["retina"])[k] and k != MARKER_NAME]
    assert len(differing) == 240  # ... other pixels


def test_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken_writer(out, seed, size):
        (out / "retina_dataset-master").mkdir()
        (out / "retina_dataset-master" / "half.png").write_bytes(b"x")
        raise RuntimeError("disk full")

    monkeypatch.setitem(synth_module._WRITERS, "retina", broken_writer)
    with pytest.raises(RuntimeError, match="disk full"):
        synthesize("retina", tmp_path / "out", seed=0)
    assert list(tmp_path.iterdir()) == []


def test_same_request_is_kept_not_rewritten(roots):
    meta = roots["derm7pt"] / "release_v0" / "meta" / "meta.csv"
    stamp = meta.stat().st_mtime_ns
    assert synthesize("derm7pt", roots["derm7pt"], seed=0, size="small") == roots["derm7pt"]
    assert meta.stat().st_mtime_ns == stamp


def test_replace_earlier_synth_and_refuse_foreign_folder(tmp_path, monkeypatch):
    def tiny_writer(out, seed, size):  # the replacement logic does not depend on the pictures
        (out / f"seed{seed}.txt").write_text(str(seed))

    monkeypatch.setitem(synth_module._WRITERS, "retina", tiny_writer)
    out = synthesize("retina", tmp_path / "r", seed=0)
    synthesize("retina", out, seed=3)  # another seed: the folder is replaced, not merged
    assert sorted(p.name for p in out.iterdir()) == [MARKER_NAME, "seed3.txt"]
    assert json.loads((out / MARKER_NAME).read_text()) == {
        "dataset": "retina", "seed": 3, "size": "small", "synth_version": synth_module.SYNTH_VERSION}
    assert [p.name for p in tmp_path.iterdir()] == ["r"]  # no temp or trash folders left
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="refusing to overwrite"):
        synthesize("retina", foreign)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_bad_arguments():
    with pytest.raises(DataError, match="unknown dataset 'mnist'"):
        synthesize("mnist", "unused")
    with pytest.raises(DataError, match="unknown synth size 'huge'"):
        synthesize("retina", "unused", size="huge")


# ----------------------------------------------------------------------------- learnable structure
def _features(img):
    """Tiny generic image features: an 8×8 thumbnail, colour histograms, edge energy."""
    a = np.asarray(img.resize((32, 32)), np.float32) / 255
    thumb = np.asarray(img.resize((8, 8)), np.float32).ravel() / 255
    gray = a.mean(2)
    hist = np.concatenate([np.histogram(a[..., c], bins=8, range=(0, 1))[0] / 1024 for c in range(3)])
    edges = [np.abs(np.diff(gray, axis=1)).mean(), np.abs(np.diff(gray, axis=0)).mean()]
    return np.concatenate([thumb, hist, edges, a.std((0, 1))])


def _fit_score(X, y, train, test):
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X[train], y[train])
        return balanced_accuracy_score(y[test], clf.predict(X[test]))


def _held_out(ds, fraction=0.25):
    """Test items: whole patients/cases when the data has them (frames of a video must not leak)."""
    rng = np.random.default_rng(0)
    if ds.groups is not None:
        groups = np.unique(ds.groups)
        chosen = rng.choice(groups, size=max(2, int(len(groups) * fraction)), replace=False)
        test = np.isin(ds.groups, chosen)
    else:
        test = np.zeros(len(ds), bool)
        test[rng.permutation(len(ds))[: int(len(ds) * fraction)]] = True
    return np.flatnonzero(~test), np.flatnonzero(test)


@pytest.mark.parametrize("name", NAMES)
def test_classes_are_learnable_on_held_out_data(roots, name):
    ds = load_dataset(name, roots[name])
    X = np.stack([_features(ds.load_image(i)) for i in range(len(ds))])
    y = ds.label_matrix()[:, 0]
    train, test = _held_out(ds)
    chance = 1 / len(ds.classes)
    assert _fit_score(X, y, train, test) > chance + 0.15


def test_all_data_beats_a_quarter_retina(roots):
    """Paper A's premise on the stand-in: pooling the four sites helps."""
    ds = load_dataset("retina", roots["retina"])
    X = np.stack([_features(ds.load_image(i)) for i in range(len(ds))])
    y = ds.labels
    train, test = _held_out(ds)
    full = _fit_score(X, y, train, test)
    quarters = [_fit_score(X, y, part, test) for part in np.array_split(np.random.default_rng(1).permutation(train), 4)]
    assert full > max(quarters) + 0.05


def test_derm7pt_dermoscopy_more_informative_than_clinical(roots):
    ds = load_dataset("derm7pt", roots["derm7pt"])
    derm = np.stack([_features(ds.load_image(i)) for i in range(len(ds))])
    clin = np.stack([_features(ds.load_clinical(i)) for i in range(len(ds))])
    train, test = ds.splits["train"], np.concatenate([ds.splits["valid"], ds.splits["test"]])
    scores = {"derm": [], "clin": []}
    for t in range(len(ds.tasks)):
        scores["derm"].append(_fit_score(derm, ds.labels[:, t], train, test))
        scores["clin"].append(_fit_score(clin, ds.labels[:, t], train, test))
    assert np.mean(scores["derm"]) > np.mean(scores["clin"]) + 0.05
    chance = np.mean([1 / len(c) for c in ds.tasks.values()])  # balanced accuracy of guessing: 0.358
    assert np.mean(scores["clin"]) > chance + 0.02  # the clinical image still carries some signal
