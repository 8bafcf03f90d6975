#!/usr/bin/env bash
# Runs last in every GPU job, whatever happened before it. Each stage ran in its own sdpipe process, so no
# process of this job should hold GPU memory now; one that does (a hung or orphaned stage) would starve the
# next job on this runner. Such processes are named, stopped by their id (only those carrying this job's
# RUNNER_TRACKING_ID, so never another job's or the machine's), and the GPU state is printed for the log.
set -uo pipefail

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "nvidia-smi is not on PATH: cannot check the GPU (see docs/self-hosted-runner.md)"
  exit 0
fi

ours=()
while IFS=',' read -r pid name memory; do
  pid="${pid// /}"
  [ -n "$pid" ] || continue
  if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qxF "RUNNER_TRACKING_ID=${RUNNER_TRACKING_ID:-none}"; then
    echo "::warning::process $pid (${name# }) of this job still holds${memory} MiB of GPU memory after the run; stopping it"
    ours+=("$pid")
  fi
done < <(nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv,noheader,nounits)

if [ "${#ours[@]}" -gt 0 ]; then
  kill -TERM "${ours[@]}" 2>/dev/null
  for _ in $(seq 1 30); do
    alive=()
    for pid in "${ours[@]}"; do if kill -0 "$pid" 2>/dev/null; then alive+=("$pid"); fi; done
    [ "${#alive[@]}" -eq 0 ] && break
    sleep 1
  done
  if [ "${#alive[@]}" -gt 0 ]; then kill -KILL "${alive[@]}" 2>/dev/null; fi
fi

nvidia-smi --query-gpu=index,name,memory.used,memory.total,utilization.gpu --format=csv
