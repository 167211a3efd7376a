"""Paper A's batches come from the images held on the device: every image once per epoch, seeded, augmented there."""

import numpy as np
import pytest
import torch

from medlib.data.augment import IMAGENET_MEAN, IMAGENET_STD
from medlib.experiments.paper_a import AUGMENTATION, DeviceBatches
from medlib.train.state import seed_epoch


def images_and_labels(n=23, size=8):
    # every image is constant with value = its index, so a batch says which images it holds
    values = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1)
    return values.expand(n, 3, size, size).contiguous(), np.arange(n) % 3


def image_ids(x: torch.Tensor) -> list[int]:
    """Which image each row of a normalised, un-augmented batch is (undo the normalisation)."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x * std + mean).mul(255).round()[:, 0, 0, 0].long().tolist()


def test_an_evaluation_pass_is_the_indices_in_order_unaugmented_and_normalised():
    images, labels = images_and_labels()
    indices = np.array([4, 9, 2, 17, 11, 0, 22])
    batches = DeviceBatches(images, labels, indices, 3, train=False, seed=0, device="cpu")
    got = list(batches)
    assert [len(y) for _, y in got] == [3, 3, 1] and len(batches) == 3
    x = torch.cat([b[0] for b in got])
    assert x.dtype == torch.float32 and image_ids(x) == indices.tolist()
    # hand-computed: image 4, red channel, normalised with the ImageNet mean/std
    assert float(x[0, 0, 0, 0]) == pytest.approx((4 / 255 - 0.485) / 0.229, abs=1e-6)
    assert torch.cat([b[1] for b in got]).tolist() == (indices % 3).tolist()
    assert all(torch.equal(a[0], b[0]) for a, b in zip(got, batches))  # deterministic


def test_a_training_epoch_is_a_seeded_permutation_of_every_image():
    images, labels = images_and_labels()
    indices = np.arange(3, 23)
    train = DeviceBatches(images, labels, indices, 6, train=True, seed=5, device="cpu")
    # the order alone (un-augmented): the same generator state as the training pass
    seed_epoch(5, 0, train)
    order = train.order().tolist()
    assert sorted(order) == indices.tolist()  # each image exactly once per epoch
    seed_epoch(5, 0, train)
    epoch0 = [(x.clone(), y.clone()) for x, y in train]
    seed_epoch(5, 0, train)
    again = list(train)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(epoch0, again))
    assert torch.cat([y for _, y in epoch0]).tolist() == [i % 3 for i in order]  # labels follow the images
    seed_epoch(5, 1, train)
    assert train.order().tolist() != order  # another epoch, another order
    x = torch.cat([b[0] for b in epoch0])
    assert x.shape == (20, 3, 8, 8) and x.dtype == torch.float32 and x.device.type == "cpu"
    # augmented: the constant images are warped (zero-padded borders) and brightened
    plain = DeviceBatches(images, labels, order, 20, train=False, seed=0, device="cpu")
    assert not torch.equal(x, next(iter(plain))[0])


def test_the_augmentation_keeps_paper_as_magnitudes():
    assert AUGMENTATION == {"hflip": 0.5, "vflip": 0.5, "degrees": 15.0, "translate": 0.1, "scale": (0.9, 1.1),
                            "brightness": 0.2}


@pytest.mark.parametrize("train", [False, True])
def test_batches_are_placed_on_the_requested_device(train):
    images, labels = images_and_labels()
    batches = DeviceBatches(images, labels, np.arange(10), 4, train=train, seed=0, device=torch.device("meta"))
    for x, y in batches:
        assert x.device.type == "meta" and y.device.type == "meta"
    assert batches.images.device.type == "meta"


def test_max_steps_caps_a_pass():
    images, labels = images_and_labels()
    batches = DeviceBatches(images, labels, np.arange(23), 4, train=True, seed=0, device="cpu", max_steps=2)
    assert len(batches) == 2 and len(list(batches)) == 2
