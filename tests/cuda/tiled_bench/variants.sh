#!/bin/bash
# The micro-benchmark once per forward tile variant: each "COLS BLOCKS" pair
# overrides depthwise_plan.h's kDataTileCols and kDataTileBlocks. Per variant
# into OUTDIR: the bench (checked bit for bit against the base's kernels),
# the ncu counters (profile.sh) and racecheck on the small edge shapes.
#   bash tests/cuda/tiled_bench/variants.sh OUTDIR "8 4" "16 2"
cd "$(dirname "$0")" || exit 1
out=$(realpath "$1") && shift
root=$(cd ../../.. && pwd)
flags=(-std=c++17 -arch=sm_90 -O3 -I"$root/csrc/include")
if [[ ! -d base_src ]]; then
  mkdir -p base_src && git -C "$root" archive main csrc/cuda csrc/core | tar -x --strip-components=1 -C base_src || exit 1
fi
nvcc "${flags[@]}" -c base.cu -o base.o &
for v in "$@"; do
  read -r cols blocks <<<"$v"
  nvcc "${flags[@]}" -DVOLCONV_DATA_TILE_COLS="$cols" -DVOLCONV_DATA_TILE_BLOCKS="$blocks" -c bench.cu \
    -o "bench_${cols}_$blocks.o" &
done
wait
for v in "$@"; do
  read -r cols blocks <<<"$v"
  b=bench_${cols}_$blocks
  nvcc -arch=sm_90 "$b.o" base.o -o "$b" || continue
  echo "== $b"
  ./"$b" >"$out/$b.log" 2>&1
  grep -E "copy|1x17|2x32" "$out/$b.log" | grep -v pool
  grep -c bit-identical "$out/$b.log"
  grep -E "DIFF|error" "$out/$b.log"
  bash profile.sh ./"$b" >"$out/ncu_$b.csv" 2>"$out/ncu_$b.err"
  timeout 120 compute-sanitizer --tool racecheck --error-exitcode 1 ./"$b" race >"$out/race_$b.log" 2>&1
  echo "racecheck exit $?: $(grep -E 'RACECHECK SUMMARY' "$out/race_$b.log")"
done
