"""ctypes front end of the MSL emulator library (tests/emulator): builds it
with CMake when missing or out of date, plans conv3d calls with the real
planner and runs exactly those plans on the emulated GPU. Used by
tests/test_metal_emulated.py and bench/metal_intensity.py; needs only numpy."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIR = Path(__file__).resolve().parent
DTYPE_CODES = {"float16": 0, "bfloat16": 1, "float32": 2, "float64": 3}


def find_compiler() -> str | None:
    """The clang that builds the emulator (VOLCONV_EMU_CXX, clang++-19 or clang++), or None."""
    for name in (os.environ.get("VOLCONV_EMU_CXX"), "clang++-19", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _compiler() -> str:
    found = find_compiler()
    if found is None:
        raise RuntimeError("The MSL emulator needs clang (clang++-19); set VOLCONV_EMU_CXX to use another.")
    return found


def load_or_skip(library: str = "msl_emulator") -> Emulator:
    """For tests: the emulator library, or a pytest skip saying why it cannot
    be built; with VOLCONV_REQUIRE_EMULATOR=1 (CI) a failure instead."""
    from conftest import emulator_missing, skip_or_fail

    skip_or_fail(emulator_missing())
    return Emulator(library_path(library))


def build(build_dir: Path | None = None, sanitizer: str = "") -> Path:
    """Configures (once) and builds the emulator library; returns its path.
    cmake --build is a no-op when nothing changed."""
    build_dir = Path(build_dir or ROOT / "build" / ("emulator" + (f"-{sanitizer}" if sanitizer else "")))
    if not (build_dir / "CMakeCache.txt").exists():
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        subprocess.run(
            [
                "cmake",
                "-S",
                str(SOURCE_DIR),
                "-B",
                str(build_dir),
                f"-DCMAKE_CXX_COMPILER={_compiler()}",
                f"-DEMU_SANITIZER={sanitizer}",
                *generator,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    subprocess.run(
        ["cmake", "--build", str(build_dir), "-j", str(os.cpu_count() or 2)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return build_dir / "libmsl_emulator.so"


def bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits, round to nearest even (NaN not expected)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def to_device(x: np.ndarray, dtype: str) -> np.ndarray:
    """The array in the kernel's element type (16-bit types as raw bits)."""
    if dtype == "float32":
        return np.ascontiguousarray(x, dtype=np.float32)
    if dtype == "float16":
        return np.ascontiguousarray(x, dtype=np.float16)
    if dtype == "bfloat16":
        return bfloat16_bits(x)
    if dtype == "float64":
        return np.ascontiguousarray(x, dtype=np.float64)
    raise ValueError(dtype)


def from_device(a: np.ndarray, dtype: str) -> np.ndarray:
    """Device array -> float64 values."""
    if dtype == "bfloat16":
        return bfloat16_to_float32(a).astype(np.float64)
    return a.astype(np.float64)


def output_shape(x_shape, w_shape, stride, pad_lo, pad_hi, dilation) -> tuple:
    # Only to allocate the output; the planner (make_conv_geometry) validates.
    out = [
        (x_shape[1 + i] + pad_lo[i] + pad_hi[i] - dilation[i] * (w_shape[1 + i] - 1) - 1) // stride[i] + 1
        for i in range(3)
    ]
    return (x_shape[0], *out, w_shape[0])


class EmulatorError(ValueError):
    pass


