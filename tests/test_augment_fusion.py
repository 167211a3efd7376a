"""Paper B's training augmentation (medlib.data.augment.fusion_augment_pair): FusionM4Net's
probabilities and magnitudes, the same geometry on both images, photometric changes on the
clinical image only — checked with real numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlib.data.augment import FUSION_RECIPE, draw_fusion_params, fusion_augment_pair

STEPS = ("vflip", "hflip", "shift_scale_rotate", "rotate90", "contrast", "brightness", "gamma")


def identity_params(n: int) -> dict:
    params = draw_fusion_params(n, generator=torch.Generator().manual_seed(0))
    params.update({"vflip": torch.ones(n), "hflip": torch.ones(n), "angle": torch.zeros(n), "scale": torch.ones(n),
                   "shift_x": torch.zeros(n), "shift_y": torch.zeros(n), "quarter_turns": torch.zeros(n, dtype=torch.long),
                   "contrast": torch.ones(n), "brightness": torch.zeros(n), "gamma": torch.ones(n)})
    return params


def ramp(n=2, side=16) -> torch.Tensor:
    """Distinct values everywhere, in [0, 1]: a transform cannot hide."""
    x = torch.arange(n * 3 * side * side, dtype=torch.float32).reshape(n, 3, side, side)
    return x / x.max()


@pytest.fixture(scope="module")
def many():
    return draw_fusion_params(40_000, generator=torch.Generator().manual_seed(1))


def test_block_and_each_step_run_with_fusionm4nets_probabilities(many):
    block = torch.stack([many[f"on/{s}"] for s in STEPS]).any(0).float().mean()
    # the block is on with p = 0.5; a sample with no step on despite the block: 0.5 * 0.5^7
    assert float(block) == pytest.approx(0.5 * (1 - 0.5 ** 7), abs=0.01)
    for step in STEPS:
        assert float(many[f"on/{step}"].float().mean()) == pytest.approx(0.25, abs=0.01), step


def test_magnitudes_span_fusionm4nets_ranges_and_no_more(many):
    on = many["on/shift_scale_rotate"]
    angle, scale = many["angle"][on], many["scale"][on]
    shift = torch.cat([many["shift_x"][on], many["shift_y"][on]])
    assert angle.abs().max() <= 45 and angle.abs().max() > 44.5  # ±45°
    assert scale.min() >= 0.5 and scale.max() <= 1.5 and scale.min() < 0.51 and scale.max() > 1.49  # 1 ± 0.5
    assert shift.abs().max() <= 0.0625 and shift.abs().max() > 0.062
    assert set(many["quarter_turns"][many["on/rotate90"]].tolist()) == {0, 1, 2, 3}
    for key, low, high in (("contrast", 0.8, 1.2), ("brightness", -0.2, 0.2), ("gamma", 0.8, 1.2)):
        v = many[key][many[f"on/{key}"]]
        assert v.min() >= low and v.max() <= high and v.min() < low + 0.01 and v.max() > high - 0.01, key
    # a step that does not run is the identity
    off = ~many["on/shift_scale_rotate"]
    assert (many["angle"][off] == 0).all() and (many["scale"][off] == 1).all()
    assert FUSION_RECIPE.shift == 0.0625 and FUSION_RECIPE.rotate == 45 and FUSION_RECIPE.scale == 0.5


def test_both_images_of_a_pair_get_the_same_geometry(many):
    x = ramp(n=64)
    params = draw_fusion_params(64, generator=torch.Generator().manual_seed(3))
    params.update({"contrast": torch.ones(64), "brightness": torch.zeros(64), "gamma": torch.ones(64)})
    c, d = fusion_augment_pair(x, x.clone(), params=params)
    assert not torch.allclose(c, x)  # something moved
    torch.testing.assert_close(c, d, rtol=0, atol=0)


def test_photometric_steps_touch_the_clinical_image_only_with_the_drawn_factors():
    x = ramp(n=2)
    params = identity_params(2)
    params.update({"contrast": torch.tensor([1.2, 0.8]), "brightness": torch.tensor([-0.1, 0.2]),
                   "gamma": torch.tensor([0.8, 1.2])})
    c, d = fusion_augment_pair(x, x.clone(), params=params)
    torch.testing.assert_close(d, x, rtol=0, atol=1e-6)  # geometry is the identity, no photometry
    # albumentations' order: contrast (×), brightness (+ fraction of the full range), gamma (**), clipped to [0, 1]
    expected = torch.stack([((x[0] * 1.2).clamp(0, 1) - 0.1).clamp(0, 1) ** 0.8,
                            ((x[1] * 0.8).clamp(0, 1) + 0.2).clamp(0, 1) ** 1.2])
    torch.testing.assert_close(c, expected, rtol=0, atol=1e-5)


def test_flips_quarter_turns_and_shifts_move_pixels_exactly():
    x = ramp(n=1, side=32)
    cases = [({"hflip": torch.tensor([-1.0])}, torch.flip(x, dims=[3])),
             ({"vflip": torch.tensor([-1.0])}, torch.flip(x, dims=[2]))]
    for turns in (1, 2, 3):
        cases.append(({"quarter_turns": torch.tensor([turns])}, None))
    for change, expected in cases:
        params = identity_params(1)
        params.update(change)
        c, d = fusion_augment_pair(x, x.clone(), params=params)
        if expected is None:  # a quarter turn is an exact 90° rotation of the square grid, one way or the other
            k = int(change["quarter_turns"])
            expected = min((torch.rot90(x, k, dims=(2, 3)), torch.rot90(x, -k, dims=(2, 3))),
                           key=lambda e: float((e - d).abs().max()))
        torch.testing.assert_close(d, expected, rtol=0, atol=1e-5)
    # a shift of 0.0625 of a 32-px side moves the content by exactly 2 px
    params = identity_params(1)
    params["shift_x"] = torch.tensor([0.0625])
    _, d = fusion_augment_pair(x, x.clone(), params=params)
    torch.testing.assert_close(d[..., 2:], x[..., :-2], rtol=0, atol=1e-5)


def test_scale_and_rotation_about_the_centre():
    side = 33  # odd: a centre pixel exists
    x = torch.zeros(1, 3, side, side)
    x[..., 16, 16] = 1.0
    x[..., 16, 24] = 0.5  # 8 px right of the centre
    params = identity_params(1)
    params.update({"scale": torch.tensor([0.5]), "angle": torch.tensor([90.0])})
    _, d = fusion_augment_pair(x, x.clone(), params=params)
    assert float(d[0, 0, 16, 16]) == pytest.approx(1.0, abs=1e-5)  # the centre stays
    # the marker 8 px right of the centre lands 4 px (scale 0.5) below it (rotation by 90° on the
    # grid whose y axis points down), and nothing else lights up
    assert float(d[0, 0, 20, 16]) == pytest.approx(0.5, abs=1e-5)
    assert float(d[0, 0].sum()) == pytest.approx(1.5, abs=1e-4)


def test_the_augmentation_runs_where_the_batch_is():
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        x = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8, device=device)
        c, d = fusion_augment_pair(x, x.clone())
        assert c.device.type == d.device.type == torch.device(device).type
        assert c.dtype == torch.float32 and 0 <= float(c.min()) and float(c.max()) <= 1


def test_mismatched_or_non_square_batches_are_refused():
    with pytest.raises(ValueError, match="same shape"):
        fusion_augment_pair(torch.zeros(2, 3, 8, 8), torch.zeros(3, 3, 8, 8))
    with pytest.raises(ValueError, match="square"):
        fusion_augment_pair(torch.zeros(2, 3, 8, 12), torch.zeros(2, 3, 8, 12))
