"""volconv inside a process that runs PyTorch CPU ops: its parallel regions
run on the OpenMP team torch already loaded (whose workers are still
spinning after torch's op), with results bit-identical to its own pool's at
any thread count; a fork() child never touches the inherited team (GNU
libgomp hangs there, GCC bug 60035) and falls back to the pool; concurrent
callers and interpreter exit stay safe. Each scenario runs in a fresh
interpreter with a timeout, so a hang fails instead of stalling the suite."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or "OpenMP" not in torch.__config__.parallel_info(),
    reason="the OpenMP route: Linux, with a torch built on OpenMP",
)

PRELUDE = """
    import os, sys, threading, time
    import numpy as np
    import torch
    import volconv as vc
    from volconv import _core

    def torch_op():  # a parallel torch CPU op: its OpenMP workers spin after it
        x = torch.rand(1, 16, 8, 16, 16)
        w = torch.rand(16, 16, 3, 3, 3)
        torch.nn.functional.conv3d(x, w, padding=1)
"""


def run_python(code: str, timeout: float = 120, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PRELUDE) + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**environ, **env},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_after_a_torch_op_volconv_runs_on_torchs_openmp_team():
    out = run_python(
        """
        vc.set_num_threads(2)
        x = np.random.rand(1, 8, 8, 8, 8).astype(np.float32)
        w = np.random.rand(8, 3, 3, 3, 8).astype(np.float32)
        torch_op()
        vc.conv3d(x, w, padding=1)
        print(_core._cpu_parallel_route())
        _core._cpu_allow_openmp(False)
        vc.conv3d(x, w, padding=1)
        print(_core._cpu_parallel_route())
        """
    )
    assert out.stdout.split() == ["openmp", "pool"]


def test_results_are_bit_identical_on_either_route_and_match_torch():
    """Thread counts that split the work unevenly, and more threads than
    chunks; float32 results equal across routes and counts, and within
    float32 rounding of torch's float64 conv."""
    out = run_python(
        """
        rng = np.random.default_rng(0)
        cases = [  # input NDHWC, weight (C_out, k, k, k, C_in / groups), groups
            ((2, 5, 7, 9, 6), (10, 3, 3, 3, 6), 1),
            ((1, 3, 5, 5, 8), (8, 3, 3, 3, 1), 8),
            ((1, 1, 1, 3, 4), (5, 1, 1, 1, 4), 1),
        ]
        bad = []
        for shape, wshape, groups in cases:
            x = rng.uniform(-1, 1, shape).astype(np.float32)
            w = rng.uniform(-1, 1, wshape).astype(np.float32)
            pad = wshape[1] // 2
            ref = torch.nn.functional.conv3d(
                torch.from_numpy(x).double().permute(0, 4, 1, 2, 3),
                torch.from_numpy(w).double().permute(0, 4, 1, 2, 3),
                padding=pad, groups=groups,
            ).permute(0, 2, 3, 4, 1).numpy()
            first = None
            for allow in (True, False):
                _core._cpu_allow_openmp(allow)
                for threads in (1, 2, 3, 7, 64):
                    vc.set_num_threads(threads)
                    torch_op()
                    y = vc.conv3d(x, w, padding=pad, groups=groups)
                    route = _core._cpu_parallel_route()
                    if threads > 1 and y.size > 100 and route != ("openmp" if allow else "pool"):
                        bad.append(f"{shape} {threads} threads ran on {route}")
                    if first is None:
                        first = y
                        if not np.allclose(y, ref, rtol=1e-5, atol=1e-5):
                            bad.append(f"{shape}: differs from torch float64")
                    elif not np.array_equal(y, first):
                        bad.append(f"{shape} allow_openmp={allow} {threads} threads: not bit-identical")
        print(bad)
        """
    )
    assert out.stdout.strip() == "[]"


FORK_AFTER_TORCH_AND_VOLCONV = """
    vc.set_num_threads(2)
    torch.set_num_threads(2)
    x = np.random.rand(1, 8, 16, 16, 8).astype(np.float32)
    w = np.random.rand(8, 3, 3, 3, 8).astype(np.float32)
    torch_op()
    expected = vc.conv3d(x, w, padding=1)
    assert _core._cpu_parallel_route() == "openmp"
    for _ in range({forks}):
        torch_op()
        vc.conv3d(x, w, padding=1)
        pid = os.fork()
        if pid == 0:
            y = vc.conv3d(x, w, padding=1)
            ok = np.array_equal(y, expected) and _core._cpu_parallel_route() == "pool"
            os._exit(0 if ok else 3)
        deadline = time.monotonic() + {child_timeout}
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                code = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                code = "hung"
                break
            time.sleep(0.002)
        if code != 0:
            break
    print(code)
"""


