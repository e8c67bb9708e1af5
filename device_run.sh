#!/bin/bash
# one device call: build, ISA test, bench both modes at 16 threads, pool comparison, tests
O=${OUT:-/tmp/out}; mkdir -p "$O"
PY=/opt/torch/.venv/bin/python3; [ -x $PY ] || PY=python3
T0=$(date +%s); t() { echo "[$(( $(date +%s)-T0 ))s] $*"; }
lscpu | grep -E "Model name|^CPU\(s\)|Thread|Core|Flags" | cut -c1-400 > "$O/cpu.txt"
export CMAKE_BUILD_PARALLEL_LEVEL=16
timeout 220 $PY -m pip install --no-build-isolation --no-deps -q . > "$O/build.txt" 2>&1; t "build rc=$?"
$PY -c "import volconv, torch; from volconv import _core; print(_core._cpu_isa(), _core._cpu_supported_isas(), torch.__version__)" 2>&1
HAVE_PYTEST=0; $PY -m pytest --version >/dev/null 2>&1 && HAVE_PYTEST=1
[ $HAVE_PYTEST = 1 ] && { timeout 30 $PY -m pytest -q tests/test_isa_table.py > "$O/test_isa.txt" 2>&1; t "isa test rc=$? $(tail -1 $O/test_isa.txt)"; }
timeout 170 $PY bench/conv3d_cpu.py --threads 16 --no-mlx --low-precision "" --repeats 3 --plot "$O/iso.png" > "$O/bench.txt" 2>&1; t "bench rc=$?"
grep -A40 "coexistence" "$O/bench.txt"; grep -E "geomean" "$O/bench.txt"
timeout 50 $PY bench/conv3d_cpu.py --threads 16 --no-mlx --low-precision "" --repeats 3 --mode after-torch --route pool > "$O/bench_pool.txt" 2>&1; t "bench pool rc=$?"
grep -E "geomean" "$O/bench_pool.txt"
[ $HAVE_PYTEST = 1 ] && { timeout 120 $PY -m pytest -q -x tests/test_coexistence.py tests/test_thread_pool.py tests/test_process_lifecycle.py > "$O/tests.txt" 2>&1; t "tests rc=$? $(tail -1 $O/tests.txt)"; }
t done
