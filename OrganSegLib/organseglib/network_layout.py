"""How the network's tensors are laid out for speed: ``channels_last_3d`` and batch norm folded into
the convolutions. Same arithmetic, different order of memory: results equal to float rounding.

* **Memory format.** PyTorch's CPU convolutions (oneDNN) run 3D convolutions faster on channels-last
  tensors (N, K, J, I, C in memory) than on the default (N, C, K, J, I). Measured on this project's
  2-core CPU (issue 22, BENCHMARKS.md): one training step of the width-0.125 network on a batch of 4
  crops of 64×80×80 took 0.62× the time, one inference tile of 160×120×120 0.75-0.80×.
  ``memory_format_for`` is the one place that chooses: channels-last on the CPU; the default on CUDA,
  where it has not been measured here (no GPU was lent), so nothing changes there until it is.
* **Batch norm folded** (inference only). In eval mode a batch norm is an affine map per channel, so
  ``BN(conv(x)) = conv'(x)`` with the conv's weights scaled by ``γ / sqrt(var + ε)`` and its bias shifted
  (Ioffe & Szegedy's inference form). ``fold_batchnorm`` returns a copy without the batch norms: one
  pass over the activations fewer per convolution.

``inference_network`` applies both to a copy, so a training model handed to validation is untouched.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def memory_format_for(device: torch.device | str) -> torch.memory_format:
    """``torch.channels_last_3d`` on the CPU (measured faster), ``torch.contiguous_format`` elsewhere."""
    kind = device.type if isinstance(device, torch.device) else torch.device(device).type
    return torch.channels_last_3d if kind == "cpu" else torch.contiguous_format


def to_memory_format(x: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    """``x`` (a 5D batch) in ``memory_format``; other ranks are returned as they are."""
    return x.contiguous(memory_format=memory_format) if x.dim() == 5 else x


def _foldable_pairs(model: nn.Module):
    """``(sequential, index of the batch norm)`` for each Conv3d directly followed by a BatchNorm3d."""
    for seq in model.modules():
        if isinstance(seq, nn.Sequential):
            layers = list(seq)
            for n in range(1, len(layers)):
                bn = layers[n]
                if isinstance(layers[n - 1], nn.Conv3d) and isinstance(bn, nn.BatchNorm3d) and bn.track_running_stats:
                    yield seq, n


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` in which every ``Conv3d`` directly followed by a ``BatchNorm3d``
    (inside one ``nn.Sequential``, as ``network.ConvBNReLU`` builds them) absorbs it; the batch norm is
    replaced by ``nn.Identity``. The input model is not changed."""
    folded = copy.deepcopy(model).eval()
    with torch.no_grad():
        for seq, n in list(_foldable_pairs(folded)):
            conv, bn = seq[n - 1], seq[n]
            scale = 1.0 / torch.sqrt(bn.running_var + bn.eps)
            if bn.affine:
                scale = bn.weight * scale
            shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            conv.weight.mul_(scale.view(-1, 1, 1, 1, 1))
            conv.bias = nn.Parameter((bias - bn.running_mean) * scale + shift)
            seq[n] = nn.Identity()
    return folded


def inference_network(model: nn.Module, device: torch.device) -> nn.Module:
    """A copy of ``model`` ready for inference on ``device``: eval mode, batch norm folded, in the
    device's memory format (``memory_format_for``). A model with no batch norm to fold is not copied:
    it is put in eval mode and moved as it is."""
    fast = fold_batchnorm(model) if any(True for _ in _foldable_pairs(model)) else model.eval()
    fast = fast.to(device)
    return fast.to(memory_format=memory_format_for(device))


__all__ = ["fold_batchnorm", "inference_network", "memory_format_for", "to_memory_format"]
