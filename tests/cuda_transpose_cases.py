"""Transposed-convolution cases the CUDA tests and the sanitizer driver share,
and float64 references for their gradients written through the forward conv
whose input gradient a transposed conv is (torch's definition): with the
weight read as that conv's, (C_in, K..., C_out/groups), the input gradient is
that conv's forward and the weight gradient its weight gradient with the
operands' roles swapped."""

from __future__ import annotations

import numpy as np
from reference_training import conv3d_grad_weight_reference

from reference import conv3d_reference

# (N, (D, H, W), C_in, C_out, groups, kernel, stride, padding, output_padding, dilation), torch's
# symmetric padding: stride 1 (the forward form); k2 s2 with groups (the upsampling layer);
# output_padding; stride 3 with dilation; dilation at stride 2; stride 1 with padding past the
# reach (a crop); output_padding from the dilation at stride 1.
CASES = [
    (2, (3, 4, 5), 8, 16, 1, (3, 3, 3), (1, 1, 1), (1, 1, 1), (0, 0, 0), (1, 1, 1)),
    (1, (3, 4, 3), 6, 4, 2, (2, 2, 2), (2, 2, 2), (0, 0, 0), (0, 0, 0), (1, 1, 1)),
    (1, (3, 3, 4), 4, 6, 2, (3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1), (1, 1, 1)),
    (2, (2, 3, 3), 8, 8, 1, (3, 2, 3), (3, 1, 3), (2, 0, 1), (2, 0, 1), (1, 1, 2)),
    (1, (4, 4, 4), 4, 8, 2, (3, 3, 3), (2, 2, 2), (1, 1, 1), (0, 1, 0), (2, 2, 2)),
    (1, (5, 5, 5), 4, 4, 1, (2, 2, 2), (1, 1, 1), (2, 2, 2), (0, 0, 0), (1, 1, 1)),
    (1, (4, 5, 4), 8, 4, 2, (3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), (2, 2, 2)),
]


def case_id(case) -> str:
    n, size, ci, co, g, k, s, p, op, d = case

    def j(t):
        return "".join(map(str, t))

    return f"n{n}-c{ci}to{co}-g{g}-k{j(k)}-s{j(s)}-p{j(p)}-op{j(op)}-d{j(d)}"


def output_size(size, k, s, p, op, d):
    return tuple((size[i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1 for i in range(3))


def forward_weight(w, groups):
    """The transposed conv's weight (C_out, K..., C_in/groups) as the forward
    conv's (C_in, K..., C_out/groups): [g*Cig + c, k, o] = w[g*Cog + o, k, c].
    Its own inverse with the channel counts swapped."""
    c_out, *k, c_in_g = w.shape
    wg = np.asarray(w).reshape(groups, c_out // groups, *k, c_in_g)
    return np.moveaxis(wg, (1, 5), (5, 1)).reshape(groups * c_in_g, *k, c_out // groups)


def _forward_pad_hi(y_size, x_size, k, s, p, d):
    """The forward conv's high padding that gives it exactly the input's size: p, less the
    positions output_padding from the dilation adds (never a needed row)."""
    hi = []
    for i in range(3):
        extra = (y_size[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 - x_size[i]
        assert 0 <= extra <= p[i]
        hi.append(p[i] - extra)
    return tuple(hi)


def grad_input_reference(gy, w, input_shape, stride, padding, dilation, groups):
    """The forward conv of grad_output."""
    k = w.shape[1:4]
    hi = _forward_pad_hi(gy.shape[1:4], input_shape[1:4], k, stride, padding, dilation)
    return conv3d_reference(
        np.asarray(gy, np.float64),
        forward_weight(np.asarray(w, np.float64), groups),
        stride=stride,
        pad_lo=padding,
        pad_hi=hi,
        dilation=dilation,
        groups=groups,
    )


def grad_weight_reference(x, gy, weight_shape, stride, padding, dilation, groups):
    """The forward conv's weight gradient (its input: grad_output; its output gradient: x), read
    back in the transposed layout."""
    c_out, *k, c_in_g = weight_shape
    hi = _forward_pad_hi(gy.shape[1:4], x.shape[1:4], k, stride, padding, dilation)
    dwf = conv3d_grad_weight_reference(
        np.asarray(gy, np.float64),
        np.asarray(x, np.float64),
        (groups * c_in_g, *k, c_out // groups),
        stride=stride,
        pad_lo=padding,
        pad_hi=hi,
        dilation=dilation,
        groups=groups,
    )
    return forward_weight(dwf, groups)
