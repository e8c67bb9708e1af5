"""Process-wide choices of the CUDA backend's cuDNN route."""

from __future__ import annotations

from . import _core


def set_cuda_deterministic(enabled: bool) -> None:
    """Whether every convolution volconv runs on cuDNN (dense, grouped and
    channel-multiplier problems on an NVIDIA GPU) takes deterministic
    engines where cuDNN has any (default False, as torch's
    ``torch.backends.cudnn.deterministic``). Weight gradients take them
    either way, so they are bit-identical run to run; with False, forward
    and input-gradient convolutions (``conv_transpose3d`` among them) run
    cuDNN's fastest engine, which may accumulate with atomics. volconv's own
    depthwise kernels are deterministic either way. Applies to problems
    planned after the call."""
    if not isinstance(enabled, bool):
        raise TypeError(
            f"[set_cuda_deterministic] Expected enabled to be a bool, got {type(enabled).__name__}."
        )
    _core._cudnn_set_deterministic(enabled)


def cuda_deterministic() -> bool:
    """Whether every cuDNN call takes deterministic engines (set_cuda_deterministic)."""
    return _core._cudnn_deterministic()
