import pickle

import pytest
import torch

from medlib.io import atomic_path, load_weights, read_metadata, save_weights


def test_weights_round_trip_with_metadata(tmp_path):
    state = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "n": torch.tensor(7)}
    meta = {"arch": "test_resnet", "classes": ["a", "b"], "profile": "smoke"}
    save_weights(tmp_path / "m.safetensors", state, meta)
    loaded, loaded_meta = load_weights(tmp_path / "m.safetensors")
    assert loaded_meta == meta
    assert torch.equal(loaded["w"], state["w"]) and loaded["n"].item() == 7


def test_pickles_are_refused_with_an_explanation(tmp_path):
    path = tmp_path / "site.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="pickle"):
        load_weights(path)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(ValueError, match="pickle"):
        read_metadata(raw)


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
