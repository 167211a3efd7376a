"""Cache keys by content (a re-copied dataset hits its cache) and the squash fit of Paper B."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import medlib.data.cache as cache_module
from medlib.data.cache import DIGESTS_NAME, cache_key, cache_path, cached_images, load_resized


def _thirds_768x512(path):
    """768 x 512 (w x h), like derm7pt: red columns 0-127, green 128-639, blue 640-767."""
    array = np.zeros((512, 768, 3), np.uint8)
    array[:, :128, 0] = 255
    array[:, 128:640, 1] = 255
    array[:, 640:, 2] = 255
    Image.fromarray(array).save(path)
    return path


def test_squash_keeps_the_whole_image_crop_keeps_the_centre(tmp_path):
    path = _thirds_768x512(tmp_path / "derm.png")
    crop = load_resized(path, 224, "crop")
    squash = load_resized(path, 224, "squash")
    assert crop.shape == squash.shape == (3, 224, 224)
    # crop: the centre 512 x 512 square is exactly the green band
    assert (crop[:, :, 2:222] == np.array([0, 255, 0], np.uint8)[:, None, None]).all()
    # squash: 768 -> 224 columns, so 128 px become 37.3 columns of red and of blue at the sides
    assert (squash[:, :, :36] == np.array([255, 0, 0], np.uint8)[:, None, None]).all()
    assert (squash[:, :, 39:185] == np.array([0, 255, 0], np.uint8)[:, None, None]).all()
    assert (squash[:, :, 188:] == np.array([0, 0, 255], np.uint8)[:, None, None]).all()
    # rows are not cut either: every row identical
    assert (squash == squash[:, :1, :]).all()
    with pytest.raises(ValueError, match="fit must be one of"):
        load_resized(path, 224, "stretch")


def test_fit_is_part_of_the_key_and_of_the_cache(tmp_path):
    path = _thirds_768x512(tmp_path / "derm.png")
    cache = tmp_path / "cache"
    crop = cached_images([path], 32, cache, progress=False)
    squash = cached_images([path], 32, cache, progress=False, fit="squash")
    assert cache_key([path], 32, fit="crop", digests_dir=cache) != cache_key([path], 32, fit="squash", digests_dir=cache)
    assert cache_path([path], 32, cache, fit="squash").name.startswith("images-1x32px-squash-")
    # column 3 of 32: green after crop (the outer columns blend across the crop box), red after squash
    assert crop[0, :, 16, 3].tolist() == [0, 255, 0] and squash[0, :, 16, 3].tolist() == [255, 0, 0]
    assert len(list(cache.glob("*.npy"))) == 2


def test_recopied_dataset_with_new_mtimes_hits_the_cache(tmp_path, monkeypatch):
    src = tmp_path / "session1"
    paths = []
    for k in range(3):
        paths.append(src / f"img_{k}.png")
        paths[-1].parent.mkdir(exist_ok=True)
        Image.new("RGB", (40, 30), (10 * k, 100, 200)).save(paths[-1])
    cache = tmp_path / "cache"
    first = cached_images(paths, 16, cache, progress=False)

    # a new session copies the data again: new folder, new mtimes (shutil.copy does not keep them)
    dst = tmp_path / "session2"
    dst.mkdir()
    copies = [shutil.copy(p, dst / p.name) for p in paths]
    decodes = []
    monkeypatch.setattr(cache_module, "load_resized", lambda *a: decodes.append(a) or np.zeros(0))
    again = cached_images(copies, 16, cache, progress=False)
    assert decodes == [] and torch.equal(first, again)
    assert cache_key(paths, 16, digests_dir=cache) == cache_key(copies, 16, digests_dir=cache)

    # a changed byte is a different key
    Image.new("RGB", (40, 30), (255, 0, 0)).save(copies[1])
    assert cache_key(paths, 16, digests_dir=cache) != cache_key(copies, 16, digests_dir=cache)


def test_sidecar_hashes_each_unchanged_file_once(tmp_path, monkeypatch):
    paths = []
    for k in range(4):
        paths.append(tmp_path / "data" / f"{k}.png")
        paths[-1].parent.mkdir(exist_ok=True)
        Image.new("RGB", (8, 8), (k, k, k)).save(paths[-1])
    reads = []
    original = cache_module._blake2
    monkeypatch.setattr(cache_module, "_blake2", lambda p: reads.append(p) or original(p))
    monkeypatch.setattr(cache_module, "_MEMO", {})  # a fresh process
    store = tmp_path / "store"
    key = cache_key(paths, 8, digests_dir=store)
    assert len(reads) == 4 and (store / DIGESTS_NAME).is_file()
    monkeypatch.setattr(cache_module, "_MEMO", {})  # another fresh process: the sidecar answers
    assert cache_key(paths, 8, digests_dir=store) == key and len(reads) == 4
    Image.new("RGB", (8, 8), (9, 9, 9)).save(paths[2])  # one file changes: only it is read again
    assert cache_key(paths, 8, digests_dir=store) != key and len(reads) == 5
