"""volconv: fast, memory-lean 3D convolution for Apple-silicon GPUs (Metal)
and CPUs, with the semantics of mlx.core.conv3d."""

from . import _core
from ._conv import conv3d
from ._core import Device, DeviceType, Stream
from ._cpu_options import cpu_winograd_enabled, set_cpu_winograd
from ._cuda_options import cuda_deterministic, set_cuda_deterministic
from ._device import (
    cpu,
    default_device,
    default_stream,
    gpu,
    is_available,
    new_stream,
    set_default_device,
    stream,
    synchronize,
    unavailable_reason,
)
from ._packed import PackedConv3dWeights, pack_conv3d_weights
from ._threads import get_num_threads, set_num_threads
from ._training import conv3d_grad_input, conv3d_grad_weight, conv_general, conv_transpose3d

# Defined here (not only re-exported) so type checkers see it: the generated
# stub of _core leaves module attributes out.
__version__: str = _core.__version__

__all__ = [
    "Device",
    "PackedConv3dWeights",
    "DeviceType",
    "Stream",
    "__version__",
    "conv3d",
    "conv3d_grad_input",
    "conv3d_grad_weight",
    "conv_general",
    "conv_transpose3d",
    "cpu",
    "cpu_winograd_enabled",
    "cuda_deterministic",
    "default_device",
    "default_stream",
    "get_num_threads",
    "gpu",
    "is_available",
    "new_stream",
    "pack_conv3d_weights",
    "set_cpu_winograd",
    "set_cuda_deterministic",
    "set_default_device",
    "set_num_threads",
    "stream",
    "synchronize",
    "unavailable_reason",
]
