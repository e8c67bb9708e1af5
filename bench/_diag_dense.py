"""EXPERIMENT (diagnosis call only): why 16-bit dense through cuDNN is slower than torch.
Per direction on the bench's dense shape: event ms (10 back-to-back calls), host us per call,
and (--profile) the GPU kernels each side launches per call with their mean time."""

import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
import conv3d_cuda as b  # noqa: E402

torch.backends.cudnn.benchmark = True
torch.backends.cudnn.allow_tf32 = False
prof = "--profile" in sys.argv
dtypes = [a for a in sys.argv[1:] if not a.startswith("--")] or ["float16", "bfloat16"]
shape = b.DENSE_SHAPES["dense 2x16x32x32x64"]


def kernels(fn, calls=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as p:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    rows = []
    for e in p.key_averages():
        dev = getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0)
        if dev and e.key and not e.key.startswith(("cuda", "aten", "Memcpy")) and e.self_cpu_time_total == 0:
            rows.append(f"      {e.count / calls:4.1f}x {dev / calls:8.1f} us  {e.key[:110]}")
    return rows


for dname in dtypes:
    for direction, ours, theirs, _, _ in b.cases(shape, b.DTYPES[dname], 1, transpose=True):
        mv, mt = b.timed_ms(ours, 10, 10), b.timed_ms(theirs, 10, 10)
        hv, ht = b.host_us(ours, 200), b.host_us(theirs, 200)
        print(
            f"{dname:8} {direction:5} volconv {mv:.3f} ms (host {hv:6.1f} us) | torch {mt:.3f} ms "
            f"(host {ht:6.1f} us) | {mt / mv:.2f}x",
            flush=True,
        )
        if prof:
            print("    volconv kernels per call:")
            print("\n".join(kernels(ours)))
            print("    torch kernels per call:")
            print("\n".join(kernels(theirs)), flush=True)
