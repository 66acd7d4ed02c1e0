#!/usr/bin/env bash
# Linear vs CRF vs span head on CoNLL-2003 with the packaged MiniLM, same steps and seeds (issue 26):
#   bash experiments/heads.sh [steps]      # from the repository root; ~25 minutes on 2 CPU cores at 900
# The card's recipe but data.label_strategy=first (the CRF and span heads score words), seeds 42
# and 43; the span head with optim.head_lr=5e-4 (at the card's 2e-5 it learns almost nothing in
# 900 steps: RESULTS.md); then every pair compared paired on test, per seed. Data: $BERT_POS_DATA.
set -eu
STEPS=${1:-900}
CONLL=${BERT_POS_DATA:-../shared/data}/conll2003
OUT=experiments/runs/heads
python -c "import torch; print('CPU capability', torch.backends.cpu.get_cpu_capability())"
for seed in 42 43; do
    for head in linear crf span; do
        extra=$([ $head = span ] && echo optim.head_lr=5e-4 || true)
        python -m bert_pos.train +experiment=baseline model=minilm data.dir="$CONLL" max_steps=$STEPS \
            seed=$seed data.label_strategy=first model.head=$head $extra hydra.run.dir=$OUT/${head}_seed$seed
    done
    for pair in "linear crf" "linear span" "crf span"; do
        set -- $pair
        echo "== $1 vs $2, seed $seed (test)"
        python -m bert_pos.compare $OUT/${1}_seed$seed $OUT/${2}_seed$seed | head -3
    done
done
python - <<'PY'
import json
for seed in (42, 43):
    for head in ("linear", "crf", "span"):
        m = json.load(open(f"experiments/runs/heads/{head}_seed{seed}/metrics.json"))
        print(f"{head} seed {seed}: val F1 {m['best']['val/f1']:.4f} (step {m['best']['step']}), "
              f"test F1 {m['test']['f1']:.4f}, {m['train_seconds'] / m['steps']:.4f} s/step, "
              f"{m['train_tokens_per_s']:.0f} tokens/s")
PY
