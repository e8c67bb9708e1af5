"""ctypes front end of the emulator's training-op ABI (emu_training_api.cpp):
the core lowers the call, the training planner plans it, and exactly that
plan's dispatches run on the emulated GPU. Used by
tests/test_metal_emulated_training.py and bench/metal_intensity.py."""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import msl_emulator
import numpy as np
from msl_emulator import DTYPE_CODES, EmulatorError, from_device, to_device

OPS = {
    "conv_general": 0,
    "conv_transpose3d": 1,
    "conv3d_grad_input": 2,
    "conv_transpose3d_grad_input": 3,
    "conv3d_grad_weight": 4,
    "conv_transpose3d_grad_weight": 5,
    "conv_general_grad_weight": 6,
}


PADDING_MODES = {"zeros": 0, "reflect": 1, "replicate": 2, "circular": 3}


def params_vector(
    stride=(1, 1, 1),
    pad_lo=(0, 0, 0),
    pad_hi=(0, 0, 0),
    dilation=(1, 1, 1),
    input_dilation=(1, 1, 1),
    output_padding=(0, 0, 0),
    groups=1,
    flip=False,
    padding_mode=("zeros",) * 3,
) -> list[int]:
    """emu_training_*'s params: dilation is the kernel dilation; padding_mode
    per axis (conv3d's gradients)."""
    modes = [PADDING_MODES[m] for m in padding_mode]
    return [*stride, *pad_lo, *pad_hi, *dilation, *input_dilation, *output_padding, groups, int(flip), *modes]


class TrainingEmulator:
    def __init__(self, emulator):
        self.lib = emulator.lib
        i64p = ctypes.POINTER(ctypes.c_int64)
        self.lib.emu_training_options.argtypes = [i64p]
        self.lib.emu_training_plan_json.argtypes = [ctypes.c_int, i64p, i64p, i64p, i64p, ctypes.c_int, i64p]
        self.lib.emu_training_plan_json.argtypes += [ctypes.c_char_p, ctypes.c_int64]
        self.lib.emu_training_run.argtypes = [ctypes.c_int, i64p, i64p, i64p, i64p, ctypes.c_int]
        self.lib.emu_training_run.argtypes += [ctypes.c_void_p] * 3
        self.lib.emu_training_run.argtypes += [
            ctypes.POINTER(ctypes.c_uint64),
            ctypes.c_char_p,
            ctypes.c_int64,
        ]
        self.lib.emu_training_kernel_names.argtypes = [ctypes.c_char_p, ctypes.c_int64]
        self.force()

    def force(self, index64: bool = False, family: int = -1, tile: int = -1) -> None:
        """Plans take the 64-bit kernels, family 0 (GEMM) or 1 (depthwise), a
        tile index; -1: the planner's own choice."""
        self.lib.emu_training_options((ctypes.c_int64 * 3)(int(index64), family, tile))

    @staticmethod
    def _args(op, a_shape, b_shape, c_shape, params):
        c_shape = c_shape or (0, 0, 0, 0, 0)
        shapes = [(ctypes.c_int64 * 5)(*[int(v) for v in s]) for s in (a_shape, b_shape, c_shape)]
        return [OPS[op], *shapes, (ctypes.c_int64 * 23)(*params_vector(**params))]

    def plan(self, op, a_shape, b_shape, dtype, c_shape=None, limits=None, **params) -> dict:
        out = ctypes.create_string_buffer(1 << 20)
        lim = (ctypes.c_int64 * 3)(*limits) if limits else None
        args = self._args(op, a_shape, b_shape, c_shape, params)
        if self.lib.emu_training_plan_json(*args, DTYPE_CODES[dtype], lim, out, len(out)):
            raise EmulatorError(out.value.decode())
        return json.loads(out.value.decode())

    def run(self, op, a, b, dtype, c_shape=None, **params):
        """Runs the planned dispatches on a, b converted to dtype; returns the
        result as float64 and (bytes read, bytes written, threadgroups, dispatches)."""
        plan = self.plan(op, a.shape, b.shape, dtype, c_shape, **params)
        ad, bd = to_device(a, dtype), to_device(b, dtype)
        result = np.full(
            plan["result_shape"], 0x7FFF if dtype == "bfloat16" else np.nan, dtype=ad.dtype
        )  # NaN
        counters = (ctypes.c_uint64 * 4)()
        err = ctypes.create_string_buffer(4096)
        args = self._args(op, a.shape, b.shape, c_shape, params)
        rc = self.lib.emu_training_run(
            *args,
            DTYPE_CODES[dtype],
            ad.ctypes.data,
            bd.ctypes.data,
            result.ctypes.data,
            counters,
            err,
            len(err),
        )
        if rc:
            raise EmulatorError(err.value.decode())
        return from_device(result, dtype), tuple(int(c) for c in counters)

    def kernel_names(self) -> list[str]:
        out = ctypes.create_string_buffer(1 << 16)
        self.lib.emu_training_kernel_names(out, len(out))
        return out.value.decode().split()


def mutant_names(family: str) -> set[str]:
    """The mutants tests/emulator/mutants/<family>/MUTANTS lists (four lines
    each, the name first), as tests/emulator/CMakeLists.txt reads them."""
    text = (Path(__file__).resolve().parent / "mutants" / family / "MUTANTS").read_text()
    return set([line for line in text.splitlines() if line and not line.startswith("#")][::4])


def mutant_emulator(family: str, name: str) -> TrainingEmulator:
    """A training emulator on the library built from that mutant."""
    library = msl_emulator.library_path(f"msl_emulator_{family}_mutant_{name}")
    return TrainingEmulator(msl_emulator.Emulator(library))
