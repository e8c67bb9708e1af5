"""conv3d inside processes that fork and exit while it runs: a fork() child
(as DataLoader workers are made) must not inherit a locked thread pool, and
a daemon thread still inside conv3d at interpreter exit must not abort the
process. Each scenario runs in its own interpreter, with a timeout, so a
regression fails instead of hanging the suite."""

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def run_python(code: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
    )


FORK_WHILE_BUSY = """
    import os, threading, time
    import numpy as np
    import volconv as vc

    vc.set_num_threads(2)
    x = np.random.rand(1, 4, 4, 4, 4).astype(np.float32)
    w = np.random.rand(4, 3, 3, 3, 4).astype(np.float32)
    expected = vc.conv3d(x, w, padding=1)
    stop = False

    def busy():  # small calls: the pool's locks change hands all the time
        while not stop:
            vc.conv3d(x, w, padding=1)

    threads = [threading.Thread(target=busy) for _ in range(2)]
    for t in threads:
        t.start()
    hung = bad = 0
    for _ in range({forks}):
        pid = os.fork()
        if pid == 0:
            ok = np.array_equal(vc.conv3d(x, w, padding=1), expected)
            os._exit(0 if ok else 3)
        deadline = time.monotonic() + {child_timeout}
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                bad += os.waitstatus_to_exitcode(status) != 0
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                hung += 1
                break
            time.sleep(0.001)
        if hung:
            break
    stop = True
    for t in threads:
        t.join()
    print(hung, bad)
"""


def test_fork_while_other_threads_run_conv3d():
    out = run_python(FORK_WHILE_BUSY.format(forks=300, child_timeout=20), timeout=240)
    assert out.returncode == 0, out.stderr
    hung, bad = map(int, out.stdout.split())
    assert hung == 0, "a fork() child hung in conv3d (it inherited a locked mutex)"
    assert bad == 0, "a fork() child computed a wrong result"


DAEMON_AT_EXIT = """
    import threading, time
    import numpy as np
    import volconv as vc

    x = np.random.rand(1, 16, 32, 32, 16).astype(np.float32)
    w = np.random.rand(16, 3, 3, 3, 16).astype(np.float32)
    inside = threading.Event()

    def forever():
        while True:
            inside.set()
            vc.conv3d(x, w, padding=1)

    threading.Thread(target=forever, daemon=True).start()
    inside.wait()
    time.sleep(0.01)
    print("exiting")
"""


@pytest.mark.parametrize("attempt", range(3))
def test_daemon_thread_inside_conv3d_at_exit(attempt):
    out = run_python(DAEMON_AT_EXIT, timeout=120)
    assert out.returncode == 0, f"exit code {out.returncode}: {out.stderr[-2000:]}"
    assert out.stdout.strip() == "exiting"


# synchronize releases the GIL as conv3d does: a daemon thread waiting in it
# (here a tight loop of waits on a CPU stream, so the GIL is re-taken
# thousands of times a second) must not abort the process at exit either.
DAEMON_IN_SYNCHRONIZE_AT_EXIT = """
    import threading, time
    import volconv as vc

    stream = vc.new_stream(vc.cpu)
    inside = threading.Event()

    def forever():
        while True:
            inside.set()
            vc.synchronize(stream)

    for _ in range(2):
        threading.Thread(target=forever, daemon=True).start()
    inside.wait()
    time.sleep(0.01)
    print("exiting")
"""


@pytest.mark.parametrize("attempt", range(3))
def test_daemon_thread_inside_synchronize_at_exit(attempt):
    out = run_python(DAEMON_IN_SYNCHRONIZE_AT_EXIT, timeout=120)
    assert out.returncode == 0, f"exit code {out.returncode}: {out.stderr[-2000:]}"
    assert out.stdout.strip() == "exiting"
