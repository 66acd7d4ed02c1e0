"""Scoring: as the field's reference scorers score, and what to read beside the scores.

metrics.py         seqeval/conlleval entity P/R/F1, token accuracy, the results tables
spans.py           the spans of a tag sequence, as conlleval finds them
scorer.py          a tagger run over a loader and scored; the details an evaluation writes
predictions.py     the predictions file (conlleval's format): one writer, one reader
significance.py    bootstrap intervals, paired bootstrap, approximate randomization
error_analysis.py  boundary, type, missed and spurious errors; seen vs unseen entities
"""
