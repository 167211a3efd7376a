"""Parameter counts of paper B (Tables 5-10): the six configurations that reproduce exactly."""

import json

import pytest
import torch

from medlib.ammfm import create_model
from medlib.ammfm.params import count_config, count_parameters, param_table

MN, ST, RN, CN = "mobilenet_v3_small", "swin_v2_t", "resnet50", "convnext_tiny"


@pytest.mark.parametrize(
    "clinical, dermoscopy, expected",
    [
        (MN, None, 2_908_320),     # single MobileNetV3 (2.91M)
        (None, ST, 28_815_338),    # single Swin V2-T (28.82M)
        (None, RN, 26_676_160),    # single ResNet-50 (26.68M)
        (None, CN, 29_052_896),    # single ConvNeXt-T (29.05M)
        (ST, ST, 58_487_660),      # SFF: two Swins + concatenation (58.49M)
        (MN, ST, 32_482_338),      # AFF: MobileNetV3 + Swin + concatenation (32.48M)
    ],
)
def test_exact_counts_of_the_paper(clinical, dermoscopy, expected):
    assert count_config(clinical, dermoscopy, "concat") == expected


def test_meta_device_count_equals_a_real_cpu_model():
    with torch.device("meta"):
        meta = create_model(MN, None, "concat")
    real = create_model(MN, None, "concat")
    assert count_parameters(meta) == count_parameters(real) == 2_908_320


def test_unused_imagenet_classifier_is_part_of_the_count():
    with torch.device("meta"):
        model = create_model(None, ST, "concat", size="full")
    head = model.backbone.model.head  # Swin's own 768 -> 1000 classifier, never called
    assert head.weight.shape == (1000, 768)
    assert count_parameters(model) - count_parameters(model.backbone) == count_parameters(model.head)
    assert count_parameters(model.backbone) == 28_351_570


def test_param_table_rows_and_flags():
    rows = param_table()
    tables = {r["table"] for r in rows}
    assert tables == {"5", "6", "7", "9", "10"}
    by_label = {(r["table"], r["label"]): r for r in rows}
    aff_aab = by_label[("6", "AFF (MN + ST) + AAB")]
    assert aff_aab["ours_m"] == 33.06 and aff_aab["match"] is True
    # every concatenation / single-modal row with a printed count matches
    for r in rows:
        if r["fusion"] == "concat" and r["paper_m"] is not None:
            assert r["match"], r
    sff_bab = by_label[("9", "SFF + BAB")]
    assert sff_bab["match"] is False and "design" in sff_bab["note"]
    assert by_label[("7", "Baseline: MN + MN, concatenation")]["ours"] == 6_477_016


def test_cli_params_json(capsys):
    from medlib.cli import main

    assert main(["ammfm", "params", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == json.loads(json.dumps(param_table()))
