"""The CPU thread pool's size follows the requested count, within a cap of
4 threads per CPU of the affinity mask; it shrinks when asked, wakes only
the workers a call uses, parses VOLCONV_NUM_THREADS strictly and runs on
the threads that started when the system refuses more. Thread counts come
from /proc/self/task, so these run on Linux; each runs in a fresh process."""

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self/task"), reason="counts threads in /proc/self/task"
)

CPUS = len(os.sched_getaffinity(0))
CAP = 4 * CPUS

PRELUDE = """
    import os
    import numpy as np
    import volconv as vc

    def threads():
        return len(os.listdir("/proc/self/task"))

    # Depthwise: the pool splits its N*Do*Ho output rows, so `rows` sets how
    # many chunks (threads) a call uses.
    def conv(rows):
        x = np.ones((1, 1, rows, 8, 4), np.float32)
        w = np.ones((4, 1, 1, 1, 1), np.float32)
        y = vc.conv3d(x, w, groups=4)
        assert (y == 1).all()
"""


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PRELUDE) + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert out.returncode == 0, out.stderr
    return out


def test_set_num_threads_is_capped_and_the_pool_shrinks_back():
    out = run_python(
        """
        base = threads()
        vc.set_num_threads(4096)
        vc.set_num_threads(4096)
        n = vc.get_num_threads()
        conv(4096)
        big = threads() - base
        vc.set_num_threads(0)
        default = vc.get_num_threads()
        conv(4096)
        print(n, big, default, threads() - base)
        """
    )
    n, big, default, after = map(int, out.stdout.split())
    assert n == CAP, "set_num_threads(4096) must clamp to 4 threads per CPU"
    assert big == CAP - 1, "workers beyond the cap were started"
    assert default == CPUS
    assert after == CPUS - 1, "the surplus workers were not released"
    # One note, however often the cap is hit.
    assert out.stderr.count("[set_num_threads]") == 1, out.stderr
    assert str(CAP) in out.stderr


def test_a_call_wakes_only_the_workers_it_uses():
    """8 workers; 50 calls that split into 2 chunks wake one worker, not all
    (voluntary context switches per thread, from /proc)."""
    out = run_python(
        """
        def switches():
            out = {}
            for tid in os.listdir("/proc/self/task"):
                with open(f"/proc/self/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches"):
                            out[tid] = int(line.split()[1])
            return out

        vc.set_num_threads(9)
        conv(64)  # starts the 8 workers
        before = switches()
        for _ in range(50):
            conv(2)
        after = switches()
        print(sum(after[t] - before[t] >= 25 for t in before))
        """
    )
    woken = int(out.stdout)
    # The calling thread and the one worker it uses; not the other 7.
    assert woken <= 2, f"{woken} threads woke for calls that use 2"


@pytest.mark.parametrize("value", ["3abc", "-2", "0", " ", "1e3", "99999999999999999999"])
def test_malformed_env_var_is_ignored_with_one_note(value):
    out = run_python(
        "print(vc.get_num_threads()); vc.set_num_threads(0); print(vc.get_num_threads())",
        VOLCONV_NUM_THREADS=value,
    )
    assert out.stdout.split() == [str(CPUS)] * 2
    assert out.stderr.count("Ignoring VOLCONV_NUM_THREADS") == 1, out.stderr
    assert "[volconv]" in out.stderr


def test_env_var_above_the_cap_is_clamped():
    out = run_python("conv(4096); print(vc.get_num_threads(), threads())", VOLCONV_NUM_THREADS="10000")
    n, live = map(int, out.stdout.split())
    assert n == CAP
    assert live < CAP + 8  # the workers plus the interpreter's own few threads
    assert "VOLCONV_NUM_THREADS=10000" in out.stderr


def test_valid_env_var_is_quiet():
    out = run_python("print(vc.get_num_threads())", VOLCONV_NUM_THREADS="1")
    assert out.stdout.strip() == "1"
    assert out.stderr == ""


def test_refused_threads_leave_the_call_on_those_that_started():
    """An address-space limit just above what the process uses lets only a
    few 8 MiB thread stacks be mapped; the call must still succeed."""
    out = run_python(
        f"""
        import resource, threading
        threading.stack_size(0)
        vc.set_num_threads({CAP})
        x = np.random.rand(1, 4, {CAP * 4}, 8, 4).astype(np.float32)
        w = np.random.rand(4, 1, 1, 1, 1).astype(np.float32)
        expected = x * w[:, 0, 0, 0, 0]
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[0])
        limit = pages * os.sysconf("SC_PAGE_SIZE") + (20 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
        base = threads()
        y = vc.conv3d(x, w, groups=4)
        started = threads() - base
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        assert np.allclose(y, expected)
        print(started)
        """
    )
    started = int(out.stdout)
    assert started < CAP - 1, "the limit did not refuse any thread: the test tests nothing"
    assert "[conv3d] Could not start more than" in out.stderr, out.stderr
