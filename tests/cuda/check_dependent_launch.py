"""The order the non-finite fix-up relies on, read from the compiled SASS
(no GPU needed: CI runs it on the objects of its compile-only CUDA step).

dw_data_nonfinite_fix (csrc/cuda/depthwise_nonfinite.cuh) is launched as a
programmatic dependent of the row3 / tiled / pairs forward and input
gradient, so it may run while they still write. Its outputs are only right
if it waits for them (griddepcontrol.wait, SASS ACQBULK) before its first
global store, and on every path out of the kernel (the stream's next work
then sees the march's outputs). A race there did not show in the GPU tests
(session 20: the wait removed, test_nonfinite_depthwise_devices still
passed), so this reads it off the code instead. The march kernels must
allow the early launch (launch_dependents, SASS PREEXIT), or the fix-up
costs a full launch gap a call.

    python3 tests/cuda/check_dependent_launch.py CUOBJDUMP OBJECT...
"""

from __future__ import annotations

import re
import subprocess
import sys

FIX = "dw_data_nonfinite_fix"
MARCHES = ("dw_data_row3", "dw_data_tiled", "dw_data_pairs")


def functions(cuobjdump: str, path: str) -> dict[str, list[str]]:
    """Each kernel's SASS instructions (opcode and operands, predicate kept)."""
    run = subprocess.run([cuobjdump, "-sass", path], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"check_dependent_launch: {cuobjdump} -sass {path} failed: {run.stderr.strip()}")
    text = run.stdout
    found: dict[str, list[str]] = {}
    name = None
    for line in text.splitlines():
        head = re.search(r"Function : (\S+)", line)
        if head:
            name = head.group(1)
            found[name] = []
            continue
        inst = re.match(r"\s+/\*[0-9a-f]{4,}\*/\s+(.*?)\s*;", line)
        if inst and name:
            found[name].append(inst.group(1))
    return found


def opcode(inst: str) -> str:
    return re.sub(r"^@!?U?P\w+\s+", "", inst).split()[0].split(".")[0]


def fix_problems(name: str, code: list[str]) -> list[str]:
    ops = [opcode(i) for i in code]
    if "ACQBULK" not in ops:
        return [f"{name}: no grid-dependency wait (ACQBULK)"]
    wait = ops.index("ACQBULK")
    problems = []
    stores = [k for k, op in enumerate(ops) if op in ("STG", "ST", "RED", "ATOM", "ATOMG")]
    if stores and stores[0] < wait:
        problems.append(f"{name}: a global store at instruction {stores[0]} before the wait at {wait}")
    # Every exit after the wait: an EXIT before it would end this grid while
    # the march may still run.
    early = [k for k, op in enumerate(ops) if op == "EXIT" and k < wait]
    if early:
        problems.append(f"{name}: EXIT at instruction {early[0]} before the wait at {wait}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__)
        return 2
    cuobjdump, paths = argv[1], argv[2:]
    seen = {"fix": 0, "march": 0}
    problems: list[str] = []
    for path in paths:
        for name, code in functions(cuobjdump, path).items():
            if FIX in name:
                seen["fix"] += 1
                problems += fix_problems(name, code)
            elif any(m in name for m in MARCHES):
                seen["march"] += 1
                if "PREEXIT" not in (opcode(i) for i in code):
                    problems.append(f"{name}: does not allow the dependent launch (no PREEXIT)")
    if not seen["fix"] or not seen["march"]:
        problems.append(f"expected the fix-up and march kernels in {paths}, found {seen}")
    for p in problems:
        print("check_dependent_launch:", p)
    print(
        f"check_dependent_launch: {seen['fix']} fix-up and {seen['march']} march kernels read, "
        f"{len(problems)} problems"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
