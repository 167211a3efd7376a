"""The decode-once image cache, and the augmentation that runs on its tensors."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import medlib.data.cache as cache_module
from medlib.data.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TensorImageDataset,
    affine_theta,
    apply_affine,
    gpu_augment,
    normalize,
    random_affine_theta,
    train_transform,
)
from medlib.data.cache import cache_path, cached_images
from medlib.errors import DataError


def _solid(path: Path, size_wh: tuple[int, int], rgb: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size_wh, rgb).save(path)
    return path


def _three_stripes(path: Path) -> Path:
    """60 x 20 (w x h): red | green | blue, 20 px each."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.zeros((20, 60, 3), np.uint8)
    array[:, :20, 0] = 255
    array[:, 20:40, 1] = 255
    array[:, 40:, 2] = 255
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def images(tmp_path) -> list[Path]:
    root = tmp_path / "dataset"
    return [
        _solid(root / "a" / "solid_wide.png", (48, 32), (10, 200, 30)),
        _solid(root / "a" / "solid_tall.png", (20, 50), (250, 0, 128)),
        _three_stripes(root / "b" / "stripes.png"),
        _solid(root / "b" / "grey.jpg", (40, 40), (128, 128, 128)),
    ]


@pytest.fixture
def count_decodes(monkeypatch):
    calls: list[Path] = []
    original = cache_module.load_resized

    def counting(path, size, *args):
        calls.append(Path(path))
        return original(path, size, *args)

    monkeypatch.setattr(cache_module, "load_resized", counting)
    return calls


def test_values_shape_and_centre_crop(images, tmp_path):
    cached = cached_images(images, 20, tmp_path / "cache", progress=False)

    assert cached.dtype == torch.uint8 and tuple(cached.shape) == (4, 3, 20, 20)
    # Uniform images stay uniform through bicubic resizing, whatever their aspect ratio.
    assert torch.all(cached[0] == torch.tensor([10, 200, 30]).view(3, 1, 1))
    assert torch.all(cached[1] == torch.tensor([250, 0, 128]).view(3, 1, 1))
    # 60x20 stripes: the shorter side is already 20, so the centre crop is the green third.
    assert torch.all(cached[2] == torch.tensor([0, 255, 0]).view(3, 1, 1))
    # JPEG is lossy; a flat grey survives within a couple of levels.
    assert (cached[3].int() - 128).abs().max() <= 2


def test_shorter_side_resize_keeps_aspect(tmp_path):
    # 40 x 80 (w x h): top half black, bottom half white. Scaled to 20 x 40, the centre
    # 20 x 20 crop spans rows 10..29 of the scaled image: 10 black rows then 10 white rows.
    array = np.zeros((80, 40, 3), np.uint8)
    array[40:] = 255
    path = tmp_path / "half.png"
    Image.fromarray(array).save(path)
    cached = cached_images([path], 20, tmp_path / "cache", progress=False)[0]
    assert torch.all(cached[:, :8] == 0)
    assert torch.all(cached[:, 12:] == 255)
    assert torch.all(cached[:, :, 0] == cached[:, :, 10])  # columns identical: no horizontal squeeze


def test_cache_hit_does_not_decode_again(images, tmp_path, count_decodes):
    first = cached_images(images, 16, tmp_path / "cache", progress=False)
    assert len(count_decodes) == 4

    second = cached_images(images, 16, tmp_path / "cache", progress=False)

    assert len(count_decodes) == 4  # nothing decoded the second time
    assert torch.equal(first, second)
    npy_files = list((tmp_path / "cache").glob("*.npy"))
    assert npy_files == [cache_path(images, 16, tmp_path / "cache")]
    # The tensor is backed by the file: the same bytes as np.load reads.
    assert np.array_equal(np.load(npy_files[0]), second.numpy())


def test_writing_to_the_tensor_never_changes_the_cache_file(images, tmp_path):
    cached = cached_images(images, 8, tmp_path / "cache", progress=False)
    cached[0].zero_()
    again = cached_images(images, 8, tmp_path / "cache", progress=False)
    assert again[0, 1, 0, 0] == 200


def test_changed_file_invalidates(images, tmp_path, count_decodes):
    cached_images(images, 16, tmp_path / "cache", progress=False)
    _solid(images[0], (48, 32), (0, 0, 255))
    stat = images[0].stat()
    os.utime(images[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))

    rebuilt = cached_images(images, 16, tmp_path / "cache", progress=False)

    assert len(count_decodes) == 8
    assert torch.all(rebuilt[0] == torch.tensor([0, 0, 255]).view(3, 1, 1))


def test_size_order_and_file_set_are_part_of_the_key(images, tmp_path, count_decodes):
    cache = tmp_path / "cache"
    base = cached_images(images, 16, cache, progress=False)
    reordered = cached_images(images[::-1], 16, cache, progress=False)
    assert torch.equal(reordered, base.flip(0))
    assert cached_images(images, 12, cache, progress=False).shape == (4, 3, 12, 12)
    assert cached_images(images[:3], 16, cache, progress=False).shape == (3, 3, 16, 16)
    assert len(list(cache.glob("*.npy"))) == 4


