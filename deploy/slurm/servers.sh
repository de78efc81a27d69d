#!/usr/bin/env bash
# The synth servers that serve.sbatch jobs recorded in SYNTH_SERVICE_DIR, one HOST:PORT a line;
# with --flags, as `--server HOST:PORT ...` for `synth batch`. Where squeue is at hand, only jobs
# that are still running count (a node that crashed leaves its record behind).
#
#   synth batch $(deploy/slurm/servers.sh --flags) --dialogs more.jsonl --out copy
set -euo pipefail
[[ -n "${SYNTH_SERVICE_DIR:-}" ]] || { echo "servers.sh: SYNTH_SERVICE_DIR is not set" >&2; exit 2; }
flags=false
[[ "${1:-}" == --flags ]] && flags=true
found=0
for record in "$SYNTH_SERVICE_DIR"/*.json; do
    [[ -f "$record" ]] || continue
    job="${record##*/}"
    job="${job%.json}"
    if command -v squeue >/dev/null && [[ "$(squeue -h -j "$job" -o %T 2>/dev/null)" != RUNNING ]]; then
        continue
    fi
    server="$(sed -n 's/.*"server": "\([^"]*\)".*/\1/p' "$record")"
    [[ -n "$server" ]] || continue
    found=$((found + 1))
    if $flags; then printf -- '--server %s ' "$server"; else printf '%s\n' "$server"; fi
done
$flags && ((found > 0)) && echo
((found > 0)) || { echo "servers.sh: no running synth server recorded in $SYNTH_SERVICE_DIR" >&2; exit 1; }
