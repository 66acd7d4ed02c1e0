"""Data, from files to batches, one concern per module:

conll.py         CoNLL column files: reading (one-line errors with file:line) and writing
jsonl.py         JSON-lines sentences            tables.py  hub and parquet tables
formats.py       which reader a file or source kind takes
sources.py       CoNLL files, JSON lines, the demo corpus or the hub -> a DatasetDict of
                 sentences (`tokens`, `tags` as label ids, `document_id`, `line`)
labels.py        label sets and tag schemes (IOB1, IOB2, BIOES), CoNLL-2003's lists
tags.py          checking the tags of what was read against a label set
demo_corpus.py   the synthetic NER corpus of the offline quick start
encoding.py      sentences -> subword examples: label alignment, overlapping windows for
                 long sentences, document context (one window encoder for training,
                 evaluation and predict)
cache.py         encoded splits kept on disk, keyed by everything that determines them
batching.py      examples -> padded tensor batches: shuffled (optionally length-grouped)
                 training batches, length-sorted evaluation batches, data-parallel shards
pipeline.py      encode -> batch, one way for training and evaluation
vocabularies.py  WordPiece, BPE or Unigram vocabularies from the training words, for random
                 models
"""
