"""Asymmetric (AAB) and bidirectional (BAB) attention blocks, paper B Sec. 3.2."""

import math

import pytest
import torch

from medlib.ammfm import AsymmetricAttentionBlock, BidirectionalAttentionBlock, ConfigError


def _maps(b=2, cc=4, cd=6, h=3, w=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, cc, h, w, generator=g), torch.randn(b, cd, h, w, generator=g)


def test_aab_matches_equation_1_written_out():
    torch.manual_seed(0)
    block = AsymmetricAttentionBlock(3, zero_init_value=False).eval()
    clinical, derm = _maps(b=1, cc=3, cd=3, h=2, w=2)
    with torch.no_grad():
        out, attn = block(clinical, derm, return_attention=True)
    # by hand, position by position: M[i, j] = softmax_j(s * q_i . k_j); out_i = sum_j M[i,j] v_j + D_i
    with torch.no_grad():
        q = block.query(clinical)[0].reshape(3, 4)
        k = block.key(clinical)[0].reshape(3, 4)
        v = block.value(derm)[0].reshape(3, 4)
    s = 1 / math.sqrt(3)
    expected = torch.empty(3, 4)
    for i in range(4):
        scores = torch.tensor([s * float(q[:, i] @ k[:, j]) for j in range(4)])
        weights = torch.exp(scores) / torch.exp(scores).sum()
        torch.testing.assert_close(attn[0, i], weights)
        expected[:, i] = sum(weights[j] * v[:, j] for j in range(4)) + derm[0].reshape(3, 4)[:, i]
    torch.testing.assert_close(out[0].reshape(3, 4), expected)
    # the fused (scaled_dot_product_attention) path gives the same map
    torch.testing.assert_close(block(clinical, derm), out)


def test_aab_keeps_the_dermoscopy_shape_and_aligns_clinical_channels_and_size():
    block = AsymmetricAttentionBlock(6, clinical_channels=4)
    clinical = torch.randn(2, 4, 7, 9)  # other channels and grid than the dermoscopic map
    derm = torch.randn(2, 6, 3, 5)
    out, attn = block(clinical, derm, return_attention=True)
    assert out.shape == derm.shape
    assert attn.shape == (2, 15, 15)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 15))
    assert isinstance(block.project, torch.nn.Conv2d) and block.project.in_channels == 4
    assert isinstance(AsymmetricAttentionBlock(6).project, torch.nn.Identity)


def test_zeroed_value_conv_returns_the_dermoscopic_map_unchanged():
    block = AsymmetricAttentionBlock(6, clinical_channels=4, zero_init_value=False)
    clinical, derm = _maps()
    assert not torch.equal(block(clinical, derm), derm)  # random value conv: a real change
    with torch.no_grad():
        block.value.weight.zero_()
        block.value.bias.zero_()
    assert torch.equal(block(clinical, derm), derm)


def test_default_block_starts_as_identity_and_still_gets_gradients():
    block = AsymmetricAttentionBlock(6, clinical_channels=4)
    clinical, derm = _maps()
    out = block(clinical, derm)
    assert torch.equal(out, derm)
    out.pow(2).sum().backward()
    assert block.value.weight.grad.abs().sum() > 0


def test_aab_attention_depends_on_the_clinical_map_only():
    block = AsymmetricAttentionBlock(6, clinical_channels=4, zero_init_value=False)
    clinical, derm = _maps(seed=1)
    _, m1 = block(clinical, derm, return_attention=True)
    _, m2 = block(clinical, derm * 3 + 1, return_attention=True)  # other dermoscopy
    torch.testing.assert_close(m1, m2)
    _, m3 = block(clinical + torch.randn_like(clinical), derm, return_attention=True)  # other clinical
    assert (m1 - m3).abs().max() > 1e-3
    torch.testing.assert_close(block.attention_map(clinical, derm.shape[-2:]), m1)


def test_unscaled_option_is_the_paper_literal_form():
    assert AsymmetricAttentionBlock(64, scaled=False).scale == 1.0
    assert AsymmetricAttentionBlock(64).scale == pytest.approx(1 / 8)


def test_bab_refines_both_maps_and_keeps_their_shapes():
    block = BidirectionalAttentionBlock(6, clinical_channels=4, zero_init_value=False)
    clinical, derm = _maps()
    c2, d2, (m_c, m_d) = block(clinical, derm, return_attention=True)
    assert c2.shape == clinical.shape and d2.shape == derm.shape
    assert (c2 - clinical).abs().max() > 1e-3 and (d2 - derm).abs().max() > 1e-3
    # the dermoscopy direction is exactly the asymmetric block inside it
    torch.testing.assert_close(d2, block.to_dermoscopy(clinical, derm))
    # the clinical direction's map comes from the dermoscopic map only
    _, _, (_, m_d2) = block(clinical * 2 - 1, derm, return_attention=True)
    torch.testing.assert_close(m_d, m_d2)
    assert m_c.shape == m_d.shape == (2, 15, 15)


def test_bab_has_about_twice_the_parameters_of_aab():
    def n(m):
        return sum(p.numel() for p in m.parameters())

    aab, bab = AsymmetricAttentionBlock(192), BidirectionalAttentionBlock(192)
    assert n(aab) == 3 * (192 * 192 + 192)
    assert n(bab) == 2 * n(aab)


def test_wrong_channels_fail_clearly():
    block = AsymmetricAttentionBlock(6, clinical_channels=4)
    with pytest.raises(ConfigError, match="clinical 4 and dermoscopy 6 channels, got 5 and 6"):
        block(torch.randn(1, 5, 3, 3), torch.randn(1, 6, 3, 3))
