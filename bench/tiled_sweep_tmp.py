"""TEMPORARY (removed before merge): times the tiled kernels' variants
(VOLCONV_TILED_DATA / VOLCONV_TILED_WGRAD) on the bench's large shapes and
checks each variant's result is bit-identical to variant 0's."""

import os

import torch

import volconv as vc

BW = 4.23e12


def timed(fn, reps=10, calls=10):
    for _ in range(3):
        fn()
    out = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(calls):
            fn()
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b) / calls)
    return sorted(out)[len(out) // 2]


for dt in (torch.float32, torch.bfloat16):
    for shape in ((1, 17, 128, 128, 256), (2, 32, 64, 64, 128)):
        c = shape[-1]
        g = torch.Generator(device="cuda").manual_seed(0)
        x = torch.randn(*shape, device="cuda", generator=g).to(dt)
        w = torch.randn(c, 3, 3, 3, 1, device="cuda", generator=g).to(dt)
        gy = torch.randn(*shape, device="cuda", generator=g).to(dt)
        nbytes = 2 * x.numel() * x.element_size()
        runs = {
            "fwd": ("VOLCONV_TILED_DATA", 6, lambda: vc.conv3d(x, w, padding=1, groups=c)),
            "dgrad": ("VOLCONV_TILED_DATA", 6, lambda: vc.conv3d_grad_input(gy, w, x.shape, padding=1, groups=c)),
            "wgrad": ("VOLCONV_TILED_WGRAD", 4, lambda: vc.conv3d_grad_weight(x, gy, w.shape, padding=1, groups=c)),
        }
        for name, (env, n, fn) in runs.items():
            first = None
            line = []
            for v in range(n):
                os.environ[env] = str(v)
                r = fn()
                if first is None:
                    first = r
                same = torch.equal(r, first)
                ms = timed(fn)
                line.append(f"v{v} {ms:.3f}ms {100 * nbytes / (ms * 1e-3) / BW:.0f}%{'' if same else ' DIFF'}")
            os.environ[env] = "0"
            print(f"{str(dt)[6:]:8} {'x'.join(map(str, shape)):16} {name:5} | " + " | ".join(line), flush=True)
