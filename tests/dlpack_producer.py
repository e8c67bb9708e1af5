"""A DLPack producer that volconv knows nothing else of (neither torch nor
CuPy, as JAX is to volconv), over torch CUDA tensors: torch's own
`__dlpack__(stream=)` does the producer's side of the stream handshake.
Shared by the CUDA DLPack and multi-GPU tests."""


class Producer:
    """Wraps torch tensor `t`; records the streams it was asked to make its
    data ready on."""

    def __init__(self, t):
        self.t = t
        self.streams = []

    def __dlpack__(self, *, stream=None, **kwargs):
        self.streams.append(stream)
        return self.t.__dlpack__(stream=stream)

    def __dlpack_device__(self):
        return self.t.__dlpack_device__()
