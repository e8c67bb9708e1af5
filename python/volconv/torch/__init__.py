"""volconv for PyTorch: differentiable conv3d / conv_transpose3d with
torch.nn.functional's signatures (registered as torch.library custom ops:
autograd, torch.compile, autocast) and nn layers that load torch.nn weights.
Needs torch >= 2.4."""

import torch

if not hasattr(torch.library, "custom_op"):
    raise ImportError(
        f"volconv.torch needs torch >= 2.4 (torch.library.custom_op) but found torch {torch.__version__}; "
        'pip install "volconv[torch]"'
    )

from volconv.torch import nn  # noqa: E402
from volconv.torch.functional import conv3d, conv_transpose3d  # noqa: E402

__all__ = ["conv3d", "conv_transpose3d", "nn"]
