"""The 3D GoogLeNet FCN (Table I): shapes, layer structure, parameter count, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from organseglib.errors import InputError
from organseglib.network import (DEFAULT_WINDOW_HU, GoogLeNet3d, Inception3d, build_network, count_parameters,
                                 window_hu)


def test_tiny_network_keeps_the_input_size():
    net = build_network(width=0.0625).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 1, 40, 32, 32))
    assert out.shape == (1, 6, 40, 32, 32)


def test_paper_input_size_gives_six_class_maps_at_full_size():
    """120×120×160 in, 6×120×120×160 out: the ×8 interpolation restores the decimated size."""
    net = build_network(width=0.03125).eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 1, 160, 120, 120))
    assert out.shape == (1, 6, 160, 120, 120)


def test_table1_channels_at_full_width():
    with torch.device("meta"):
        net = build_network()
    inceptions = [m for m in net.modules() if isinstance(m, Inception3d)]
    assert [m.out_channels for m in inceptions] == [256, 480, 512, 512, 528, 832, 832, 1024]
    convs = [m for m in net.stem.modules() if isinstance(m, nn.Conv3d)]
    assert [(c.kernel_size[0], c.stride[0], c.out_channels) for c in convs] == [(7, 2, 64), (1, 1, 64), (4, 1, 192)]
    pools = [m for m in net.modules() if isinstance(m, nn.MaxPool3d) and m.stride == 2]
    assert len(pools) == 2
    assert net.interpolate.kernel_size == (8, 8, 8) and net.interpolate.stride == (8, 8, 8)
    assert net.interpolate.out_channels == 6
    # every convolution is followed by batch norm (section V-B)
    n_conv = sum(isinstance(m, nn.Conv3d) for m in net.modules())
    assert n_conv == sum(isinstance(m, nn.BatchNorm3d) for m in net.modules())


def test_parameter_count_at_full_width_on_meta_device():
    """16.9 M parameters at width 1.0 (counted without allocating weights)."""
    with torch.device("meta"):
        net = build_network(width=1.0)
    assert count_parameters(net) == 16_929_358
    with torch.device("meta"):
        small = build_network(width=0.125)
    assert count_parameters(small) < count_parameters(net) / 20


def test_width_and_classes_are_honoured():
    net = build_network(num_classes=3, width=0.0625).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 1, 16, 16, 24))
    assert out.shape == (2, 3, 16, 16, 24)
    assert isinstance(net, GoogLeNet3d) and net.spec.width == 0.0625


def test_translation_by_8_voxels_is_nearly_equivariant_in_the_interior():
    """A fully convolutional network: shifting the input by the decimation factor shifts the output."""
    torch.manual_seed(0)
    net = build_network(width=0.0625).eval()
    x = torch.rand(1, 1, 64, 32, 32)
    with torch.no_grad():
        a = net(x)[..., 8:56, :, :]
        b = net(torch.roll(x, 8, dims=2))[..., 16:64, :, :]
    # The receptive field reaches the border, so compare only the central slab.
    assert torch.allclose(a[..., 16:32, :, :], b[..., 16:32, :, :], atol=1e-4)


@pytest.mark.parametrize("kwargs, match", [
    ({"architecture": "unet"}, "architecture"), ({"num_classes": 1}, "num_classes"),
    ({"width": 0.0}, "width"), ({"in_channels": 0}, "in_channels"),
    ({"in_channels": 2}, "in_channels")])
def test_bad_specs_raise(kwargs, match):
    with pytest.raises(InputError, match=match):
        build_network(**kwargs)


def test_bad_input_shape_raises():
    net = build_network(width=0.0625).eval()
    with pytest.raises(InputError, match="multiples of 8"):
        net(torch.rand(1, 1, 20, 16, 16))
    with pytest.raises(InputError, match=r"\(N, 1, K, J, I\)"):
        net(torch.rand(1, 2, 16, 16, 16))


def test_window_matches_eq3_in_numpy_and_torch():
    hu = np.array([-2000.0, -1000.0, 0.0, 500.0, 1000.0, 3000.0], dtype=np.float32)
    expected = np.array([0.0, 0.0, 0.5, 0.75, 1.0, 1.0], dtype=np.float32)
    assert DEFAULT_WINDOW_HU == (-1000.0, 1000.0)
    np.testing.assert_allclose(window_hu(hu), expected)
    np.testing.assert_allclose(window_hu(torch.from_numpy(hu)).numpy(), expected)
    with pytest.raises(InputError, match="low < high"):
        window_hu(hu, (100.0, 100.0))
