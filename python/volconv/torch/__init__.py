"""volconv for PyTorch: differentiable conv3d / conv_transpose3d with
torch.nn.functional's signatures (registered as torch.library custom ops:
autograd, torch.compile, autocast) and nn layers that load torch.nn weights.
Needs torch >= 2.4."""

from volconv.torch import nn
from volconv.torch.functional import conv3d, conv_transpose3d

__all__ = ["conv3d", "conv_transpose3d", "nn"]
