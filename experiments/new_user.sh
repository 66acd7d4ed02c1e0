#!/usr/bin/env bash
# A new user's mistakes, re-run: what each command prints and how long it takes to say it.
#   bash experiments/new_user.sh [work folder]      # from the repository root; ~4 minutes on CPU
# Real data: $BERT_POS_DATA/conll2003 (default ../shared/data/conll2003).
set -u
WORK=${1:-/tmp/bert_pos_new_user}
CONLL=${BERT_POS_DATA:-../shared/data}/conll2003
rm -rf "$WORK" && mkdir -p "$WORK"
RUN=$WORK/demo_run
show() {  # title, then the command; prints the last lines of its output, exit code and time
    local title=$1; shift
    echo "### $title"
    echo "\$ $*"
    local start end
    start=$(date +%s.%N)
    "$@" > "$WORK/out.txt" 2>&1
    local code=$?
    end=$(date +%s.%N)
    tail -n 4 "$WORK/out.txt"
    printf '(exit %d, %.1f s)\n\n' "$code" "$(echo "$end - $start" | bc)"
}
python -m bert_pos.train +experiment=demo epochs=2 "data.demo_sentences={train: 600, validation: 100, test: 100}" \
    data.cache_dir=null hydra.run.dir="$RUN" > "$WORK/train.txt" 2>&1

show "a typo added with + (Hydra's own hint)" python -m bert_pos.train +experiment=demo +optim.lrr=1e-3
show "a missing data folder" python -m bert_pos.train +experiment=baseline model=minilm data.dir=/no/such/folder
mkdir -p "$WORK/broken"
printf 'EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP\n\n' > "$WORK/broken/train.txt"
cp "$WORK/broken/train.txt" "$WORK/broken/validation.txt"
show "a broken line" python -m bert_pos.train +experiment=baseline model=minilm data.dir="$WORK/broken" data.test_file=null
show "a missing model_dir" python -m bert_pos.predict model_dir=/no/such/model
python - "$RUN/model/README.md" > "$WORK/snippet.py" <<'PY'
import sys
card = open(sys.argv[1]).read()
print(card.split("## How to use", 1)[1].split("```python\n", 1)[1].split("```", 1)[0])
PY
show "the model card's pipeline snippet" python "$WORK/snippet.py"
echo "Sator said on Monday that Isvello Motors would open an office in Viport ." > "$WORK/sentence.txt"
show "bert_pos.predict on the same sentence" python -m bert_pos.predict model_dir="$RUN" input="$WORK/sentence.txt" format=jsonl
show "evaluate, default settings" python -m bert_pos.evaluate run_dir="$RUN" split=test
show "evaluate again, other settings" python -m bert_pos.evaluate run_dir="$RUN" split=test checkpoint=last mode=strict level=subword
echo "### the evaluation folders"; ls "$RUN/eval"; echo
show "bf16 on this CPU (auto picks what it runs natively)" python -c "
import torch; from bert_pos.runtime.devices import cpu_description, resolve_precision
print(cpu_description(), '| auto ->', resolve_precision('auto', torch.device('cpu')))"
# An AVX2 CPU's kernels, on any CPU: oneDNN (which runs the matmuls) and ATen capped at AVX2, where
# bf16 has no instructions and is emulated. The same 20 steps of MiniLM with each precision.
AVX2_ONLY=(env ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2)
MINILM=(+experiment=baseline model=minilm "data.dir=$CONLL" max_steps=20
        data.max_train_sentences=400 data.max_eval_sentences=50 progress_every_s=5 data.cache_dir=null)
if [ -d "$CONLL" ]; then
    for precision in auto bf16 fp32; do
        show "precision=$precision with AVX2 kernels" "${AVX2_ONLY[@]}" python -m bert_pos.train "${MINILM[@]}" \
            precision=$precision hydra.run.dir="$WORK/avx2_$precision"
        grep -h "WARNING\|precision .* on cpu" "$WORK/out.txt" | cut -d' ' -f3-
        python -c "import json, sys; print('train tokens/s: %.0f' % json.load(open(sys.argv[1]))['train_tokens_per_s'])" \
            "$WORK/avx2_$precision/metrics.json"
        echo
    done
fi

# Round 2: typos with and without `+`, a wrong data path (neither leaves a run folder), and a
# short run's console: when its first progress line comes and what each line says.
run_folders() { find experiments/runs -mindepth 2 -maxdepth 2 -type d 2>/dev/null | wc -l; }
before=$(run_folders)
RECIPE=(+experiment=baseline model=minilm "data.dir=$CONLL")
show "a typo" python -m bert_pos.train "${RECIPE[@]}" max_step=300
show "the same typo with +" python -m bert_pos.train "${RECIPE[@]}" +max_step=300
show "a key without its group" python -m bert_pos.train "${RECIPE[@]}" lr=1e-3
show "a typo in evaluate" python -m bert_pos.evaluate run_dir="$RUN" chekpoint=last
show "a wrong data path" python -m bert_pos.train +experiment=baseline model=minilm data.dir=/no/such/folder
echo "### run folders under experiments/runs: $before before these, $(run_folders) after"; echo
if [ -d "$CONLL" ]; then
    echo "### a 300-step run's console (stdout to a file), less its result tables"
    echo "\$ python -m bert_pos.train ${RECIPE[*]} max_steps=300 > console.log"
    echo "started $(date '+%H:%M:%S')"
    python -m bert_pos.train "${RECIPE[@]}" max_steps=300 hydra.run.dir="$WORK/short" \
        > "$WORK/console.log" 2>&1
    grep -v '^|' "$WORK/console.log"
    echo "lines with terminal escape codes (console, train.log):" \
        "$(grep -c $'\x1b\\[' "$WORK/console.log")" "$(grep -c $'\x1b\\[' "$WORK/short/train.log")"
fi
