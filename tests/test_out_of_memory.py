"""Running out of memory is a MemoryError that names the op, the bytes it
asked for and what they were for: the result, or a working buffer (packed
weights, the weight gradient's partial sums). Each case runs in its own
interpreter under an address-space limit (RLIMIT_AS), so the allocation
fails the same way on any machine and the suite's own process is spared."""

import subprocess
import sys
import textwrap

import pytest

resource = pytest.importorskip("resource")

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="RLIMIT_AS semantics are Linux's"
)

PRELUDE = """
    import resource
    import numpy as np
    import volconv as vc

    vc.set_num_threads(2)
    vc.conv3d(np.ones((1, 3, 3, 3, 2), np.float32), np.ones((2, 3, 3, 3, 2), np.float32))  # the pool is up
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    # What the call may still map: enough for its (small or moderate)
    # result, not for the buffer under test.
    resource.setrlimit(resource.RLIMIT_AS, (vm + (700 << 20), resource.RLIM_INFINITY))
    try:
        CALL
    except MemoryError as e:
        print("MemoryError:", e)
"""


def memory_error_of(call: str) -> str:
    code = textwrap.dedent(PRELUDE).replace("CALL", call)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith("MemoryError:")]
    assert lines, f"no MemoryError; stdout={out.stdout!r} stderr={out.stderr[-2000:]!r}"
    return lines[0]


CASES = {
    # A zero-strided 4096x3x3x3x4096 weight costs nothing to pass, but its
    # packed copy is 4096 * 27 * 4096 * 4 bytes.
    "packed weights of conv3d": (
        "vc.conv3d(np.ones((1, 3, 3, 3, 4096), np.float32), np.broadcast_to(np.float32(1), (4096, 3, 3, 3, 4096)))",
        "[conv3d]",
        "for the packed weights",
        4096 * 27 * 4096 * 4,
    ),
    # The result (1024*27*1024 floats, 113 MB) fits; the 8 partial sums do not.
    "partial sums of the weight gradient": (
        "vc.conv3d_grad_weight(np.ones((1, 3, 3, 3, 1024), np.float32), np.ones((1, 1, 1, 1, 1024), np.float32),"
        " (1024, 3, 3, 3, 1024))",
        "[conv3d_grad_weight]",
        "for the weight gradient's partial sums",
        8 * 1024 * 27 * 1024 * 4,
    ),
    # The result is (1, 2049, 2049, 513, 1) float32: 8.6 GB.
    "result of a training op": (
        "vc.conv_transpose3d(np.ones((1, 2, 2, 2, 1), np.float32), np.ones((1, 1, 1, 1, 1), np.float32),"
        " stride=(2048, 2048, 512))",
        "[conv_transpose3d]",
        "for the result",
        2049 * 2049 * 513 * 4,
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_memory_error_names_op_bytes_and_buffer(case):
    call, op, purpose, nbytes = CASES[case]
    message = memory_error_of(call)
    assert op in message and purpose in message and f"{nbytes} bytes" in message, message
