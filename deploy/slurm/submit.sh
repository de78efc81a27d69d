#!/usr/bin/env bash
# Submit a sharded generation: the job array (generate.sbatch, one task per shard) and the merge
# job (merge.sbatch) that runs once every task has succeeded. Prints both job ids and keeps them
# in SYNTH_SCRATCH/jobs for requeue.sh. Running it again for the same SYNTH_OUT is safe: every
# shard resumes, finished ones in seconds.
#
#   SYNTH_SOURCE=dialogs.jsonl SYNTH_OUT=/scratch/me/dataset SYNTH_SHARD_COUNT=8 deploy/slurm/submit.sh
#
# Settings besides those of generate.sbatch:
#   SYNTH_GRES              the tasks' --gres (default the script's gpu:1; "none" on CPU nodes)
#   SYNTH_SBATCH_ARGS       more sbatch options for both jobs ("--partition=gpu --time=12:00:00")
#   SYNTH_MERGE_SBATCH_ARGS more sbatch options for the merge job only ("--partition=cpu")
#   SYNTH_ARRAY_LIMIT       run at most this many tasks at once (--array=0-N%LIMIT)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"

synth_require SYNTH_SOURCE SYNTH_OUT SYNTH_SHARD_COUNT
[[ "$SYNTH_SHARD_COUNT" =~ ^[1-9][0-9]*$ ]] || synth_die "SYNTH_SHARD_COUNT must be a whole number from 1"
[[ -z "${SYNTH_ARRAY_LIMIT:-}" || "$SYNTH_ARRAY_LIMIT" =~ ^[1-9][0-9]*$ ]] ||
    synth_die "SYNTH_ARRAY_LIMIT must be a whole number from 1"
# jobs start in other folders and on other nodes: every path absolute
[[ -e "$SYNTH_SOURCE" ]] && SYNTH_SOURCE="$(synth_absolute "$SYNTH_SOURCE")"
SYNTH_OUT="$(synth_absolute "$SYNTH_OUT")"
SYNTH_SCRATCH="$(synth_absolute "$(synth_scratch)")"
export SYNTH_SOURCE SYNTH_OUT SYNTH_SCRATCH SYNTH_SHARD_COUNT SYNTH_SLURM_DIR="$here"
mkdir -p "$SYNTH_SCRATCH/logs"

read -r -a common <<<"${SYNTH_SBATCH_ARGS:-}"
read -r -a merge_only <<<"${SYNTH_MERGE_SBATCH_ARGS:-}"
gres=()
[[ -n "${SYNTH_GRES:-}" ]] && gres=(--gres="$SYNTH_GRES")
range="0-$((SYNTH_SHARD_COUNT - 1))${SYNTH_ARRAY_LIMIT:+%$SYNTH_ARRAY_LIMIT}"

array_job="$(sbatch --parsable --export=ALL --array="$range" "${gres[@]}" \
    --output="$SYNTH_SCRATCH/logs/generate-%A_%a.out" "${common[@]}" "$here/generate.sbatch")"
array_job="${array_job%%;*}" # --parsable prints ID or ID;CLUSTER
# afterok on the whole array: it holds through requeues of running tasks (node failure,
# preemption, scontrol requeue); after a task was cancelled, requeue.sh sets it again.
merge_job="$(sbatch --parsable --export=ALL --dependency="afterok:$array_job" \
    --output="$SYNTH_SCRATCH/logs/merge-%j.out" "${common[@]}" "${merge_only[@]}" "$here/merge.sbatch")"
merge_job="${merge_job%%;*}"

printf 'array=%s\nmerge=%s\nshards=%s\n' "$array_job" "$merge_job" "$SYNTH_SHARD_COUNT" >"$SYNTH_SCRATCH/jobs.tmp"
mv -f "$SYNTH_SCRATCH/jobs.tmp" "$SYNTH_SCRATCH/jobs"
echo "synth-generate $array_job: array $range, one task per shard, into $SYNTH_SCRATCH/shard-*"
echo "synth-merge $merge_job: after every task of $array_job succeeds, into $SYNTH_OUT"
echo "logs: $SYNTH_SCRATCH/logs"
