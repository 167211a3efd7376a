"""MultiModalNet / SingleModalNet, the loss of Eq. 2-3, and test-time augmentation."""

import math

import pytest
import torch

from medlib.ammfm import (
    NUM_CLASSES, ConfigError, MultiModalNet, SingleModalNet, ammfm_loss, create_model, tta_predict,
)
from medlib.ammfm.loss import branch_loss
from medlib.ammfm.tta import TTA_VIEWS, apply_view


def _targets(b, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, n, (b,), generator=g) for n in NUM_CLASSES], dim=1)


@pytest.mark.parametrize("fusion", ["concat", "aab", "bab"])
def test_tiny_forward_backward_at_64px(fusion):
    torch.manual_seed(0)
    model = MultiModalNet(fusion=fusion, size="tiny", zero_init_value=False)
    clinical, derm = torch.randn(4, 3, 64, 64), torch.randn(4, 3, 64, 64)
    out = model(clinical, derm)
    assert set(out) == {"clinical", "dermoscopy", "fusion"}
    for logits in out.values():
        assert [tuple(z.shape) for z in logits] == [(4, n) for n in NUM_CLASSES]
    loss = ammfm_loss(out, _targets(4))
    loss.backward()
    assert math.isfinite(loss.item())
    blocks = list(model.blocks.values())
    assert len(blocks) == (0 if fusion == "concat" else 2)
    for block in blocks:  # the attention blocks are trained by the loss
        clinical_to_derm = block.to_dermoscopy if fusion == "bab" else block
        assert clinical_to_derm.query.weight.grad.abs().sum() > 0
        if fusion == "bab":  # the reverse direction too
            assert block.query.weight.grad.abs().sum() > 0 and block.value.weight.grad.abs().sum() > 0
    # the clinical backbone receives gradient through its head and the fusion head
    assert model.clinical.model.features[0][0].weight.grad.abs().sum() > 0


def test_a_few_adam_steps_fit_a_fixed_batch():
    # gradient reaches every part that matters: the loss on one batch must fall clearly
    torch.manual_seed(0)
    model = MultiModalNet(fusion="aab", size="tiny")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    clinical, derm, y = torch.randn(8, 3, 64, 64), torch.randn(8, 3, 64, 64), _targets(8)
    losses = []
    for _ in range(8):
        loss = ammfm_loss(model(clinical, derm), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
    assert model.blocks["stage1"].value.weight.abs().sum() > 0  # zero-initialised, now trained


def test_aab_model_returns_attention_maps_for_the_chosen_stages():
    torch.manual_seed(0)
    model = MultiModalNet(fusion="aab", stages=(1, 3), size="tiny").eval()
    out = model(torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64), return_attention=True)
    assert set(out["attention"]) == {"stage1", "stage3"}
    assert out["attention"]["stage1"].shape == (2, 64, 64)  # 8x8 grid at stride 8
    assert out["attention"]["stage3"].shape == (2, 4, 4)    # 2x2 grid at stride 32


def test_zero_initialised_blocks_leave_the_concat_model_unchanged():
    # the AAB model with its blocks at identity computes exactly the concat model
    torch.manual_seed(0)
    aab = MultiModalNet(fusion="aab", size="tiny").eval()
    concat = MultiModalNet(fusion="concat", size="tiny").eval()
    concat.load_state_dict({k: v for k, v in aab.state_dict().items() if not k.startswith("blocks.")})
    x, y = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    for a, b in zip(aab(x, y)["fusion"], concat(x, y)["fusion"]):
        torch.testing.assert_close(a, b)


def test_single_modal_model_uses_only_its_modality():
    torch.manual_seed(0)
    model = SingleModalNet("mobilenet_v3_small", "clinical", size="tiny").eval()
    x = torch.randn(2, 3, 64, 64)
    out = model(x, None)
    assert list(out) == ["clinical"] and len(out["clinical"]) == 8
    with pytest.raises(ConfigError, match="reads the clinical image"):
        model(None, x)
    assert isinstance(create_model(None, "swin_v2_t", "concat", size="tiny"), SingleModalNet)
    with pytest.raises(ConfigError, match="no fusion block"):
        create_model(None, "swin_v2_t", "aab", size="tiny")
    with pytest.raises(ConfigError, match=r"stages \[7\] out of range"):
        MultiModalNet(size="tiny", stages=(7,))


def test_loss_with_uniform_logits_is_log_of_class_counts():
    b = 3
    out = {br: [torch.zeros(b, n) for n in NUM_CLASSES] for br in ("clinical", "dermoscopy", "fusion")}
    y = _targets(b)
    per_branch = sum(math.log(n) for n in NUM_CLASSES) / 8
    assert ammfm_loss(out, y).item() == pytest.approx(3 * per_branch)
    assert ammfm_loss(out, y, reduction="sum").item() == pytest.approx(3 * b * 8 * per_branch)
    single = {"dermoscopy": out["dermoscopy"], "attention": {}}
    assert ammfm_loss(single, y).item() == pytest.approx(per_branch)


