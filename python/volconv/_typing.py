"""Types of the public arguments, for mypy and IDEs only: nothing here exists
at run time, so numpy alone is still enough to import volconv. MLX's objects
are described by protocols (MLX ships no type stubs on every platform);
torch's by torch.Tensor, which reads as Any where torch is not installed."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, Literal, Protocol, SupportsIndex, TypeVar, Union

    import numpy as np
    import torch
    from typing_extensions import Buffer, TypeAlias

    from ._core import Device, DeviceType, Stream

    class SupportsDLPack(Protocol):
        """Any array that hands out its memory through DLPack."""

        def __dlpack__(self, *args: Any, **kwargs: Any) -> Any: ...

    class MLXArray(SupportsDLPack, Protocol):
        """mlx.core.array: `.at` (its indexed-update helper) is what neither
        numpy nor torch arrays have."""

        @property
        def at(self) -> Any: ...

    # conv3d returns the input's own type for MLX arrays.
    MLXArrayT = TypeVar("MLXArrayT", bound=MLXArray)

    # What conv3d reads. Other DLPack and buffer-protocol objects come back
    # as NumPy arrays.
    ArrayLike: TypeAlias = Union[np.ndarray, torch.Tensor, SupportsDLPack, Buffer]
    OtherArray: TypeAlias = Union[SupportsDLPack, Buffer]

    # Plain ints, numpy integers and anything with __index__ (bool is refused at run time).
    Int3: TypeAlias = Union[SupportsIndex, Sequence[SupportsIndex]]
    Padding: TypeAlias = Union[
        SupportsIndex, Sequence[SupportsIndex], Sequence[Sequence[SupportsIndex]], Literal["valid", "same"]
    ]

    class MLXDeviceType(Protocol):
        """mx.cpu, mx.gpu (an enum: its .name is "cpu" or "gpu")."""

        @property
        def name(self) -> str: ...

    class MLXDevice(Protocol):
        """mx.Device."""

        @property
        def type(self) -> MLXDeviceType: ...

    class MLXStream(Protocol):
        """mx.Stream."""

        @property
        def device(self) -> MLXDevice: ...

    DeviceLike: TypeAlias = Union[Device, DeviceType, MLXDeviceType, MLXDevice]
    # The fused activation of conv3d's epilogue.
    Activation: TypeAlias = Literal["relu", "silu", "gelu_tanh"]
    # What conv3d's padding holds: one mode for all axes, or one per axis (D, H, W).
    PaddingModeName: TypeAlias = Literal["zeros", "reflect", "replicate", "circular"]
    PaddingMode: TypeAlias = Union[PaddingModeName, Sequence[PaddingModeName]]
    StreamLike: TypeAlias = Union[None, Stream, Device, DeviceType, MLXDeviceType, MLXDevice, MLXStream]
