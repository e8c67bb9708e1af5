import sys
from pathlib import Path

import numpy as np
import pytest

# tests/ holds shared helpers (reference.py, cases.py) imported by name.
sys.path.insert(0, str(Path(__file__).resolve().parent))

FLOAT_DTYPES = ["float32", "float16", "bfloat16", "float64"]


def numpy_dtype(name: str):
    if name == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        return ml_dtypes.bfloat16
    return np.dtype(name)


def cast(a: np.ndarray, name: str) -> np.ndarray:
    return np.asarray(a).astype(numpy_dtype(name))
