# Shared by the synth Slurm scripts (sourced, not run): how synth is started (a command on the
# node or an Apptainer image), the shard layout on scratch, and small checks. Every setting is an
# environment variable, so one copy of the scripts serves every run; docs/cluster.md lists them.

synth_die() {
    echo "synth slurm: $*" >&2
    exit 2
}

# synth_require NAME...: stop with a message naming the first unset variable.
synth_require() {
    local name
    for name in "$@"; do
        [[ -n "${!name:-}" ]] || synth_die "$name is not set (see docs/cluster.md)"
    done
}

# synth_command [FOLDER...]: set the array SYNTH to the command that runs synth.
#   SYNTH_CONTAINER unset: SYNTH_BIN (default "synth"; words split on spaces).
#   SYNTH_CONTAINER=IMAGE.sif: SYNTH_APPTAINER exec SYNTH_APPTAINER_FLAGS --bind FOLDER... IMAGE synth
#     (SYNTH_APPTAINER default "apptainer", SYNTH_APPTAINER_FLAGS default "--nv": the node's
#     NVIDIA driver and GPUs in the container; set it empty on CPU nodes). The FOLDERs (the
#     source's, the output's, scratch) are bound at the same paths. The image's own ENV (from the
#     Dockerfile) would win over the job's SYNTH_* settings, so each SYNTH_* variable of the job
#     is handed in as APPTAINERENV_SYNTH_*, which Apptainer sets inside over the image's value.
synth_command() {
    if [[ -z "${SYNTH_CONTAINER:-}" ]]; then
        # shellcheck disable=SC2034 # the caller runs "${SYNTH[@]}"
        read -r -a SYNTH <<<"${SYNTH_BIN:-synth}"
        return
    fi
    local flags=() binds=() folder name
    read -r -a flags <<<"${SYNTH_APPTAINER_FLAGS---nv}"
    for folder in "$@"; do
        [[ -n "$folder" ]] && binds+=(--bind "$folder")
    done
    for name in $(compgen -e); do
        [[ "$name" == SYNTH_* ]] && export "APPTAINERENV_$name=${!name}"
    done
    # shellcheck disable=SC2034 # the caller runs "${SYNTH[@]}"
    SYNTH=("${SYNTH_APPTAINER:-apptainer}" exec "${flags[@]}" "${binds[@]}" "$SYNTH_CONTAINER" synth)
}

# synth_shard_index: this array task's shard index, the way `synth generate --shard auto` reads
# it (synth/workflows/sharding.py): the task id itself when SYNTH_SHARD_COUNT is set, otherwise
# (id - min) / step. Used only to name the task's folder; synth picks the conversations.
synth_shard_index() {
    synth_require SLURM_ARRAY_TASK_ID
    if [[ -n "${SYNTH_SHARD_COUNT:-}" ]]; then
        echo "$SLURM_ARRAY_TASK_ID"
    else
        echo $(((SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0}) / ${SLURM_ARRAY_TASK_STEP:-1}))
    fi
}

# synth_scratch: the folder holding one dataset per shard (shard-0, shard-1, ...).
synth_scratch() {
    echo "${SYNTH_SCRATCH:-${SYNTH_OUT%/}.shards}"
}

# synth_absolute PATH: PATH made absolute against the current folder (which need not exist yet),
# so that jobs started elsewhere find it.
synth_absolute() {
    case "$1" in
    /*) echo "$1" ;;
    *) echo "$PWD/$1" ;;
    esac
}

# synth_parent PATH: the folder that holds PATH (for binding into a container).
synth_parent() {
    local path="${1%/}"
    [[ "$path" == */* ]] && echo "${path%/*}" || echo "$PWD"
}
