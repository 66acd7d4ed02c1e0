#!/usr/bin/env bash
# Seconds each command takes to answer before it does any work: --help, --cfg job, and a
# misspelt key (which must stop at once). Run from the repository root:
#   bash experiments/startup.sh
set -u
measure() {  # name, then the command
    local name=$1; shift
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    end=$(date +%s.%N)
    printf '%-44s %5.2f s\n' "$name" "$(echo "$end - $start" | bc)"
}
for command in train bench; do
    measure "$command --help" python -m bert_pos.$command --help
    measure "$command --cfg job" python -m bert_pos.$command --cfg job
    measure "$command optim.lrr=1 (misspelt)" python -m bert_pos.$command optim.lrr=1
done
measure "evaluate --help" python -m bert_pos.evaluate --help
measure "evaluate --cfg job" python -m bert_pos.evaluate run_dir=x --cfg job
measure "evaluate splitt=test (misspelt)" python -m bert_pos.evaluate run_dir=x splitt=test
measure "predict --help" python -m bert_pos.predict --help
measure "predict --cfg job" python -m bert_pos.predict model_dir=x --cfg job
measure "predict formatt=jsonl (misspelt)" python -m bert_pos.predict model_dir=x formatt=jsonl
measure "report --help" python -m bert_pos.report --help
measure "compare (no files)" python -m bert_pos.compare
