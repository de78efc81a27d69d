#!/bin/bash
# A/B start-up (docs/benchmarks.md "Start-up"): bench/startup_ab.sh TREE voices|generate|help prints the
# wall seconds of one run of that command with the synth of TREE (a checkout; git worktree add for
# an older one), on the project venv and a shared model cache. Alternate two trees, 5 runs each.
. $(dirname "$0")/../.venv/bin/activate
export SYNTH_MODEL_CACHE=/tmp/startcache
tree=$1; what=$2
export PYTHONPATH=$tree:$tree/server:$tree/client
cd /tmp
echo '{"turns":["Hello there."]}' > /tmp/one.jsonl
s=$(date +%s.%N)
if [ "$what" = voices ]; then python -m synth.cli voices > /dev/null; elif [ "$what" = help ]; then python -m synth.cli --help >/dev/null; else rm -rf /tmp/g_$$; python -m synth.cli generate --dialogs /tmp/one.jsonl --out /tmp/g_$$ --quiet > /dev/null; rm -rf /tmp/g_$$; fi
e=$(date +%s.%N)
echo "$(echo "$e - $s" | bc)"