def test_branch_loss_hand_computed():
    logits = [torch.zeros(1, n) for n in NUM_CLASSES]
    logits[0] = torch.tensor([[2.0, 0.0, 0.0, 0.0, 0.0]])
    y = torch.zeros(1, 8, dtype=torch.long)  # DIAG target = class 0
    ce_diag = -math.log(math.exp(2) / (math.exp(2) + 4))
    expected = (ce_diag + sum(math.log(n) for n in NUM_CLASSES[1:])) / 8
    assert branch_loss(logits, y).item() == pytest.approx(expected)


def test_loss_rejects_bad_targets():
    out = {"fusion": [torch.zeros(2, n) for n in NUM_CLASSES]}
    with pytest.raises(ConfigError, match=r"\(batch, 8\)"):
        ammfm_loss(out, torch.zeros(2, 7, dtype=torch.long))
    with pytest.raises(ConfigError, match="int64"):
        ammfm_loss(out, torch.zeros(2, 8))


def test_tta_views_rotate_and_flip_as_named():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    got = {v: apply_view(x, v)[0, 0].tolist() for v in TTA_VIEWS}
    assert got == {
        "identity": [[1, 2], [3, 4]],
        "vflip": [[3, 4], [1, 2]],
        "hflip": [[2, 1], [4, 3]],
        "vhflip": [[4, 3], [2, 1]],
        "rot90_cw": [[3, 1], [4, 2]],
        "rot90_ccw": [[2, 4], [1, 3]],
    }


class _Recorder(torch.nn.Module):
    """Logits = the top-left pixel of each image; remembers what it was shown."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, clinical, dermoscopy):
        self.seen.append((clinical.clone(), dermoscopy.clone(), self.training))
        c, d = clinical[:, 0, 0, :1], dermoscopy[:, 0, 0, :1]
        return {"clinical": [torch.cat([c, -c], 1)] * 8, "dermoscopy": [torch.cat([d, -d], 1)] * 8}


def test_tta_applies_each_view_to_both_images_and_averages():
    img = torch.arange(4.0).view(1, 1, 2, 2)  # top-left pixel differs in every view
    model = _Recorder().train()
    out = tta_predict(model, img, img * 10, views=6, average="logit")
    assert len(model.seen) == 6 and model.training  # mode restored
    for (c, d, training), view in zip(model.seen, TTA_VIEWS):
        assert not training
        assert torch.equal(c, apply_view(img, view)) and torch.equal(d, apply_view(img * 10, view))
    corners = torch.tensor([float(apply_view(img, v)[0, 0, 0, 0]) for v in TTA_VIEWS])
    torch.testing.assert_close(out["clinical"][0], torch.tensor([[corners.mean(), -corners.mean()]]))
    # probability averaging: softmax per view, then the mean, returned as log-probabilities
    prob = tta_predict(model, img, img, views=6)["clinical"][0].exp()
    per_view = torch.softmax(torch.stack([corners, -corners], 1), 1)
    torch.testing.assert_close(prob, per_view.mean(0, keepdim=True))


def test_tta_on_the_tiny_model_keeps_shapes():
    torch.manual_seed(0)
    model = MultiModalNet(size="tiny")
    out = tta_predict(model, torch.randn(3, 3, 64, 64), torch.randn(3, 3, 64, 64), views=6)
    assert set(out) == {"clinical", "dermoscopy", "fusion"}
    for logits in out.values():
        assert [tuple(z.shape) for z in logits] == [(3, n) for n in NUM_CLASSES]
        for z in logits:
            torch.testing.assert_close(z.exp().sum(1), torch.ones(3))
    with pytest.raises(ConfigError, match="views=7"):
        tta_predict(model, None, None, views=7)


def test_full_profile_dry_run_real_architectures_at_224():
    """The real AMMFM (MobileNetV3-S + Swin V2-T + AABs), 224 px, one optimiser step on CPU."""
    torch.manual_seed(0)
    model = MultiModalNet(size="full", pretrained=False)
    opt = torch.optim.Adam(model.parameters(), lr=3e-5)
    clinical, derm, y = torch.randn(2, 3, 224, 224), torch.randn(2, 3, 224, 224), _targets(2)
    before = model.blocks["stage2"].value.weight.detach().clone()
    loss = ammfm_loss(model(clinical, derm), y)
    loss.backward()
    opt.step()
    # ≈ 3 branches x mean ln(n_k) at initialisation
    assert abs(loss.item() - 3 * sum(math.log(n) for n in NUM_CLASSES) / 8) < 1.0
    assert not torch.equal(model.blocks["stage2"].value.weight, before)
