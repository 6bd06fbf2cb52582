"""summary(): parameter totals and MACs against formulas and published counts."""
import numpy as np
import pytest

import convnet as cn
import convnet.nn as nn
from convnet.analysis import count_macs, summary

from .conftest import needs


def _tiny():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2),
                         nn.Flatten(), nn.Linear(8 * 7 * 7, 5))


def test_rows_shapes_params_and_macs_of_a_small_net():
    m = _tiny()
    s = summary(m, (3, 16, 16))
    kinds = [r.kind for r in s.rows]
    assert kinds == ["Conv2d", "ReLU", "Conv2d", "Flatten", "Linear"]
    assert [r.output_shape for r in s.rows] == [(1, 8, 16, 16), (1, 8, 16, 16), (1, 8, 7, 7),
                                                (1, 392), (1, 5)]
    assert [r.params for r in s.rows] == [3 * 8 * 9 + 8, 0, 8 * 8 * 9 + 8, 0, 392 * 5 + 5]
    assert s.total_params == sum(p.numpy().size for p in m.parameters()) == s.trainable_params
    assert [r.macs for r in s.rows] == [8 * 256 * 3 * 9, 0, 8 * 49 * 8 * 9, 0, 392 * 5]
    assert s.total_macs == sum(r.macs for r in s.rows)
    assert [r.receptive_field for r in s.rows] == [3, 3, 5, None, None]
    assert [r.jump for r in s.rows[:3]] == [1, 1, 2]
    assert s.receptive_field == 5
    assert s.activation_bytes == sum(int(np.prod(r.output_shape)) * 4 for r in s.rows)
    assert s.param_bytes == 4 * s.total_params


def test_batch_size_scales_macs_not_params():
    m = _tiny()
    a, b = summary(m, (3, 16, 16)), summary(m, (3, 16, 16), batch_size=3)
    assert b.total_macs == 3 * a.total_macs and b.total_params == a.total_params


def test_table_prints_every_layer_and_totals():
    m = _tiny()
    text = str(summary(m, (3, 16, 16)))
    assert "Conv2d" in text and "Linear" in text and "RF" in text
    assert f"Total params: {3 * 8 * 9 + 8 + 8 * 8 * 9 + 8 + 392 * 5 + 5:,}" in text
    assert all(len(line) <= 100 for line in text.splitlines())


@pytest.mark.parametrize("groups, dilation", [(1, 1), (2, 1), (4, 2), (8, 3)])
def test_grouped_and_dilated_conv_macs(groups, dilation):
    conv = nn.Conv2d(8, 16, 3, dilation=dilation, groups=groups, padding=dilation)
    s = summary(nn.Sequential(conv), (8, 13, 11))
    assert s.rows[0].output_shape == (1, 16, 13, 11)
    # dilation spreads the taps without adding any: same count as a dense 3x3
    assert s.total_macs == 16 * 13 * 11 * (8 // groups) * 9
    assert s.total_params == 16 * (8 // groups) * 9 + 16


def test_transposed_conv_macs_count_per_input_pixel():
    m = nn.Sequential(nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2))
    s = summary(m, (4, 5, 7))
    assert s.rows[0].output_shape == (1, 6, 11, 15)
    assert s.total_macs == 4 * 5 * 7 * (6 // 2) * 9


def test_shared_module_counted_once_in_totals():
    conv = nn.Conv2d(2, 2, 3, padding=1)
    m = nn.Sequential(conv, nn.ReLU(), conv)
    s = summary(m, (2, 6, 6))
    assert s.total_params == 2 * 2 * 9 + 2
    assert len([r for r in s.rows if r.kind == "Conv2d"]) >= 1
    assert s.total_macs == 2 * (2 * 36 * 2 * 9)


def test_summary_restores_training_mode_and_errors():
    m = _tiny()
    m.train()
    summary(m, (3, 16, 16))
    assert all(mod.training for mod in m.modules())
    with pytest.raises(ValueError, match="input_shape"):
        summary(m, (16,))


def test_count_macs_zero_for_pointwise_layers():
    x = cn.zeros(1, 3, 4, 4)
    assert count_macs(nn.ReLU(), (x,), x) == 0


def test_lenet5_counts():
    if not hasattr(nn, "AvgPool2d"):
        pytest.skip("needs nn.AvgPool2d")
    from convnet.models import create

    s = summary(create("lenet5"), (1, 28, 28))
    assert s.total_params == 61_706
    assert s.total_macs == 117_600 + 240_000 + 48_000 + 10_080 + 840  # 0.42M (PERF-NOTES)
    assert s.receptive_field == 16


@needs("BatchNorm2d", "AdaptiveAvgPool2d")
def test_resnet20_published_counts():
    from convnet.models import create

    s = summary(create("resnet20", in_channels=3), (3, 32, 32))
    assert abs(s.total_params - 0.27e6) / 0.27e6 < 0.01
    assert s.total_params == 269_722  # option-A shortcuts (PERF-NOTES)
    assert abs(s.total_macs - 40.6e6) / 40.6e6 < 0.01


@needs("BatchNorm2d", "AdaptiveAvgPool2d")
def test_mobilenet_v1_published_counts():
    from convnet.models import create

    s = summary(create("mobilenet_v1", num_classes=1000, in_channels=3), (3, 224, 224))
    assert abs(s.total_params - 4.23e6) / 4.23e6 < 0.01
    assert abs(s.total_macs - 569e6) / 569e6 < 0.01


def test_float64_models_are_traced_in_float64():
    m = nn.Sequential(nn.Conv2d(1, 2, 3, dtype=np.float64))
    s = summary(m, (1, 8, 8))
    assert s.activation_bytes == 2 * 6 * 6 * 8
    from convnet.analysis import receptive_field

    assert receptive_field(m, (1, 8, 8)) == 3
