"""Where the CUDA route's cuDNN path puts a NaN / inf weight or
output-gradient element that meets the padding, against the README rule's
float64 references, and where torch's CUDA conv puts it on the same values
(session 20; README, "Non-finite values at the padding"). A measurement,
not a test: which engine cuDNN picks decides some of it.

    python3 tests/cuda/dense_nonfinite_probe.py      # on a CUDA machine (CPU otherwise)
"""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference_training import (  # noqa: E402
    conv3d_grad_input_reference,
    conv3d_grad_weight_reference,
    conv_transpose3d_reference,
)

import volconv as vc  # noqa: E402

from reference import conv3d_reference  # noqa: E402

DEV = "cuda" if torch.cuda.is_available() else "cpu"
PAD = dict(pad_lo=(1, 1, 1), pad_hi=(1, 1, 1))


def operands():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 5, 6, 7, 8))
    w = rng.standard_normal((16, 3, 3, 3, 8))
    gy = rng.standard_normal((1, 5, 6, 7, 16))
    w[0, 0, 0, 0, 0] = np.nan
    w[3, 2, 2, 2, 1] = np.inf
    w[5, 0, 1, 2, 2] = -np.inf
    gy[0, 0, 0, 0, 1] = np.nan
    gy[0, 4, 3, 3, 4] = np.inf
    return x, w, gy


def counts(a):
    a = np.asarray(a, np.float64)
    return [np.isnan(a), np.isposinf(a), np.isneginf(a)]


def compare(name, got, ref):
    g, r = counts(got), counts(ref)
    same = all((a == b).all() for a, b in zip(g, r))
    print(
        f"{name:34s} nan/+inf/-inf {[int(m.sum()) for m in g]} rule {[int(m.sum()) for m in r]}"
        f" -> {'same' if same else 'DIFFERENT'}"
    )


def ncdhw(a):
    return a.permute(0, 4, 1, 2, 3).contiguous(memory_format=torch.channels_last_3d)


def main():
    x, w, gy = operands()
    for dt in (torch.float32, torch.bfloat16, torch.float16):
        name = str(dt).split(".")[1]
        X, W, G = (torch.from_numpy(a).to(dt).to(DEV) for a in (x, w, gy))
        x64, w64, g64 = (a.double().cpu().numpy() for a in (X, W, G))
        # The transposed conv's weight (C_out', k..., C_in') for a gy-sized input.
        wt = np.ascontiguousarray(np.transpose(w64, (4, 1, 2, 3, 0)))
        refs = {
            "conv3d": conv3d_reference(x64, w64, **PAD),
            "conv3d_grad_input": conv3d_grad_input_reference(g64, w64, x64.shape, **PAD),
            "conv3d_grad_weight": conv3d_grad_weight_reference(x64, g64, w64.shape, **PAD),
            "conv_transpose3d": conv_transpose3d_reference(g64, wt, **PAD),
        }
        ours = {
            "conv3d": vc.conv3d(X, W, padding=1),
            "conv3d_grad_input": vc.conv3d_grad_input(G, W, tuple(X.shape), padding=1),
            "conv3d_grad_weight": vc.conv3d_grad_weight(X, G, tuple(W.shape), padding=1),
            "conv_transpose3d": vc.conv_transpose3d(G, torch.from_numpy(wt).to(dt).to(DEV), padding=1),
        }
        for op, ref in refs.items():
            compare(f"{name} volconv {op}", ours[op].double().cpu(), ref)
        xt, wtt = ncdhw(X).requires_grad_(), W.permute(0, 4, 1, 2, 3).contiguous().requires_grad_()
        yt = torch.nn.functional.conv3d(xt, wtt, padding=1)
        yt.backward(G.permute(0, 4, 1, 2, 3))
        compare(f"{name} torch conv3d", yt.detach().permute(0, 2, 3, 4, 1).double().cpu(), refs["conv3d"])
        compare(
            f"{name} torch grad_input",
            xt.grad.permute(0, 2, 3, 4, 1).double().cpu(),
            refs["conv3d_grad_input"],
        )
        compare(
            f"{name} torch grad_weight",
            wtt.grad.permute(0, 2, 3, 4, 1).double().cpu(),
            refs["conv3d_grad_weight"],
        )


if __name__ == "__main__":
    main()
