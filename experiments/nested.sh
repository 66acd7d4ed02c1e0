#!/usr/bin/env bash
# The span head on nested entities against a flat tagger, same encoder and recipe (issue 26):
#   bash experiments/nested.sh            # from the repository root; ~8 minutes on 2 CPU cores
# The synthetic nested corpus (python -m bert_pos.data.nested_demo: 2,000 / 300 / 300
# sentences), the packaged MiniLM, +experiment=nested (lr 5e-5, batch 8, 3 epochs), seed 42:
# model.head=span with nested decoding vs model.head=linear (which learns the outermost
# mentions as tags). Both are scored on every mention, nested ones included.
set -eu
OUT=experiments/runs/nested
CORPUS=$OUT/corpus
python -c "import torch; print('CPU capability', torch.backends.cpu.get_cpu_capability())"
python -m bert_pos.data.nested_demo $CORPUS 2000 300 300
python -m bert_pos.train +experiment=nested model=minilm data.dir=$CORPUS hydra.run.dir=$OUT/span
python -m bert_pos.train +experiment=nested model=minilm data.dir=$CORPUS model.head=linear \
    hydra.run.dir=$OUT/linear
python - <<'PY'
import json
gold = [json.loads(line)["spans"] for line in open("experiments/runs/nested/corpus/test.jsonl")]
outer = sum(not any(c <= a and b <= d and (c, d) != (a, b) for c, d, _ in s) for s in gold for a, b, _ in s)
total = sum(len(s) for s in gold)
print(f"test mentions {total}, outermost {outer}: a flat tagger's ceiling recall {outer / total:.4f}, "
      f"F1 {2 * (outer / total) / (1 + outer / total):.4f}")
for head in ("span", "linear"):
    m = json.load(open(f"experiments/runs/nested/{head}/metrics.json"))
    t = m["test"]
    print(f"{head}: val F1 {m['best']['val/f1']:.4f}; test P {t['precision']:.4f} R {t['recall']:.4f} "
          f"F1 {t['f1']:.4f}; per type " + ", ".join(f"{k} {v['f1']:.3f}" for k, v in t["per_type"].items())
          + f"; {m['train_seconds'] / m['steps']:.4f} s/step")
PY
