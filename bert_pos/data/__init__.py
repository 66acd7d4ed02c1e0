"""Data, from files to batches, one concern per module:

sources.py    CoNLL files, the demo corpus or the hub -> a DatasetDict of sentences
              (`tokens`, `tags` as label ids, `document_id`, `line`)
encoding.py   sentences -> subword examples: label alignment, overlapping windows for
              long sentences, document context (one window encoder for training,
              evaluation and predict)
cache.py      encoded splits kept on disk, keyed by everything that determines them
batching.py   examples -> padded tensor batches: length-grouped training batches,
              length-sorted evaluation batches, data-parallel shards
wordpiece.py  a WordPiece vocabulary from the training words, for random models
"""
