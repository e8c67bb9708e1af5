#!/bin/bash
# ncu counters of the tiled and pairs kernels (this checkout's and the base's, the
# large shape in bfloat16, each kernel once: `bench profile`), as CSV on
# stdout: time, warp instructions issued, the FMA share, issue and pipe
# utilisation, shared-memory wavefronts and the main stall reasons.
# Run after run.sh has built ./bench (or give another build of bench.cu):
#   bash tests/cuda/tiled_bench/profile.sh [BINARY]
cd "$(dirname "$0")" || exit 1
stall=smsp__average_warps_issue_stalled
m=gpu__time_duration.sum,smsp__inst_executed.sum,smsp__sass_thread_inst_executed_op_ffma_pred_on.sum
m+=,sm__throughput.avg.pct_of_peak_sustained_elapsed,dram__throughput.avg.pct_of_peak_sustained_elapsed
m+=,smsp__issue_active.avg.pct_of_peak_sustained_active,sm__warps_active.avg.per_cycle_active
m+=,launch__registers_per_thread,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum
m+=,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum
for r in barrier short_scoreboard long_scoreboard mio_throttle math_pipe_throttle not_selected wait lg_throttle \
  dispatch_stall no_instruction selected; do
  m+=,${stall}_${r}_per_issue_active.ratio
done
ncu --csv --metrics "$m" -k regex:"tiled|pairs" "${1:-./bench}" profile
