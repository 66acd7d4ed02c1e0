"""bert_pos: fine-tune BERT for token classification (NER, POS, chunking) with a plain PyTorch loop."""

__version__ = "0.1.0"