def test_fork_child_after_torch_and_volconv_uses_its_own_pool():
    out = run_python(FORK_AFTER_TORCH_AND_VOLCONV.format(forks=20, child_timeout=20), timeout=300)
    code = out.stdout.strip()
    assert code != "hung", "a fork() child hung: it ran on the parent's OpenMP team (GCC bug 60035)"
    assert code == "0", "a fork() child computed a wrong result or did not fall back to the pool"


CONCURRENT_CALLERS = """
    vc.set_num_threads(3)
    torch.set_num_threads(2)
    _core._cpu_allow_openmp({allow})
    rng = np.random.default_rng(1)
    xs = [rng.random((1, 6, 10, 10, 8), dtype=np.float32) for _ in range(4)]
    w = rng.random((8, 3, 3, 3, 8), dtype=np.float32)
    expected = [vc.conv3d(x, w, padding=1) for x in xs]
    wrong = []
    stop = threading.Event()

    def caller(i):
        for _ in range(60):
            if not np.array_equal(vc.conv3d(xs[i], w, padding=1), expected[i]):
                wrong.append(i)

    def torch_loop():
        while not stop.is_set():
            torch_op()

    torch_thread = threading.Thread(target=torch_loop)
    torch_thread.start()
    callers = [threading.Thread(target=caller, args=(i,)) for i in range(4)]
    for t in callers:
        t.start()
    for i in range(20):  # and this thread: torch, then volconv, as a model would
        torch_op()
        if not np.array_equal(vc.conv3d(xs[i % 4], w, padding=1), expected[i % 4]):
            wrong.append("main")
    for t in callers:
        t.join()
    stop.set()
    torch_thread.join()
    print(len(wrong))
"""


@pytest.mark.parametrize("allow", [True, False], ids=["openmp", "pool"])
def test_concurrent_callers_beside_torch(allow):
    out = run_python(CONCURRENT_CALLERS.format(allow=allow), timeout=240)
    assert out.stdout.strip() == "0", "a concurrent call computed a wrong result"


# The daemon thread runs only volconv: torch itself aborts at exit while a
# daemon thread is inside one of its ops ("terminate called without an
# active exception", with or without volconv in the process).
DAEMON_AT_EXIT = """
    x = np.random.rand(1, 16, 32, 32, 16).astype(np.float32)
    w = np.random.rand(16, 3, 3, 3, 16).astype(np.float32)
    torch_op()
    inside = threading.Event()

    def forever():
        while True:
            vc.conv3d(x, w, padding=1)
            inside.set()

    threading.Thread(target=forever, daemon=True).start()
    inside.wait()
    time.sleep(0.01)
    print("exiting", _core._cpu_parallel_route())
"""


@pytest.mark.parametrize("attempt", range(2))
def test_daemon_thread_on_the_openmp_route_at_exit(attempt):
    out = run_python(DAEMON_AT_EXIT, timeout=120)
    assert out.stdout.split() == ["exiting", "openmp"]


# GNU libgomp ends the threads a smaller team leaves out, and torch's next op
# would start them again: volconv's team is never smaller than torch's.
KEEPS_TORCHS_TEAM = """
    torch.set_num_threads(4)
    vc.set_num_threads(4)
    x = np.ones((1, 1, 2, 8, 4), np.float32)  # depthwise: 2 output rows, so 2 chunks
    w = np.ones((4, 1, 1, 1, 1), np.float32)

    def threads():
        time.sleep(0.2)  # a released libgomp thread takes a moment to exit
        return len(os.listdir("/proc/self/task"))

    torch_op()
    before = threads()
    counts = []
    for _ in range(3):
        assert (vc.conv3d(x, w, groups=4) == 1).all()
        assert _core._cpu_parallel_route() == "openmp"
        counts.append(threads())
        torch_op()
    print(before, *counts)
"""


def test_a_small_call_keeps_torchs_team():
    out = run_python(KEEPS_TORCHS_TEAM)
    before, *after = map(int, out.stdout.split())
    assert after == [before] * 3, f"threads: {before} before, {after} after volconv: torch's team shrank"
