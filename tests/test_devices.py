"""Device and stream selection, after MLX."""

import sys
import threading
import warnings

import numpy as np
import pytest

import volconv as vc

X = np.ones((1, 3, 3, 3, 2), np.float32)
W = np.ones((2, 3, 3, 3, 2), np.float32)


def test_device_objects():
    assert vc.cpu == vc.DeviceType.cpu and vc.gpu == vc.DeviceType.gpu
    d = vc.Device(vc.cpu)
    assert d.type == vc.cpu and d.index == 0 and d == vc.Device(vc.cpu, 0)
    assert repr(d) == "Device(cpu, 0)"
    assert d == vc.cpu and d != vc.gpu and d != "cpu" and d != None  # noqa: E711
    # Equal objects hash equal, so a Device finds its DeviceType's dict entry.
    assert hash(d) == hash(vc.cpu) and {vc.cpu: 1}.get(d) == 1 and {vc.gpu: 2}.get(vc.Device(vc.gpu)) == 2
    assert vc.default_stream(vc.cpu) != None  # noqa: E711
    assert vc.is_available(vc.cpu) and vc.is_available(d)
    assert not vc.is_available(vc.Device(vc.cpu, 1))
    assert vc.unavailable_reason(vc.cpu) == ""
    assert vc.is_available(vc.gpu) == (vc.unavailable_reason(vc.gpu) == "")


def test_default_device_is_gpu_only_when_available():
    # Only a Metal GPU becomes the default: a CUDA one is used when asked for.
    expected = vc.gpu if vc.is_available(vc.gpu) and sys.platform == "darwin" else vc.cpu
    assert vc.default_device().type == expected


def test_streams():
    s0 = vc.default_stream(vc.cpu)
    assert s0 == vc.default_stream(vc.Device(vc.cpu)) and s0.device == vc.Device(vc.cpu)
    s1, s2 = vc.new_stream(vc.cpu), vc.new_stream(vc.cpu)
    assert len({s0, s1, s2}) == 3 and s1.device.type == vc.cpu
    for s in (None, s1, vc.cpu, vc.Device(vc.cpu)):
        assert vc.conv3d(X, W, stream=s)[0, 0, 0, 0, 0] == 54.0
        vc.synchronize(s)
    vc.synchronize()


def test_stream_context_is_per_thread_and_nests():
    s1, s2 = vc.new_stream(vc.cpu), vc.new_stream(vc.cpu)
    seen = []
    with vc.stream(s1) as a:
        assert a == s1
        with vc.stream(s2):
            t = threading.Thread(target=lambda: seen.append(vc._device.resolve_stream(None)))
            t.start()
            t.join()
            assert vc._device.resolve_stream(None) == s2
        assert vc._device.resolve_stream(None) == s1
        assert vc.conv3d(X, W).shape == (1, 1, 1, 1, 2)
    assert seen == [vc.default_stream(vc.default_device())]


def test_mlx_device_objects_are_accepted():
    mx = pytest.importorskip("mlx.core")
    for s in (mx.cpu, mx.Device(mx.cpu), mx.default_stream(mx.cpu), mx.new_stream(mx.Device(mx.cpu))):
        assert vc.conv3d(X, W, stream=s)[0, 0, 0, 0, 1] == 54.0


def test_set_default_device():
    before = vc.default_device()
    vc.set_default_device(vc.cpu)
    try:
        assert vc.default_device() == vc.Device(vc.cpu)
        if not vc.is_available(vc.gpu):
            with pytest.raises(ValueError, match="not available"):
                vc.set_default_device(vc.gpu)
            with pytest.raises(ValueError, match="not available"):
                vc.new_stream(vc.gpu)
            with pytest.raises(ValueError, match="not available"):
                vc.synchronize(vc.gpu)
    finally:
        vc.set_default_device(before)


def test_bad_device_arguments():
    with pytest.raises(TypeError, match=r"\[is_available\]"):
        vc.is_available("cpu")
    with pytest.raises(TypeError, match=r"\[stream\]"):
        with vc.stream("gpu"):
            pass


def test_conv3d_without_a_stream_lets_the_core_choose():
    """No stream and no stream() context: conv3d hands the core None, so the
    core's default-device rule applies (a GPU that is only the automatic
    default gives way to the CPU when it cannot run the kernels). A given
    stream or device, or a context, is passed on as chosen."""
    from volconv._device import call_stream

    assert call_stream(None) is None
    assert call_stream(vc.cpu) == vc.default_stream(vc.cpu)
    with vc.stream(vc.cpu) as s:
        assert call_stream(None) == s


def test_core_warnings_become_python_runtime_warnings():
    """The fallback's warning reaches Python as a RuntimeWarning (raised from
    a thread without the GIL, as during conv3d), and as an exception under
    warnings-as-errors."""
    from volconv import _core

    with pytest.warns(RuntimeWarning, match=r"^\[volconv\] test message$"):
        _core._warn("[volconv] test message")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeWarning, match="as an error"):
            _core._warn("[volconv] as an error")
