"""Inference: trained taggers loaded back, run over new text or a split, and exported.

loading.py       a run folder (any checkpoint) or an exported model folder -> a tagger
tagging.py       words or raw text -> tags and entity spans (`python -m bert_pos.predict`)
evaluate_run.py  a run's checkpoint scored on a split or a file (`python -m bert_pos.evaluate`)
export.py        the exported model folder and its model card
"""
