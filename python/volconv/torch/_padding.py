"""Padding modes other than zeros ("reflect", "replicate", "circular"), as
torch.nn.Conv3d applies them."""

import torch
import torch.nn.functional as F

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
Triple = tuple[int, int, int]


def pad_input(x: torch.Tensor, lo: Triple, hi: Triple, mode: str) -> "tuple[torch.Tensor, Triple, Triple]":
    """(input, padding_lo, padding_hi) for the kernel under padding `mode`.

    Until volconv.conv3d takes padding_mode= itself (the kernels' loaders
    reflect / replicate / wrap on the fly), the non-zero modes are an explicit
    F.pad here, differentiated by torch; switching to the kernel is this one
    function returning (x, lo, hi) and passing `mode` on."""
    if mode == "zeros" or not any(lo + hi):
        return x, lo, hi
    # F.pad takes (w_lo, w_hi, h_lo, h_hi, d_lo, d_hi).
    pad = (lo[2], hi[2], lo[1], hi[1], lo[0], hi[0])
    return F.pad(x, pad, mode=mode).contiguous(memory_format=torch.channels_last_3d), (0, 0, 0), (0, 0, 0)
