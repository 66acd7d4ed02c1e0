#!/usr/bin/env bash
# Linear vs CRF vs span head on CoNLL-2003 with the packaged MiniLM, same steps and seeds (issue 26):
#   bash experiments/heads.sh [steps]      # from the repository root; ~45 minutes on 2 CPU cores at 900
# The card's recipe but data.label_strategy=first (the CRF and span heads score words), seeds 42
# and 43. Each head at the card's single learning rate, and each with optim.head_lr=5e-4 for the
# layers above the encoder (PURE's rate for its span layers; at the card's 2e-5 a fresh span
# head learns almost nothing in 900 steps). Then the pairs compared paired on test, per seed.
# Real data: $BERT_POS_DATA (default ../shared/data).
set -eu
STEPS=${1:-900}
CONLL=${BERT_POS_DATA:-../shared/data}/conll2003
OUT=experiments/runs/heads
python -c "import torch; print('CPU capability', torch.backends.cpu.get_cpu_capability())"
train() {  # name seed overrides...
    local name=$1 seed=$2; shift 2
    python -m bert_pos.train +experiment=baseline model=minilm data.dir="$CONLL" max_steps=$STEPS \
        seed=$seed data.label_strategy=first "$@" hydra.run.dir=$OUT/${name}_seed$seed
}
for seed in 42 43; do
    train linear $seed model.head=linear
    train crf $seed model.head=crf
    train linear_headlr $seed model.head=linear optim.head_lr=5e-4
    train crf_headlr $seed model.head=crf optim.head_lr=5e-4
    train span $seed model.head=span optim.head_lr=5e-4
    for pair in "linear crf" "linear_headlr span" "crf_headlr span" "linear_headlr crf_headlr"; do
        set -- $pair
        echo "== $1 vs $2, seed $seed (test)"
        python -m bert_pos.compare $OUT/${1}_seed$seed $OUT/${2}_seed$seed
    done
done
train span_cardlr 42 model.head=span
python - <<'PY'
import json
names = ["linear", "crf", "linear_headlr", "crf_headlr", "span"]
for seed in (42, 43):
    for name in names + (["span_cardlr"] if seed == 42 else []):
        m = json.load(open(f"experiments/runs/heads/{name}_seed{seed}/metrics.json"))
        print(f"{name} seed {seed}: val F1 {m['best']['val/f1']:.4f}, test F1 {m['test']['f1']:.4f}, "
              f"{m['train_seconds'] / m['steps']:.4f} s/step, {m['train_tokens_per_s']:.0f} tokens/s")
PY
