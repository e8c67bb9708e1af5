#!/bin/bash
# One deliberate bug on the device: replaces the first OLD with NEW in FILE,
# rebuilds and installs, runs pytest with the remaining arguments (which
# should now fail), then restores FILE with a fresh time stamp and installs
# the restored build again.
#   bash tests/cuda/mutant.sh csrc/cuda/x.cu 'old text' 'new text' tests/test_x.py -k name
cd "$(dirname "$0")/../.." || exit 1
file=$1 old=$2 new=$3
shift 3
cp "$file" "$file.orig"
python3 - "$file" "$old" "$new" <<'PY' || { mv "$file.orig" "$file"; exit 2; }
import sys
path, old, new = sys.argv[1:4]
text = open(path).read()
assert old in text, f"mutation text not found in {path}"
open(path, "w").write(text.replace(old, new, 1))
PY
echo "== mutant: $file: '$old' -> '$new'"
python3 -m pip install --no-build-isolation --no-deps -q . 2>&1 | tail -2
timeout 90 python3 -m pytest -q -p no:cacheprovider "$@" 2>&1 | tail -3
mv "$file.orig" "$file"
# The restored file keeps the copy's older time stamp, which the mutant's
# objects postdate: without a fresh one the next build would keep the mutant.
# Rebuilt now, not at the next call: the device tool's next copy of the tree
# brings the file back with its old time stamp, and a warm machine kept the
# mutant's objects (session 19 lost two calls' bench to a mutant pairs kernel
# that way: it stalled at its first row).
touch "$file"
python3 -m pip install --no-build-isolation --no-deps -q . 2>&1 | tail -2
