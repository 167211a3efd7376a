"""``medlib data synth|inspect|download`` through argparse, as the main CLI assembles them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from PIL import Image

from medlib.cli.data import register
from medlib.errors import DataError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medlib")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


def _tiny_retina(root: Path) -> None:
    for folder, n in {"1_normal": 2, "2_cataract": 1, "2_glaucoma": 1, "3_retina_disease": 3}.items():
        for i in range(1, n + 1):
            path = root / "retina_dataset-master" / "dataset" / folder / f"x_{i:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (4, 4)).save(path)


def test_inspect_json_is_exact(tmp_path, capsys):
    _tiny_retina(tmp_path)
    assert _run(["data", "inspect", "retina", "--root", str(tmp_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info == {
        "dataset": "retina",
        "n_items": 7,
        "tasks": {"label": {"normal": 2, "cataract": 1, "glaucoma": 1, "retina_disease": 3}},
        "splits": {},
    }


def test_inspect_table_lists_classes_and_shares(tmp_path, capsys):
    _tiny_retina(tmp_path)
    assert _run(["data", "inspect", "retina", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "dataset: retina    items: 7" in out and "none (no official split)" in out
    assert "retina_disease       3   42.9%" in out


def test_synth_then_inspect_derm7pt_splits(tmp_path, capsys):
    out_dir = tmp_path / "derm"
    assert _run(["data", "synth", "derm7pt", "--out", str(out_dir), "--seed", "2"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote synthetic derm7pt (seed=2, size=small) to {out_dir}" in printed
    assert _run(["data", "inspect", "derm7pt", "--root", str(out_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_items"] == 198 and info["splits"] == {"train": 80, "valid": 40, "test": 78}
    assert list(info["tasks"]) == ["DIAG", "PN", "STR", "PIG", "RS", "DaG", "BWV", "VS"]
    assert all(sum(c.values()) == 198 for c in info["tasks"].values())


def test_download_calls_the_downloader_lazily(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_download(name, root, *, base_url=None):
        calls.append((name, root, base_url))
        return root / "retina_dataset-master"

    monkeypatch.setattr("medlib.data.download.download_dataset", fake_download)
    assert _run(["data", "download", "retina", "--root", str(tmp_path)]) == 0
    assert calls == [("retina", tmp_path, None)]
    assert f"retina is ready under {tmp_path / 'retina_dataset-master'}" in capsys.readouterr().out


def test_data_error_propagates_for_the_main_cli(tmp_path):
    with pytest.raises(DataError, match="medlib data download pad-ufes-20"):
        _run(["data", "inspect", "pad-ufes-20", "--root", str(tmp_path)])


def test_unknown_dataset_name_is_rejected_by_argparse(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        _parser().parse_args(["data", "inspect", "mnist", "--root", str(tmp_path)])
    assert exit_.value.code == 2 and "invalid choice: 'mnist'" in capsys.readouterr().err


def test_main_cli_exit_code_2_on_data_error(tmp_path, capsys):
    from medlib.cli import main

    assert main(["data", "inspect", "derm7pt", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "derm.cs.sfu.ca" in err and "Traceback" not in err
