#!/usr/bin/env bash
# Several tag layers on one encoder against one, same recipe, steps and seeds (issue 25):
#   bash experiments/multitask.sh            # from the repository root; ~25 minutes on 2 CPU cores
# 1. UD English-LinES, packaged MiniLM, +experiment=upos (3 epochs): UPOS alone vs [upos,xpos,feats];
#    every evaluation scored again by the CoNLL 2018 script; UPOS compared paired on test.
# 2. CoNLL-2003, MiniLM, the card's recipe for 900 steps, seeds 42 and 43: ner alone vs
#    [pos,chunk,ner] selected on ner/f1; NER compared paired on test, each seed.
# Real data: $BERT_POS_DATA (default ../shared/data); the scorer: $UD_SCORER.
set -eu
DATA=${BERT_POS_DATA:-../shared/data}
UD_SCORER=${UD_SCORER:-../shared/tools/conll18_ud_eval.py}
OUT=experiments/runs/multitask
LINES=$DATA/ud_english_lines
CONLL=$DATA/conll2003
python -c "import torch; print('CPU capability', torch.backends.cpu.get_cpu_capability())"

python -m bert_pos.train +experiment=upos model=minilm data.dir="$LINES" hydra.run.dir=$OUT/lines_upos
python -m bert_pos.train +experiment=upos model=minilm data.dir="$LINES" "data.tasks=[upos,xpos,feats]" \
    hydra.run.dir=$OUT/lines_upos_xpos_feats
for split in dev test; do
    gold=$(ls "$LINES"/*-ud-$split.conllu)
    folder=$([ $split = dev ] && echo validation || echo test)
    for run in lines_upos lines_upos_xpos_feats; do
        echo "== official script, $run, $split"
        python "$UD_SCORER" -v "$gold" $OUT/$run/eval/$folder/predictions.conllu | grep -E "^(Metric|UPOS|XPOS|UFeats|AllTags)"
    done
done
python -m bert_pos.compare $OUT/lines_upos $OUT/lines_upos_xpos_feats task=upos

for seed in 42 43; do
    python -m bert_pos.train +experiment=baseline model=minilm data.dir="$CONLL" max_steps=900 seed=$seed \
        hydra.run.dir=$OUT/conll_ner_seed$seed
    python -m bert_pos.train +experiment=baseline model=minilm data.dir="$CONLL" max_steps=900 seed=$seed \
        "data.tasks=[pos,chunk,ner]" eval.select=ner/f1 hydra.run.dir=$OUT/conll_pos_chunk_ner_seed$seed
    python -m bert_pos.compare $OUT/conll_ner_seed$seed $OUT/conll_pos_chunk_ner_seed$seed task=ner
done
python - <<'PY'
import json
for name in ["lines_upos", "lines_upos_xpos_feats", "conll_ner_seed42", "conll_pos_chunk_ner_seed42",
             "conll_ner_seed43", "conll_pos_chunk_ner_seed43"]:
    m = json.load(open(f"experiments/runs/multitask/{name}/metrics.json"))
    scores = {k: round(v, 4) for k, v in m["test"].items() if isinstance(v, float) and not k.endswith("loss")}
    print(name, "steps", m["steps"], "train s %.0f" % m["train_seconds"], "tokens/s %.0f" % m["train_tokens_per_s"],
          "s/step %.4f" % (m["train_seconds"] / m["steps"]), "best", m["best"], "test", scores)
PY