class Emulator:
    def __init__(self, library: Path | str):
        self.lib = ctypes.CDLL(str(library))
        i64p = ctypes.POINTER(ctypes.c_int64)
        self.lib.emu_plan_json.argtypes = [i64p] * 6 + [
            ctypes.c_int64,
            ctypes.c_int,
            i64p,
            ctypes.c_char_p,
            ctypes.c_int64,
        ]
        self.lib.emu_conv3d.argtypes = (
            [i64p] * 6
            + [ctypes.c_int64, ctypes.c_int]
            + [ctypes.c_void_p] * 3
            + [ctypes.c_uint64, ctypes.POINTER(ctypes.c_uint64), ctypes.c_char_p, ctypes.c_int64]
        )
        self.lib.emu_conv3d_fused.argtypes = (
            [i64p] * 6
            + [ctypes.c_int64, ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
            + [ctypes.c_void_p] * 5
            + [ctypes.c_char_p, ctypes.c_int64]
        )
        self.lib.emu_check_pipeline.argtypes = [i64p] * 6 + [
            ctypes.c_int64,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_uint64),
            ctypes.c_char_p,
            ctypes.c_int64,
        ]
        self.lib.emu_probe.argtypes = (
            [ctypes.c_char_p] + [ctypes.c_void_p] * 3 + [ctypes.c_char_p, ctypes.c_int64]
        )
        self.lib.emu_kernel_names.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int64]
        self.lib.emu_set_lane_layout.argtypes = [ctypes.c_int]
        self.lib.emu_force_64bit_index.argtypes = [ctypes.c_int]
        self.lib.emu_self_check.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int64]
        self.lib.emu_float_to_bfloat.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        self.lib.emu_run_kernel.argtypes = (
            [ctypes.c_char_p, ctypes.c_uint64, ctypes.c_uint64]
            + [ctypes.c_void_p] * 3
            + [ctypes.c_char_p, ctypes.c_int64]
        )
        self.lib.emu_registry_error.argtypes = [ctypes.c_char_p, ctypes.c_int64]
        self.lib.emu_set_barrier_timeout_ms.argtypes = [ctypes.c_int64]
        # Two kernels under one host_name: Apple's library would not build.
        err = ctypes.create_string_buffer(4096)
        if self.lib.emu_registry_error(err, len(err)):
            raise EmulatorError(err.value.decode())

    @staticmethod
    def _shape_args(x_shape, w_shape, stride, pad_lo, pad_hi, dilation):
        return [
            (ctypes.c_int64 * len(v))(*[int(e) for e in v])
            for v in (x_shape, w_shape, stride, pad_lo, pad_hi, dilation)
        ]

    def plan(
        self,
        x_shape,
        w_shape,
        dtype: str,
        stride=(1, 1, 1),
        pad_lo=(0, 0, 0),
        pad_hi=(0, 0, 0),
        dilation=(1, 1, 1),
        groups=1,
        limits=None,
    ) -> dict:
        """The planner's choice as a dict (kernel, tile, threadgroup, grid, ...).
        limits: (max threadgroup memory, max threads, simd width)."""
        out = ctypes.create_string_buffer(4096)
        lim = (ctypes.c_int64 * 3)(*limits) if limits else None
        rc = self.lib.emu_plan_json(
            *self._shape_args(x_shape, w_shape, stride, pad_lo, pad_hi, dilation),
            groups,
            DTYPE_CODES[dtype],
            lim,
            out,
            len(out),
        )
        if rc:
            raise EmulatorError(out.value.decode())
        return json.loads(out.value.decode())

    def check_pipeline(self, x_shape, w_shape, dtype: str, facts, **params) -> str:
        """The Metal host's pipeline check on the planned dispatch; facts =
        (max total threads, execution width, static threadgroup memory,
        device max threadgroup memory). Returns "" if it passes, else the
        error message."""
        p = {"stride": (1, 1, 1), "pad_lo": (0, 0, 0), "pad_hi": (0, 0, 0), "dilation": (1, 1, 1), **params}
        out = ctypes.create_string_buffer(1024)
        rc = self.lib.emu_check_pipeline(
            *self._shape_args(x_shape, w_shape, p["stride"], p["pad_lo"], p["pad_hi"], p["dilation"]),
            p.get("groups", 1),
            DTYPE_CODES[dtype],
            (ctypes.c_uint64 * 4)(*facts),
            out,
            len(out),
        )
        return out.value.decode() if rc else ""

    def conv3d(
        self,
        x: np.ndarray,
        w: np.ndarray,
        dtype: str,
        stride=(1, 1, 1),
        pad_lo=(0, 0, 0),
        pad_hi=(0, 0, 0),
        dilation=(1, 1, 1),
        groups=1,
    ):
        """Runs the planned kernel on x and w converted to dtype. Returns the
        output as float64 and the device bytes (read, written)."""
        y, counters = self.run(x, w, dtype, stride, pad_lo, pad_hi, dilation, groups)
        return y, counters[:2]

    def run(
        self,
        x,
        w,
        dtype,
        stride=(1, 1, 1),
        pad_lo=(0, 0, 0),
        pad_hi=(0, 0, 0),
        dilation=(1, 1, 1),
        groups=1,
        sample_stride=1,
    ):
        """conv3d running only every sample_stride-th threadgroup (the output is
        then partial). Returns (output, (bytes read, bytes written,
        threadgroups run, threadgroups in the grid))."""
        xd, wd = to_device(x, dtype), to_device(w, dtype)
        y = np.zeros(output_shape(x.shape, w.shape, stride, pad_lo, pad_hi, dilation), dtype=xd.dtype)
        counters = (ctypes.c_uint64 * 4)()
        err = ctypes.create_string_buffer(4096)
        rc = self.lib.emu_conv3d(
            *self._shape_args(x.shape, w.shape, stride, pad_lo, pad_hi, dilation),
            groups,
            DTYPE_CODES[dtype],
            xd.ctypes.data,
            wd.ctypes.data,
            y.ctypes.data,
            sample_stride,
            counters,
            err,
            len(err),
        )
        if rc:
            raise EmulatorError(err.value.decode())
        return from_device(y, dtype), tuple(int(c) for c in counters)

    def conv3d_fused(
        self,
        x,
        w,
        dtype: str,
        pad_lo=(0, 0, 0),
        pad_hi=(0, 0, 0),
        padding_mode=("zeros",) * 3,
        bias=None,
        activation=None,
        residual=None,
        stride=(1, 1, 1),
        dilation=(1, 1, 1),
        groups=1,
    ) -> np.ndarray:
        """conv3d with padding modes (one per axis) and the fused epilogue:
        bias (C_out,) sent as float32, activation None/"relu"/"silu"/"gelu_tanh",
        residual of the output's shape (converted to dtype). Returns the output
        as float64."""
        modes = {"zeros": 0, "reflect": 1, "replicate": 2, "circular": 3}
        acts = {None: 0, "relu": 1, "silu": 2, "gelu_tanh": 3}
        xd, wd = to_device(x, dtype), to_device(w, dtype)
        y = np.zeros(output_shape(x.shape, w.shape, stride, pad_lo, pad_hi, dilation), dtype=xd.dtype)
        b = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
        r = None if residual is None else to_device(residual, dtype)
        if r is not None and r.shape != y.shape:
            raise ValueError(f"residual shape {r.shape} is not the output's {y.shape}")
        err = ctypes.create_string_buffer(4096)
        rc = self.lib.emu_conv3d_fused(
            *self._shape_args(x.shape, w.shape, stride, pad_lo, pad_hi, dilation),
            groups,
            DTYPE_CODES[dtype],
            (ctypes.c_int * 3)(*[modes[m] for m in padding_mode]),
            acts[activation],
            xd.ctypes.data,
            wd.ctypes.data,
            y.ctypes.data,
            None if b is None else b.ctypes.data,
            None if r is None else r.ctypes.data,
            err,
            len(err),
        )
        if rc:
            raise EmulatorError(err.value.decode())
        return from_device(y, dtype)

    def probe(self, kernel: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Runs a lane_probe.metal kernel on one simdgroup; a, b: 64 float32."""
        a = np.ascontiguousarray(a, dtype=np.float32).ravel()
        b = np.ascontiguousarray(b, dtype=np.float32).ravel()
        out = np.full(64, np.nan, dtype=np.float32)
        err = ctypes.create_string_buffer(1024)
        if self.lib.emu_probe(kernel.encode(), a.ctypes.data, b.ctypes.data, out.ctypes.data, err, len(err)):
            raise EmulatorError(err.value.decode())
        return out

    def run_kernel(self, kernel: str, a, b, threads: int = 32, threadgroup_memory: int = 0) -> np.ndarray:
        """Runs any registered kernel (e.g. a mutant) as one threadgroup of
        `threads` threads; a, b: 64 float32 (input, weight); returns output."""
        a = np.ascontiguousarray(a, dtype=np.float32).ravel()
        b = np.ascontiguousarray(b, dtype=np.float32).ravel()
        assert a.size == 64 and b.size == 64
        out = np.zeros(64, dtype=np.float32)
        err = ctypes.create_string_buffer(4096)
        rc = self.lib.emu_run_kernel(
            kernel.encode(),
            threads,
            threadgroup_memory,
            a.ctypes.data,
            b.ctypes.data,
            out.ctypes.data,
            err,
            len(err),
        )
        if rc:
            raise EmulatorError(err.value.decode())
        return out

    def set_barrier_timeout_ms(self, milliseconds: int) -> None:
        """How long a kernel thread waits at a barrier before the dispatch fails."""
        self.lib.emu_set_barrier_timeout_ms(milliseconds)

    def kernel_names(self, plannable: bool = False) -> list[str]:
        out = ctypes.create_string_buffer(1 << 16)
        self.lib.emu_kernel_names(1 if plannable else 0, out, len(out))
        return out.value.decode().split()

    def set_lane_layout(self, wrong: bool) -> None:
        self.lib.emu_set_lane_layout(1 if wrong else 0)

    def force_64bit_index(self, on: bool) -> None:
        """Plans take the "_large" (64-bit index) kernels even where 32-bit fits."""
        self.lib.emu_force_64bit_index(1 if on else 0)

    def self_check(self) -> tuple[str, np.ndarray]:
        """The Metal host's lane-layout self-check, run on the emulated GPU:
        ("" if it passes, else the reason; the kernel's 192 output floats)."""
        out = np.full(192, np.nan, dtype=np.float32)
        reason = ctypes.create_string_buffer(1024)
        rc = self.lib.emu_self_check(out.ctypes.data, reason, len(reason))
        return (reason.value.decode() if rc else ""), out

    def float_to_bfloat(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        out = np.empty(x.shape, dtype=np.uint16)
        self.lib.emu_float_to_bfloat(x.ctypes.data, out.ctypes.data, x.size)
        return out


def library_path(library: str = "msl_emulator") -> Path:
    """A library of the emulator build: msl_emulator (the kernels),
    msl_emulator_mutants or msl_emulator_duplicate_names (tests/emulator/mutants).
    From VOLCONV_EMU_LIB's folder (a prebuilt, e.g. sanitizer, build) or built
    into build/emulator."""
    path = os.environ.get("VOLCONV_EMU_LIB")
    main = Path(path) if path else build()
    return main.with_name(f"lib{library}.so")


def build_dir() -> Path:
    """The build folder (kernel_flags_*.rsp, the libraries)."""
    return library_path().parent


def load() -> Emulator:
    """The emulator, from VOLCONV_EMU_LIB (a prebuilt, e.g. sanitizer, library)
    or built into build/emulator."""
    return Emulator(library_path())
