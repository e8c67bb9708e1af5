"""Device and stream selection, after MLX."""

import threading

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
    expected = vc.gpu if vc.is_available(vc.gpu) else vc.cpu
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
