"""Types of the public arguments, for mypy and IDEs only: nothing here exists
at run time, so numpy alone is still enough to import volconv. Where torch or
MLX is not installed (MLX ships no stubs), its types read as Any."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, Literal, Protocol, SupportsIndex, Union

    import mlx.core as mx
    import numpy as np
    import torch
    from typing_extensions import Buffer, TypeAlias

    from ._core import Device, DeviceType, Stream

    class SupportsDLPack(Protocol):
        """Any array that hands out its memory through DLPack."""

        def __dlpack__(self, *args: Any, **kwargs: Any) -> Any: ...

    # What conv3d reads: the result comes back as the input's kind (a NumPy
    # array for DLPack and buffer-protocol objects).
    ArrayLike: TypeAlias = Union[np.ndarray, torch.Tensor, mx.array, SupportsDLPack, Buffer]
    OtherArray: TypeAlias = Union[SupportsDLPack, Buffer]

    # Plain ints, numpy integers and anything with __index__ (bool is refused at run time).
    Int3: TypeAlias = Union[SupportsIndex, Sequence[SupportsIndex]]
    Padding: TypeAlias = Union[
        SupportsIndex, Sequence[SupportsIndex], Sequence[Sequence[SupportsIndex]], Literal["valid", "same"]
    ]

    DeviceLike: TypeAlias = Union[Device, DeviceType, mx.Device, mx.DeviceType]
    StreamLike: TypeAlias = Union[None, Stream, Device, DeviceType, mx.Stream, mx.Device, mx.DeviceType]
