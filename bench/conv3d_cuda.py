"""CUDA conv3d benchmark: volconv's depthwise kernels (and its cuDNN route, dense rows) vs torch/cuDNN
(channels_last_3d, cudnn.benchmark = True, TF32 off for the float32 rows),
per direction (forward, input gradient, weight gradient), on the same
device tensors. Prints a table (ms, TFLOP/s, the fraction of the measured
device-to-device copy bandwidth each reaches on its compulsory bytes, and
the speed-up over cuDNN), and saves a bar chart beside this script (or
where --plot says).

Each timing is the median, over --repeats CUDA-event pairs, of the mean of
--calls back-to-back calls (1: one call between the events, so the host's
time per call shows in full). --overhead prints the host's time per call
against an empty kernel; --profile N profiles N calls on the small shape.

    python bench/conv3d_cuda.py                    # the issue's three shapes, fp32/bf16/fp16
    python bench/conv3d_cuda.py --dtypes float32 --repeats 5
    python bench/conv3d_cuda.py --overhead --profile 2000
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

import volconv as vc

# name: (N, D, H, W, C); every case is depthwise, kernel 3, padding 1, stride 1.
SHAPES = {
    "1x16x56x56x64": (1, 16, 56, 56, 64),
    "1x17x128x128x256": (1, 17, 128, 128, 256),
    "2x32x64x64x128": (2, 32, 64, 64, 128),
}
# Dense rows (groups 1, C_in = C_out = C, kernel 3, padding 1; and tconv: conv_transpose3d kernel 2
# stride 2): volconv runs them on cuDNN, so the rows show what volconv's route costs over torch's
# own cuDNN call.
DENSE_SHAPES = {"dense 2x16x32x32x64": (2, 16, 32, 32, 64)}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DIRECTIONS = ["fwd", "dgrad", "wgrad"]
DEFAULT_PLOT = Path(__file__).resolve().with_suffix(".png")  # git-ignored


def timed_ms(fn, repeats: int, calls: int = 1) -> float:
    """Median of `repeats` CUDA-event timings of `calls` back-to-back calls,
    per call, after 3 warm-up calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / calls)
    return sorted(times)[len(times) // 2]


def host_us(fn, calls: int = 2000) -> float:
    """Wall-clock microseconds per call of `calls` back-to-back calls (one
    synchronisation at the end): the host's time where the GPU's is shorter."""
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / calls * 1e6


def overhead(profile_calls: int) -> None:
    """The host's time per call: an empty kernel launched from Python
    (torch.cuda._sleep(0)), volconv and torch on a one-element depthwise
    problem and on the small bench shape; then, with profile_calls, where
    volconv's time goes (cProfile, by own time)."""
    tiny = torch.randn(1, 1, 1, 1, 8, device="cuda"), torch.randn(8, 3, 3, 3, 1, device="cuda")
    n, d, h, w, c = SHAPES["1x16x56x56x64"]
    small = torch.randn(n, d, h, w, c, device="cuda"), torch.randn(c, 3, 3, 3, 1, device="cuda")
    rows = [("empty kernel (torch.cuda._sleep(0))", lambda: torch.cuda._sleep(0))]
    for name, (x, wt) in (("1x1x1x1x8", tiny), ("1x16x56x56x64", small)):
        ch = x.shape[-1]
        xt, wtt = x.permute(0, 4, 1, 2, 3), wt.permute(0, 4, 1, 2, 3)
        rows.append(
            (f"volconv conv3d {name}", lambda x=x, wt=wt, ch=ch: vc.conv3d(x, wt, padding=1, groups=ch))
        )
        rows.append(
            (
                f"torch F.conv3d {name}",
                lambda xt=xt, wtt=wtt, ch=ch: torch.nn.functional.conv3d(xt, wtt, None, 1, 1, 1, ch),
            )
        )
    # The C++ part alone: the core's entry point with the arguments Python
    # would pass (addresses, shapes, strides, params, stream) made once.
    from volconv._params import conv_params

    f32 = vc._core.DType.float32
    stream = vc._core._gpu_external_stream(0, torch.cuda.current_stream().cuda_stream)
    for name, (x, wt) in (("1x1x1x1x8", tiny), ("1x16x56x56x64", small)):
        raw = [(t.data_ptr(), tuple(t.shape), tuple(t.stride())) for t in (x, wt, torch.empty_like(x))]
        params = conv_params(1, 1, 1, x.shape[-1], (3, 3, 3))
        rows.append(
            (
                f"volconv C++ entry only {name}",
                lambda raw=raw, params=params: vc._core._cuda_conv3d(
                    raw[0], f32, raw[1], f32, raw[2], f32, params, stream
                ),
            )
        )
    # The weight gradient (two kernels and a workspace) and 16-bit, on the small shape.
    xb, gb = small[0].bfloat16(), small[0].bfloat16()
    for name, x, gy in (("float32", small[0], small[0]), ("bfloat16", xb, gb)):
        rows.append(
            (
                f"volconv conv3d_grad_weight {name}",
                lambda x=x, gy=gy: vc.conv3d_grad_weight(x, gy, (c, 3, 3, 3, 1), padding=1, groups=c),
            )
        )
    rows.append(("volconv conv3d bfloat16", lambda: vc.conv3d(xb, small[1].bfloat16(), padding=1, groups=c)))
    print("host time per call (back-to-back calls, float32 unless named, depthwise k3 padding 1):")
    for name, fn in rows:
        print(f"  {name:40} {host_us(fn):8.1f} us")
    if profile_calls:
        import cProfile
        import pstats

        x, wt = small
        for what, fn in (
            ("conv3d", lambda: vc.conv3d(x, wt, padding=1, groups=c)),
            ("conv3d_grad_weight", lambda: vc.conv3d_grad_weight(x, x, (c, 3, 3, 3, 1), padding=1, groups=c)),
        ):
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(profile_calls):
                fn()
            prof.disable()
            torch.cuda.synchronize()
            print(f"cProfile of {profile_calls} calls of {what} 1x16x56x56x64 float32:")
            pstats.Stats(prof).sort_stats("tottime").print_stats(14)


def copy_bandwidth() -> float:
    """Bytes per second of a 2 GiB device-to-device copy (read + write)."""
    a = torch.empty(2**29, dtype=torch.float32, device="cuda")
    b = torch.empty_like(a)
    ms = timed_ms(lambda: b.copy_(a), 10)
    return 2 * a.numel() * 4 / (ms * 1e-3)


def cases(shape, dtype, groups, transpose=False):
    """The three directions for volconv and cuDNN on one shape: (name, volconv fn, torch fn, bytes,
    flops); with transpose, a fourth: conv_transpose3d kernel 2 stride 2 (the upsampling layer,
    C -> C, output 8x the input's positions)."""
    n, d, h, w, c = shape
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(n, d, h, w, c, device="cuda", generator=g).to(dtype)
    wt = torch.randn(c, 3, 3, 3, c // groups, device="cuda", generator=g).to(dtype)
    gy = torch.randn(n, d, h, w, c, device="cuda", generator=g).to(dtype)
    # torch's NCDHW views of the same memory: channels_last_3d, no copy.
    xt, wtt, gyt = x.permute(0, 4, 1, 2, 3), wt.permute(0, 4, 1, 2, 3), gy.permute(0, 4, 1, 2, 3)
    conv = dict(
        stride=[1, 1, 1], padding=[1, 1, 1], dilation=[1, 1, 1], transposed=False, output_padding=[0, 0, 0]
    )
    kw = dict(padding=1, groups=groups)

    def torch_backward(mask):
        return lambda: torch.ops.aten.convolution_backward(
            gyt,
            xt,
            wtt,
            None,
            conv["stride"],
            conv["padding"],
            conv["dilation"],
            False,
            [0, 0, 0],
            groups,
            mask,
        )

    act = x.numel() * x.element_size()
    flops = 2 * n * d * h * w * c * 27 * (c // groups)
    rows = [
        (
            "fwd",
            lambda: vc.conv3d(x, wt, **kw),
            lambda: torch.nn.functional.conv3d(xt, wtt, None, 1, 1, 1, groups),
            2 * act,
            flops,
        ),
        (
            "dgrad",
            lambda: vc.conv3d_grad_input(gy, wt, x.shape, **kw),
            torch_backward([True, False, False]),
            2 * act,
            flops,
        ),
        (
            "wgrad",
            lambda: vc.conv3d_grad_weight(x, gy, wt.shape, **kw),
            torch_backward([False, True, False]),
            2 * act,
            flops,
        ),
    ]
    if transpose:
        # volconv's weight (C_out, 2, 2, 2, C_in/g); torch's (C_in, C_out/g, 2, 2, 2) holds the
        # same numbers (groups 1: the channels swapped).
        w2 = torch.randn(c, 2, 2, 2, c, device="cuda", generator=g).to(dtype)
        w2t = w2.permute(4, 0, 1, 2, 3).contiguous(memory_format=torch.channels_last_3d)
        rows.append(
            (
                "tconv",
                lambda: vc.conv_transpose3d(x, w2, stride=2),
                lambda: torch.nn.functional.conv_transpose3d(xt, w2t, None, 2),
                9 * act,
                2 * n * d * h * w * c * 8 * c,
            )
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--shapes",
        default=",".join([*SHAPES, *DENSE_SHAPES]),
        help="comma-separated keys of SHAPES, DENSE_SHAPES",
    )
    ap.add_argument("--dtypes", default=",".join(DTYPES), help="comma-separated: float32,bfloat16,float16")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--calls", type=int, default=10, help="back-to-back calls per timing")
    ap.add_argument("--overhead", action="store_true", help="only the host's time per call")
    ap.add_argument("--profile", type=int, default=0, help="with --overhead: profile this many calls")
    ap.add_argument("--plot", type=Path, default=DEFAULT_PLOT)
    args = ap.parse_args()
    if not torch.cuda.is_available() or vc._core._gpu_backend() != "cuda":
        raise SystemExit(f"No CUDA GPU for volconv here: {vc.unavailable_reason(vc.gpu)}")
    torch.backends.cudnn.benchmark = True
    if args.overhead:
        overhead(args.profile)
        return
    bw = copy_bandwidth()
    print(
        f"# {torch.cuda.get_device_name()} | torch {torch.__version__} (cuDNN {torch.backends.cudnn.version()}) | "
        f"volconv {vc.__version__} | {platform.processor() or platform.machine()} | "
        f"measured copy bandwidth {bw / 1e12:.2f} TB/s | ms per call: median of {args.repeats} timings of "
        f"{args.calls} back-to-back calls"
    )
    header = f"{'shape':19} {'dtype':8} {'dir':5} | {'volconv ms':>10} {'TFLOP/s':>7} {'%bw':>5} | {'cuDNN ms':>9} {'TFLOP/s':>7} {'%bw':>5} | {'speed-up':>8}"
    print(header)
    print("-" * len(header))
    rows = []
    for key in args.shapes.split(","):
        shape = SHAPES[key] if key in SHAPES else DENSE_SHAPES[key]
        groups = shape[4] if key in SHAPES else 1
        for dname in args.dtypes.split(","):
            # TF32 off: the float32 rows compare float32 arithmetic with float32.
            torch.backends.cudnn.allow_tf32 = False
            for direction, ours, theirs, nbytes, flops in cases(
                shape, DTYPES[dname], groups, transpose=key in DENSE_SHAPES
            ):
                ms_v, ms_t = (
                    timed_ms(ours, args.repeats, args.calls),
                    timed_ms(theirs, args.repeats, args.calls),
                )
                rows.append((key, dname, direction, ms_v, ms_t))
                print(
                    f"{key:19} {dname:8} {direction:5} | {ms_v:10.3f} {flops / ms_v / 1e9:7.2f} "
                    f"{100 * nbytes / (ms_v * 1e-3) / bw:4.0f}% | {ms_t:9.3f} {flops / ms_t / 1e9:7.2f} "
                    f"{100 * nbytes / (ms_t * 1e-3) / bw:4.0f}% | {ms_t / ms_v:7.1f}x"
                )
            torch.cuda.empty_cache()
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib missing: no plot)")
        return
    labels = [f"{k}\n{d} {r}" for k, d, r, _, _ in rows]
    fig, ax = plt.subplots(figsize=(max(8, len(rows) * 0.6), 5))
    pos = range(len(rows))
    ax.bar([p - 0.2 for p in pos], [r[3] for r in rows], 0.4, label="volconv")
    ax.bar([p + 0.2 for p in pos], [r[4] for r in rows], 0.4, label="torch/cuDNN")
    ax.set_yscale("log")
    ax.set_ylabel("ms (log)")
    ax.set_xticks(list(pos), labels, rotation=90, fontsize=6)
    ax.set_title(f"conv3d k3 (depthwise; dense on cuDNN in both) on {torch.cuda.get_device_name()}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
