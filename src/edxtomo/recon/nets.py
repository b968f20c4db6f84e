"""The 3D U-Net used as a deep image prior, and its fixed noise input.

Architecture (Ulyanov et al.'s "skip" network in 3D, as used for DIP-TV in
electron tomography): each encoder level is a stride-2 3×3×3 convolution,
BatchNorm, LeakyReLU, a 3×3×3 convolution, BatchNorm, LeakyReLU. Each decoder
level upsamples trilinearly, concatenates a narrow 1×1×1 skip branch taken
from the encoder at that resolution, and applies two convolutions. All
convolutions pad by reflection so the volume border is not pulled to zero.

The output head is non-negative. A squared LeakyReLU (``lrelu2``) measured
better than softplus in a prototype: softplus only approaches zero as its
input goes to minus infinity, so empty space kept a faint floor; the squared
LeakyReLU is exactly zero at a finite input (0) and 1e-4·x² below it.
``relu2`` is zero for every negative input but passes no gradient there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import torch
from torch import nn
from torch.nn import functional as F

Head = Literal["lrelu2", "relu2", "softplus"]
HEADS: tuple[str, ...] = get_args(Head)


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Module:
    return nn.Conv3d(cin, cout, k, stride=stride, padding=k // 2,
                     padding_mode="reflect" if k > 1 else "zeros", bias=True)


def _block(cin: int, cout: int, k: int = 3, stride: int = 1) -> list[nn.Module]:
    return [_conv(cin, cout, k, stride), nn.BatchNorm3d(cout), nn.LeakyReLU(0.2, inplace=True)]


class UNet3D(nn.Module):
    """Encoder–decoder with 1×1×1 skip branches and a non-negative head.

    Parameters
    ----------
    in_channels
        Channels of the noise input.
    out_channels
        One per element the network represents.
    widths
        Channels of each encoder/decoder level (its length is the depth).
    skip_widths
        Channels of the skip branch at each level; 0 disables that skip.
    head
        ``"lrelu2"`` (squared LeakyReLU), ``"relu2"`` or ``"softplus"``.
    """

    def __init__(self, in_channels: int = 32, out_channels: int = 1,
                 widths: Sequence[int] = (16, 32, 64, 128),
                 skip_widths: Sequence[int] | None = None, head: str = "lrelu2") -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or min(widths) < 1:
            raise ValueError(f"widths must be a non-empty list of positive ints, got {widths}")
        if skip_widths is None:
            skip_widths = [max(1, w // 4) for w in widths]
        skip_widths = [int(s) for s in skip_widths]
        if len(skip_widths) != len(widths) or min(skip_widths) < 0:
            raise ValueError(f"skip_widths {skip_widths} must match widths {widths} in length, >= 0")
        if head not in HEADS:
            raise ValueError(f"unknown output head {head!r}: choose one of {', '.join(HEADS)}")
        self.head = head
        self.levels = len(widths)
        self.down = nn.ModuleList()
        self.skip = nn.ModuleList()
        self.up = nn.ModuleList()
        cin = in_channels
        for w, s in zip(widths, skip_widths, strict=True):
            # The skip branch sees this level's input, at its full resolution.
            self.skip.append(nn.Sequential(*_block(cin, s, k=1)) if s else nn.Identity())
            self.down.append(nn.Sequential(*_block(cin, w, stride=2), *_block(w, w)))
            cin = w
        for i in reversed(range(self.levels)):
            deeper = widths[i + 1] if i + 1 < self.levels else widths[-1]
            cat = deeper + skip_widths[i]
            self.up.append(nn.Sequential(nn.BatchNorm3d(cat), *_block(cat, widths[i]),
                                         *_block(widths[i], widths[i], k=1)))
        self.out = nn.Conv3d(widths[0], out_channels, 1)
        # Per-channel output gain, set once by calibrate_gain(); not trained.
        self.register_buffer("gain", torch.ones(1, out_channels, 1, 1, 1))

    @property
    def multiple(self) -> int:
        """Input sizes must be multiples of this (see :func:`padded_shape`)."""
        return 2**self.levels

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.activate(self.out(self.features(z))) * self.gain

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """The last decoder level's output (``widths[0]`` channels), before the head."""
        skips = []
        h = z
        for skip, down in zip(self.skip, self.down, strict=True):
            skips.append(skip(h) if not isinstance(skip, nn.Identity) else None)
            h = down(h)
        for up, s in zip(self.up, reversed(skips), strict=True):
            h = F.interpolate(h, scale_factor=2, mode="trilinear", align_corners=False)
            h = up(torch.cat((h, s), 1) if s is not None else h)
        return h

    def activate(self, h: torch.Tensor) -> torch.Tensor:
        if self.head == "lrelu2":
            return F.leaky_relu(h, 0.01).square()
        if self.head == "relu2":
            return F.relu(h).square()
        return F.softplus(h)


