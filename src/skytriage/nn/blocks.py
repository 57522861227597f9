"""Building blocks: convolution blocks and a small U-Net, in 2-D or 3-D."""

from __future__ import annotations

import torch
from torch import nn


def _layers(dims: int) -> tuple[type[nn.Module], type[nn.Module], type[nn.Module]]:
    if dims == 2:
        return nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d
    if dims == 3:
        return nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d
    raise ValueError(f"dims must be 2 or 3, not {dims}")


class ConvBlock(nn.Sequential):
    """Two 3×3 (×3) convolutions, each followed by batch norm and ReLU.

    Parameters
    ----------
    n_in, n_out : int
        Input and output channels.
    dims : int
        2 for images ``(N, C, H, W)``, 3 for cubes ``(N, C, D, H, W)``.
    """

    def __init__(self, n_in: int, n_out: int, dims: int = 2):
        conv, norm, _ = _layers(dims)
        super().__init__(
            conv(n_in, n_out, 3, padding=1, bias=False), norm(n_out), nn.ReLU(inplace=True),
            conv(n_out, n_out, 3, padding=1, bias=False), norm(n_out), nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """A small U-Net (Ronneberger et al. 2015) that keeps the input's spatial size.

    Parameters
    ----------
    n_in : int
        Input channels.
    n_out : int
        Output channels (logits).
    width : int
        Channels of the first level; each level down doubles them.
    depth : int
        Number of 2× poolings; spatial sizes must be divisible by ``2**depth``.
    dims : int
        2 or 3 (3-D pooling halves every axis).
    """

    def __init__(self, n_in: int, n_out: int, width: int = 32, depth: int = 1, dims: int = 2):
        super().__init__()
        conv, _, pool = _layers(dims)
        up = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
        widths = [width * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList()
        n = n_in
        for w in widths:
            self.down.append(ConvBlock(n, w, dims))
            n = w
        self.pool = pool(2)
        self.up = nn.ModuleList(up(widths[i + 1], widths[i], 2, stride=2) for i in range(depth))
        self.merge = nn.ModuleList(ConvBlock(2 * widths[i], widths[i], dims) for i in range(depth))
        self.head = conv(widths[0], n_out, 1)
        self.depth = depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, block in enumerate(self.down):
            x = block(x)
            if level < self.depth:
                skips.append(x)
                x = self.pool(x)
        for level in reversed(range(self.depth)):
            x = self.up[level](x)
            x = self.merge[level](torch.cat([x, skips[level]], dim=1))
        return self.head(x)
