"""The faster layouts of the network (issue 22): channels_last_3d and batch norm folded give the same
numbers as the plain network to float rounding, and the labels do not change."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from organseglib.inference import TorchPredictor, predict_channels
from organseglib.network import build_network, window_hu
from organseglib.network_layout import fold_batchnorm, inference_network, memory_format_for


def _net(width=0.0625, seed=0):
    """A small network with non-trivial batch-norm statistics and affine parameters."""
    torch.manual_seed(seed)
    net = build_network(width=width)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=gen) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) * 0.2 - 0.1)
    return net.eval()


def test_folded_network_equals_the_eval_network_and_leaves_it_unchanged():
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(2, 1, 24, 16, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = net(x)
        folded = fold_batchnorm(net)
        got = folded(x)
    n_bn = sum(isinstance(m, torch.nn.BatchNorm3d) for m in net.modules())
    assert n_bn > 20 and not any(isinstance(m, torch.nn.BatchNorm3d) for m in folded.modules())
    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-5), float((got - ref).abs().max())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_channels_last_training_step_equals_the_plain_step():
    """One forward/backward of the training network in both layouts: same loss and gradients."""
    from organseglib.losses import segmentation_loss

    x = torch.rand(2, 1, 16, 24, 24, generator=torch.Generator().manual_seed(5))
    y = torch.randint(0, 6, (2, 16, 24, 24), generator=torch.Generator().manual_seed(6))
    results = []
    for fmt in (torch.contiguous_format, torch.channels_last_3d):
        net = _net().train().to(memory_format=fmt)
        loss = segmentation_loss("iou", net(x.contiguous(memory_format=fmt)), y)
        loss.backward()
        results.append((float(loss.detach()), {k: p.grad.clone() for k, p in net.named_parameters()}))
    (l0, g0), (l1, g1) = results
    assert l0 == pytest.approx(l1, rel=1e-5)
    for k in g0:
        assert torch.allclose(g0[k], g1[k], rtol=1e-3, atol=1e-5), (k, float((g0[k] - g1[k]).abs().max()))


@pytest.mark.parametrize("width, batch", [(0.0625, 1), (0.125, 1), (0.125, 2)])
def test_channels_last_is_kept_through_every_inception_module(width, batch):
    """Every module's output stays in channels_last_3d. With one tile per forward pass (inference on the
    CPU) a branch came back in the standard layout and the concatenation followed it: every later layer
    ran in the slow layout, and the network stage of `segment` gained nothing from channels_last (batches
    of two or more, as in training, kept it). Training mode too."""
    from organseglib.network import Inception3d

    cl = torch.channels_last_3d
    for training in (False, True):
        net = _net(width).train(training).to(memory_format=cl)
        seen = []
        hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append(out.is_contiguous(memory_format=cl)))
                 for m in net.modules() if isinstance(m, Inception3d)]
        x = torch.rand(batch, 1, 32, 32, 32, generator=torch.Generator().manual_seed(1)).contiguous(memory_format=cl)
        with torch.set_grad_enabled(training):
            out = net(x)
        for h in hooks:
            h.remove()
        assert len(seen) == 8 and all(seen), seen
        assert out.shape == (batch, 6, 32, 32, 32)


def test_memory_format_is_channels_last_on_the_cpu_only():
    assert memory_format_for("cpu") == torch.channels_last_3d
    assert memory_format_for(torch.device("cuda")) == torch.contiguous_format
    fast = inference_network(_net(), torch.device("cpu"))
    conv = next(m for m in fast.modules() if isinstance(m, torch.nn.Conv3d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)


def _plain_probabilities(net, tiles, window):
    with torch.no_grad():
        x = window_hu(torch.from_numpy(tiles.astype(np.float32))[:, None], window)
        return torch.softmax(net.eval()(x), dim=1).numpy()


def test_predictor_equals_the_plain_forward_and_softmax():
    net = _net()
    rng = np.random.default_rng(0)
    tiles = rng.normal(0.0, 300.0, (2, 16, 24, 32)).astype(np.float32)
    ref = _plain_probabilities(net, tiles, (-1000, 1000))
    got = TorchPredictor(net, (-1000, 1000), "cpu").predict_batch(tiles)
    assert got.shape == ref.shape and got.flags.c_contiguous
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)


def test_flip_average_is_the_mean_of_the_mirrored_predictions():
    """flip_axes=(2,): the mean of p(x) and mirror(p(mirror(x))), hand-computed with the plain network."""
    net = _net()
    rng = np.random.default_rng(1)
    tiles = rng.normal(0.0, 300.0, (1, 16, 24, 32)).astype(np.float32)
    plain = _plain_probabilities(net, tiles, (-1000, 1000))
    mirrored = _plain_probabilities(net, tiles[..., ::-1].copy(), (-1000, 1000))[..., ::-1]
    got = TorchPredictor(net, (-1000, 1000), "cpu", flip_axes=(2,)).predict_batch(tiles)
    np.testing.assert_allclose(got, (plain + mirrored) / 2, rtol=1e-4, atol=1e-6)
    assert not np.allclose(got, plain, atol=1e-4)  # the mirrored pass counts
    with pytest.raises(Exception, match="flip_axes"):
        TorchPredictor(net, (-1000, 1000), "cpu", flip_axes=(3,))


def test_one_sided_channels_come_from_the_plain_pass_and_the_rest_share_what_is_left():
    """plain_channels=[1] (the liver): channel 1 is the plain pass's; in the mirrored pass the other
    channels are rescaled to share 1 - plain liver in their own proportions, then averaged with the
    plain pass (hand-computed with the plain network); every voxel still sums to 1."""
    net = _net()
    rng = np.random.default_rng(2)
    tiles = rng.normal(0.0, 300.0, (1, 16, 24, 32)).astype(np.float32)
    plain = _plain_probabilities(net, tiles, (-1000, 1000)).astype(np.float64)
    mirrored = _plain_probabilities(net, tiles[..., ::-1].copy(), (-1000, 1000))[..., ::-1].astype(np.float64)
    others = [c for c in range(plain.shape[1]) if c != 1]
    share = (1.0 - plain[:, 1:2]) / mirrored[:, others].sum(axis=1, keepdims=True)
    expected = plain.copy()
    expected[:, others] = (plain[:, others] + mirrored[:, others] * share) / 2
    got = TorchPredictor(net, (-1000, 1000), "cpu", flip_axes=(2,), plain_channels=[1]).predict_batch(tiles)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got[:, 1], plain[:, 1], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    everything = TorchPredictor(net, (-1000, 1000), "cpu", flip_axes=(2,)).predict_batch(tiles)
    assert not np.allclose(got[:, 1], everything[:, 1], atol=1e-4)  # the plain mean would differ
    with pytest.raises(Exception, match="plain_channels"):
        TorchPredictor(net, (-1000, 1000), "cpu", flip_axes=(2,), plain_channels=[-1])


@pytest.mark.slow
def test_bundled_model_labels_unchanged_on_a_phantom():
    """The shipped network on a phantom: every voxel whose top two probabilities differ by more than
    float rounding gets the same label from the fast predictor as from the plain network."""
    from organseglib.model_package import bundled_model_path, load_model_package
    from organseglib.phantom import make_phantom

    model, card = load_model_package(bundled_model_path("real"))
    image = make_phantom(seed=3, region="abdomen", size="small", spacing=(3.0, 3.0, 3.0)).ct.array
    plain_pred = lambda t: _plain_probabilities(model, t[None], card.window_hu)[0]  # noqa: E731
    ref = predict_channels(image, plain_pred, card.tile_shape, card.num_classes)
    fast = predict_channels(image, TorchPredictor(model, card.window_hu, "cpu"), card.tile_shape, card.num_classes)
    from organseglib.inference import stitch_whole

    probs = stitch_whole(image, plain_pred, card.tile_shape, card.num_classes)
    top2 = np.sort(probs, axis=0)[-2:]
    clear = (top2[1] - top2[0]) > 1e-4
    assert clear.mean() > 0.99
    assert np.array_equal(ref[clear], fast[clear])