def padded_shape(shape: Sequence[int], multiple: int) -> tuple[int, ...]:
    """Smallest shape ``>= shape`` divisible by ``multiple`` and at least ``2·multiple``.

    The deepest level then has at least 2 voxels per axis, which reflect
    padding needs.
    """
    return tuple(max(-(-int(n) // multiple), 2) * multiple for n in shape)


def crop_centre(vol: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """The central ``shape`` block of the last three axes of ``vol``."""
    sl = [slice(None)] * (vol.ndim - 3)
    for have, want in zip(vol.shape[-3:], shape, strict=True):
        start = (have - want) // 2
        sl.append(slice(start, start + want))
    return vol[tuple(sl)]


class NoiseInput:
    """The fixed random input of a deep image prior, jittered every call.

    Parameters
    ----------
    channels, shape
        Input channels and (padded) spatial shape.
    scale
        The fixed input is uniform noise in ``[0, scale)``.
    jitter
        Standard deviation of the fresh Gaussian noise added at every call;
        it keeps the network from locking onto one input and regularises.
    generator
        Source of randomness on ``device`` (seeded by the caller for reproducibility).
    """

    def __init__(self, channels: int, shape: Sequence[int], scale: float, jitter: float,
                 generator: torch.Generator, device: torch.device, dtype: torch.dtype) -> None:
        self.jitter = float(jitter)
        self.generator = generator
        self.device = device
        self.base = torch.rand((1, channels, *shape), generator=generator, dtype=dtype,
                               device=device) * scale

    def __call__(self) -> torch.Tensor:
        if self.jitter <= 0:
            return self.base
        noise = torch.randn(self.base.shape, generator=self.generator, dtype=self.base.dtype,
                            device=self.device)
        return self.base + self.jitter * noise


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class CoarseToFine(nn.Module):
    """A :class:`UNet3D` at half resolution plus one full-resolution refinement level.

    The U-Net runs on a half-size noise input; its pre-activation output is
    upsampled trilinearly to full resolution. While :attr:`fine` is False
    (the coarse stage) that is the whole network: the volume is a smooth
    half-resolution field, at an eighth of the U-Net's full-size cost. Once
    :attr:`fine` is set, a refinement level adds a full-resolution correction
    before the head: the U-Net's last features upsampled, concatenated with a
    1×1×1 skip branch of a full-size noise input, a 3×3×3 and a 1×1×1
    convolution, and a final 1×1×1 convolution that starts at zero, so the
    switch does not change the output and everything learnt at half
    resolution carries over. ``forward`` takes ``(coarse_input, fine_input)``.

    ``fine_width`` sets the channels of that full-resolution level; below
    ``widths[0]`` the U-Net's features are first mixed down by a 1×1×1
    convolution at half resolution. That costs nothing in expressiveness
    (a linear 1×1×1 map commutes with trilinear upsampling) and the
    full-resolution 3×3×3 convolution, most of a fine step on a CPU, shrinks
    with the product of its input and output channels.
    """

    def __init__(self, in_channels: int = 32, out_channels: int = 1,
                 widths: Sequence[int] = (16, 32, 64, 128),
                 skip_widths: Sequence[int] | None = None, head: str = "lrelu2",
                 fine_channels: int = 8, fine_skip: int = 4, fine_width: int | None = None) -> None:
        super().__init__()
        self.inner = UNet3D(in_channels, out_channels, widths, skip_widths, head)
        w0 = int(widths[0])
        fw = w0 if fine_width is None else int(fine_width)
        if fw < 1:
            raise ValueError(f"fine_width must be a positive int, got {fine_width}")
        # Built after the U-Net so the U-Net's seeded weights do not depend on fine_width.
        self.reduce = nn.Conv3d(w0, fw, 1) if fw != w0 else nn.Identity()
        self.fine_skip = nn.Sequential(*_block(fine_channels, fine_skip, k=1))
        last = nn.Conv3d(fw, out_channels, 1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.refine = nn.Sequential(nn.BatchNorm3d(fw + fine_skip), *_block(fw + fine_skip, fw),
                                    *_block(fw, fw, k=1), last)
        self.fine = False

    @property
    def multiple(self) -> int:
        """The half-size input must be a multiple of this."""
        return self.inner.multiple

    def forward(self, z: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        zc, zf = z
        h = self.inner.features(zc)
        pre = F.interpolate(self.inner.out(h), scale_factor=2, mode="trilinear", align_corners=False)
        if self.fine:
            up = F.interpolate(self.reduce(h), scale_factor=2, mode="trilinear", align_corners=False)
            pre = pre + self.refine(torch.cat((up, self.fine_skip(zf)), 1))
        return self.inner.activate(pre) * self.inner.gain


def set_fine(net: nn.Module, fine: bool = True) -> None:
    """Switch every :class:`CoarseToFine` in ``net`` to (or back from) its full-resolution stage."""
    for m in net.modules():
        if isinstance(m, CoarseToFine):
            m.fine = fine


class PerElement(nn.Module):
    """One independent network per element (DIP-TV), outputs stacked as channels."""

    def __init__(self, n_elements: int, net_class: type[nn.Module] | None = None, **kwargs) -> None:
        super().__init__()
        make = net_class or UNet3D
        self.nets = nn.ModuleList(make(out_channels=1, **kwargs) for _ in range(n_elements))

    @property
    def multiple(self) -> int:
        return self.nets[0].multiple

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([net(z) for net in self.nets], 1)


@torch.no_grad()
def calibrate_gain(net: nn.Module, z: torch.Tensor | tuple[torch.Tensor, ...], target_mean: torch.Tensor) -> None:
    """Scale each output channel so the untrained network's mean is ``target_mean``.

    An untrained network outputs values of order 0.1 whatever the data; at a
    learning rate of 5e-4 it then spends hundreds of steps only growing its
    output to the data's level. Starting at the right level skips that, and a
    per-element gain also keeps an element with a small signal from being
    stepped on by one with a large signal.
    """
    nets = [m for m in net.modules() if isinstance(m, UNet3D)]  # in output-channel order
    out = net(z)
    mean = out.flatten(2).mean(2).reshape(-1).clamp_min(1e-8)
    target = target_mean.reshape(-1).to(mean)
    for i, sub in enumerate(nets):
        k = sub.gain.numel()
        sub.gain.mul_((target[i * k:(i + 1) * k] / mean[i * k:(i + 1) * k]).reshape(sub.gain.shape))
