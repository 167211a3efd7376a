"""Training steps that never wait for the GPU: host reads counted per step, skips still reported."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medlib.ammfm.loss import ammfm_loss
from medlib.ammfm.tasks import NUM_CLASSES
from medlib.data.augment import draw_fusion_params, fusion_augment_pair, fusion_theta, normalize
from medlib.experiments import paper_b
from medlib.experiments.paper_a.batches import DeviceBatches
from medlib.models import Classifier, create_backbone
from medlib.profiles import SMOKE
from medlib.train import TrainConfig, fit
from medlib.train.host_sync import count_host_syncs, syncs_per_step
from medlib.train.loop import weighted_cross_entropy

CPU = torch.device("cpu")
CFG = TrainConfig(lr=1e-3, epochs=2, device="cpu", log_every=0)


def test_the_counter_counts_reads_from_our_code_only():
    t = torch.ones(3)
    with count_host_syncs() as counts:
        t.sum().item(), bool(t.all()), float(t[0]), t.tolist(), t.numpy()
        torch.optim.Adam([nn.Parameter(t.clone())]).step()  # torch's own reads (Adam's step counters): not ours
    assert counts == {"item": 1, "__bool__": 1, "__float__": 1, "tolist": 1, "numpy": 1}
    assert t.sum().item() == 3.0  # the methods are restored


def test_paper_a_steps_read_back_at_most_once_per_epoch_plus_the_loader_draw():
    """100 steps of test_resnet on Paper A's device batches: 2 reads (the epoch's counters; the pass's CPU seed)."""
    torch.manual_seed(0)
    images, labels = torch.randint(0, 256, (200, 3, 16, 16), dtype=torch.uint8), torch.randint(0, 4, (200,))
    batches = DeviceBatches(images, labels, range(200), 2, train=True, seed=0, device=CPU)
    model = Classifier(create_backbone("test_resnet"), 4, arch="test_resnet")
    rate = syncs_per_step(model, batches, weighted_cross_entropy(None, CPU), to_device=lambda b, d: b, cfg=CFG)
    assert rate == pytest.approx(0.02)


def _fusion_batch(batch, device):
    (clinical, dermoscopy), labels = batch
    c, d = fusion_augment_pair(clinical.to(device), dermoscopy.to(device))
    return (normalize(c), normalize(d)), labels.to(device)


def test_paper_b_steps_read_back_once_per_epoch():
    config = next(c for c in paper_b.all_configs(SMOKE) if not c.single_modal)
    g = torch.Generator().manual_seed(0)

    def pair():
        return torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=g)

    batches = [((pair(), pair()), torch.stack([torch.randint(0, k, (2,), generator=g) for k in NUM_CLASSES], 1))
               for _ in range(50)]
    torch.manual_seed(0)
    rate = syncs_per_step(config.build("tiny", False), batches, ammfm_loss, to_device=_fusion_batch, cfg=CFG)
    assert rate == pytest.approx(1 / 50)


def test_the_old_step_would_fail_the_bound():
    """The counter sees a read in a step (what the loop did before: ``bool(isfinite(loss))``)."""
    def reading_loss(out, y):
        loss = F.cross_entropy(out, y)
        bool(torch.isfinite(loss))
        return loss

    x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
    loader = [(x[i:i + 2], y[i:i + 2]) for i in range(0, 64, 2)]
    rate = syncs_per_step(nn.Linear(6, 3), loader, reading_loss, to_device=lambda b, d: b, cfg=CFG)
    assert rate == pytest.approx(1 + 1 / 32)


def test_a_planted_non_finite_loss_is_skipped_and_reported_without_reads():
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
    loader = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 64, 8)]
    seen = []

    def planted(out, yb):
        seen.append(model.weight.detach().clone())
        loss = F.cross_entropy(out, yb)
        return loss * math.nan if len(seen) == 3 else loss

    with count_host_syncs() as counts:
        history = fit(model, loader, TrainConfig(lr=1e-2, epochs=1, device="cpu", log_every=0), loss_fn=planted)
    assert history.records[0]["skipped_steps"] == 1
    assert torch.equal(seen[2], seen[3]) and not torch.equal(seen[1], seen[2])
    assert counts == {"tolist": 1}  # the epoch's one read (8 steps, no validation)


def test_fusion_theta_inverts_in_closed_form():
    """The closed-form inverse matches torch.linalg.inv on random draws (incl. flips and quarter turns)."""
    params = draw_fusion_params(64, generator=torch.Generator().manual_seed(1))
    theta = fusion_theta(params)
    # rebuild a forward matrix and check theta @ forward = identity on the 2 x 3 part
    n = 64
    a, s = params["angle"] * math.pi / 180, params["scale"]
    ssr = torch.zeros(n, 3, 3)
    ssr[:, 0, 0], ssr[:, 0, 1], ssr[:, 1, 0], ssr[:, 1, 1] = s * a.cos(), -s * a.sin(), s * a.sin(), s * a.cos()
    ssr[:, 0, 2], ssr[:, 1, 2], ssr[:, 2, 2] = 2 * params["shift_x"], 2 * params["shift_y"], 1
    q = params["quarter_turns"].double() * math.pi / 2
    c, si = q.cos().round().float(), q.sin().round().float()
    turn = torch.zeros(n, 3, 3)
    turn[:, 0, 0], turn[:, 0, 1], turn[:, 1, 0], turn[:, 1, 1], turn[:, 2, 2] = c, -si, si, c, 1
    flips = torch.diag_embed(torch.stack([params["hflip"], params["vflip"], torch.ones(n)], 1))
    forward = turn @ ssr @ flips
    torch.testing.assert_close(theta, torch.linalg.inv(forward)[:, :2, :], atol=1e-5, rtol=1e-5)
    with count_host_syncs() as counts:
        fusion_theta(params)
    assert not counts
