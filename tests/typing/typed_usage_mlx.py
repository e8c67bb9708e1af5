"""MLX arrays, devices and streams in the typed API (mypy). MLX ships no
type stubs on Linux, so its types read as Any here; where it does, the
result is mx.array."""

from __future__ import annotations

import mlx.core as mx  # type: ignore[import-untyped,unused-ignore]

import volconv as vc

a = mx.zeros((1, 4, 5, 6, 2))
m = vc.conv3d(a, mx.zeros((3, 3, 3, 3, 2)), stream=mx.cpu)
vc.is_available(mx.gpu)
vc.new_stream(mx.cpu)
vc.conv3d(a, a, stream=mx.default_stream(mx.cpu))