def test_moved_dataset_keeps_its_cache_but_touched_files_do_not(images, tmp_path, count_decodes):
    # identity="stat" (size + mtime) is the old default; content keys are the default now
    cached_images(images, 16, tmp_path / "cache", progress=False, identity="stat")
    moved_root = tmp_path / "moved"
    shutil.copytree(tmp_path / "dataset", moved_root)  # copy2 keeps mtimes
    moved = [moved_root / p.relative_to(tmp_path / "dataset") for p in images]
    cached_images(moved, 16, tmp_path / "cache", progress=False, identity="stat")
    assert len(count_decodes) == 4

    os.utime(moved[1], ns=(0, 10**18))  # same bytes, new mtime
    cached_images(moved, 16, tmp_path / "cache", progress=False, identity="content")
    assert len(count_decodes) == 8  # first content-keyed build
    os.utime(moved[2], ns=(0, 2 * 10**18))
    cached_images(moved, 16, tmp_path / "cache", progress=False, identity="content")
    assert len(count_decodes) == 8  # content unchanged -> hit
    cached_images(moved, 16, tmp_path / "cache", progress=False, identity="stat")
    assert len(count_decodes) == 12  # stat identity sees the new mtime


def test_undecodable_file_leaves_no_partial_cache(images, tmp_path):
    broken = images[2].with_name("broken.png")
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(DataError, match="broken.png"):
        cached_images([*images, broken], 16, tmp_path / "cache", progress=False)
    assert list((tmp_path / "cache").iterdir()) == []


def test_missing_file_is_a_clear_error(images, tmp_path):
    with pytest.raises(DataError, match="nope.png does not exist"):
        cached_images([*images, images[0].with_name("nope.png")], 16, tmp_path / "cache", progress=False)


def test_damaged_cache_file_is_rebuilt(images, tmp_path, count_decodes):
    cache = tmp_path / "cache"
    cached_images(images, 16, cache, progress=False)
    target = cache_path(images, 16, cache)
    target.write_bytes(target.read_bytes()[:200])  # truncated
    again = cached_images(images, 16, cache, progress=False)
    assert len(count_decodes) == 8
    assert torch.all(again[1] == torch.tensor([250, 0, 128]).view(3, 1, 1))


def test_progress_lines(images, tmp_path, capsys):
    cached_images(images, 8, tmp_path / "cache", progress=True)
    cached_images(images, 8, tmp_path / "cache", progress=True)
    out = capsys.readouterr().out
    assert "caching 4 images at 8x8 px" in out and "4/4 images (100%)" in out
    assert "image cache hit" in out


# ----------------------------------------------------------------------------- augmentation


def test_normalize_is_imagenet_normalisation():
    expected = [(1.0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    assert torch.allclose(normalize(torch.ones(1, 3, 2, 2))[0, :, 0, 0], torch.tensor(expected), atol=1e-6)


def test_train_transform_is_random_but_keeps_shape():
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    a, b = train_transform()(image), train_transform()(image)
    assert a.shape == (3, 32, 32) and a.dtype == torch.float32
    assert not torch.equal(a, b)
    assert train_transform(16)(image).shape == (3, 16, 16)


def test_tensor_dataset_selects_indices_without_copying():
    images = torch.arange(5, dtype=torch.uint8).view(5, 1, 1, 1).expand(5, 3, 2, 2)
    dataset = TensorImageDataset(images, np.array([0, 1, 0, 1, 1]), indices=np.array([4, 1]))
    assert len(dataset) == 2
    image, label = dataset[0]
    assert image[0, 0, 0] == 4 and label.item() == 1 and label.dtype == torch.int64
    with pytest.raises(ValueError, match="3 labels for 5 images"):
        TensorImageDataset(images, [0, 1, 2])


def test_gpu_augment_flip_only_is_exact_per_sample():
    batch = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4) / 100.0
    generator = torch.Generator().manual_seed(0)
    flipped = gpu_augment(batch, hflip=1.0, vflip=0.0, degrees=0.0, translate=0.0, scale=(1.0, 1.0),
                          brightness=0.0, generator=generator)
    assert torch.allclose(flipped, batch.flip(-1), atol=1e-6)
    identity = gpu_augment(batch, hflip=0.0, vflip=0.0, degrees=0.0, translate=0.0, scale=(1.0, 1.0), brightness=0.0)
    assert torch.allclose(identity, batch, atol=1e-6)


def test_gpu_augment_draws_per_sample_parameters():
    theta = random_affine_theta(64, 32, 32, generator=torch.Generator().manual_seed(0))
    assert 10 < (theta[:, 0, 0] < 0).sum() < 54  # about half of the samples flipped horizontally
    assert len({round(v, 4) for v in theta[:, 0, 1].tolist()}) == 64  # a rotation per sample


def _one(value):
    return torch.tensor([float(value)])


def test_affine_theta_rotation_and_shift_by_hand():
    image = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)
    rotate = affine_theta(_one(90), _one(1), _one(0), _one(0), _one(1), _one(1), 4, 4)
    rotated = apply_affine(image, rotate)
    # 90 degrees about the centre, exactly on the pixel grid: a rot90 (direction: image y points down).
    assert torch.allclose(rotated, torch.rot90(image, k=-1, dims=(2, 3)), atol=1e-5)

    shift = affine_theta(_one(0), _one(1), _one(0.25), _one(0), _one(1), _one(1), 4, 4)
    shifted = apply_affine(image, shift)
    expected = torch.zeros_like(image)
    expected[..., 1:] = image[..., :3]  # a quarter of 4 px = 1 px to the right, zeros enter
    assert torch.allclose(shifted, expected, atol=1e-5)

    # Non-square: 90 degrees of a 2x4 image cannot fit, but 180 degrees is exact.
    wide = torch.arange(8, dtype=torch.float32).view(1, 1, 2, 4)
    half_turn = affine_theta(_one(180), _one(1), _one(0), _one(0), _one(1), _one(1), 2, 4)
    assert torch.allclose(apply_affine(wide, half_turn), wide.flip(2, 3), atol=1e-5)
