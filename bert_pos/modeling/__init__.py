"""Modeling: the encoder families, the tagger built on them, and padding-free attention.

encoders.py  one place that knows each family (config, tokenizer, position limits, layers)
tagger.py    `Tagger`: encoder, word pooling, the linear or CRF head; loss and decoding
packing.py   padding-free batches: sentences packed into one row, attention per sentence
"""
