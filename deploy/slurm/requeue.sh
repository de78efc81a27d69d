#!/usr/bin/env bash
# Run shards of a submitted generation again: `scontrol requeue` each task (running or ended:
# failed, cancelled, killed), which resumes its shard, then make the merge job wait for it.
#
#   SYNTH_OUT=/scratch/me/dataset deploy/slurm/requeue.sh 3 [5 ...]     # shard (task) numbers
#
# Why the merge job needs setting again: Slurm (checked on 22.05) keeps a cancelled or failed
# task's exit status in the array's record, so `afterok:<array>` never fires once a task has
# ended badly, even when the requeued task then succeeds; a dependency on the tasks one by one
# is checked afresh. A merge job that already ended is submitted anew. The job ids are read from
# SYNTH_SCRATCH/jobs (written by submit.sh) and updated there.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"

synth_require SYNTH_OUT
(($# > 0)) || synth_die "usage: requeue.sh SHARD [SHARD ...]"
scratch="$(synth_absolute "$(synth_scratch)")"
[[ -f "$scratch/jobs" ]] || synth_die "no $scratch/jobs: submit with submit.sh first"
jobs_value() { sed -n "s/^$1=\([0-9]*\)$/\1/p" "$scratch/jobs"; }
array_job="$(jobs_value array)"
merge_job="$(jobs_value merge)"
shards="$(jobs_value shards)"
[[ -n "$array_job" && -n "$merge_job" && -n "$shards" ]] || synth_die "$scratch/jobs is incomplete"

for task in "$@"; do
    if ! [[ "$task" =~ ^[0-9]+$ ]] || ((task >= shards)); then
        synth_die "$task is not a shard of 0..$((shards - 1))"
    fi
    scontrol requeue "${array_job}_${task}"
    echo "requeued ${array_job}_${task}"
done

each="afterok"
for ((i = 0; i < shards; i++)); do
    each+=":${array_job}_${i}"
done
state="$(squeue -h -j "$merge_job" -o %T 2>/dev/null || true)"
if [[ "$state" == PENDING ]]; then
    scontrol update JobId="$merge_job" Dependency="$each"
    echo "synth-merge $merge_job: waits for tasks 0..$((shards - 1)) of $array_job"
else
    SYNTH_OUT="$(synth_absolute "$SYNTH_OUT")"
    export SYNTH_OUT SYNTH_SCRATCH="$scratch" SYNTH_SHARD_COUNT="$shards" SYNTH_SLURM_DIR="$here"
    read -r -a common <<<"${SYNTH_SBATCH_ARGS:-}"
    read -r -a merge_only <<<"${SYNTH_MERGE_SBATCH_ARGS:-}"
    merge_job="$(sbatch --parsable --export=ALL --dependency="$each" \
        --output="$scratch/logs/merge-%j.out" "${common[@]}" "${merge_only[@]}" "$here/merge.sbatch")"
    merge_job="${merge_job%%;*}"
    printf 'array=%s\nmerge=%s\nshards=%s\n' "$array_job" "$merge_job" "$shards" >"$scratch/jobs.tmp"
    mv -f "$scratch/jobs.tmp" "$scratch/jobs"
    echo "synth-merge $merge_job: new, after tasks 0..$((shards - 1)) of $array_job"
fi
