"""From sentences to batches (bert_pos/data/): label alignment over subwords, windows for long
sentences, the tokenization cache, padding, samplers, the demo and hub sources.
"""

import pytest
import torch
from datasets import Dataset, DatasetDict

from bert_pos.data.batching import (
    PaddingCollator,
    ShuffledBatchSampler,
    build_dataloaders,
    length_sorted_batches,
)
from bert_pos.data.cache import tokenize_splits_cached
from bert_pos.data.encoding import align_labels, tokenize_splits, word_start_positions
from bert_pos.data.labels import IGNORE_INDEX, NER_LABELS, begin_to_inside_map
from bert_pos.data.sources import load_splits, subset
from tests.helpers import compose_config

B_PER, I_PER, OUTSIDE = NER_LABELS.index("B-PER"), NER_LABELS.index("I-PER"), NER_LABELS.index("O")
CONTINUATION = begin_to_inside_map(NER_LABELS)


def test_align_first_labels_only_first_subwords():
    # [CLS] Black ##burn spoke [SEP]: word 0 has two subwords
    word_ids = [None, 0, 0, 1, None]
    labels = align_labels(word_ids, [B_PER, OUTSIDE], "first", CONTINUATION)
    assert labels == [IGNORE_INDEX, B_PER, IGNORE_INDEX, OUTSIDE, IGNORE_INDEX]


def test_align_all_turns_begin_continuations_into_inside():
    word_ids = [None, 0, 0, 0, 1, 1, None]
    labels = align_labels(word_ids, [B_PER, I_PER], "all", CONTINUATION)
    assert labels == [IGNORE_INDEX, B_PER, I_PER, I_PER, I_PER, I_PER, IGNORE_INDEX]


def test_word_start_positions_mark_words_without_subwords():
    # word 1 produced no subword at all
    assert word_start_positions([None, 0, 0, 2, None], num_words=3) == [1, -1, 3]


def tiny_splits(words, tags):
    data = {"tokens": [words], "tags": [tags], "document_id": [0], "line": [1]}
    return DatasetDict({"train": Dataset.from_dict(data)})


def test_tokenize_splits_with_real_tokenizer(tokenizer):
    # "Blackburnian" splits into several pieces; "\u200b" (zero-width space) into none.
    words = ["Peter", "Blackburnian", "\u200b", "said"]
    tags = [B_PER, I_PER, OUTSIDE, OUTSIDE]
    encoded = tokenize_splits(tiny_splits(words, tags), tokenizer, "all", CONTINUATION, 64)
    example = encoded["train"][0]
    word_ids = tokenizer(words, is_split_into_words=True).word_ids()
    assert word_ids.count(1) > 1 and 2 not in word_ids
    assert example["word_starts"][2] == -1
    assert example["labels"] == align_labels(word_ids, tags, "all", CONTINUATION)
    assert example["labels"][0] == IGNORE_INDEX and example["labels"][-1] == IGNORE_INDEX


def test_tokenized_splits_are_cached_by_content(tokenizer, tmp_path):
    words, tags = ["Peter", "Blackburnian", "said"], [B_PER, I_PER, OUTSIDE]
    cache = tmp_path / "cache"
    first = tokenize_splits_cached(
        str(cache), tiny_splits(words, tags), tokenizer, "all", CONTINUATION, 64
    )
    assert len(list(cache.iterdir())) == 1
    again = tokenize_splits_cached(
        str(cache), tiny_splits(words, tags), tokenizer, "all", CONTINUATION, 64
    )
    assert len(list(cache.iterdir())) == 1  # read back, not stored twice
    assert again["train"].to_list() == first["train"].to_list()
    assert (
        first["train"].to_list()
        == tokenize_splits(tiny_splits(words, tags), tokenizer, "all", CONTINUATION, 64)[
            "train"
        ].to_list()
    )
    # other sentences, or another label strategy, are other entries
    tokenize_splits_cached(
        str(cache), tiny_splits(words, [OUTSIDE] * 3), tokenizer, "all", CONTINUATION, 64
    )
    tokenize_splits_cached(
        str(cache), tiny_splits(words, tags), tokenizer, "first", CONTINUATION, 64
    )
    assert len(list(cache.iterdir())) == 3


def test_built_tokenizer_knows_the_words_it_was_built_from(tokenizer):
    pieces = tokenizer.tokenize("EU rejects German call Blackburnian")
    assert "[UNK]" not in pieces and pieces[:4] == ["EU", "rejects", "German", "call"]


@pytest.mark.parametrize("strategy", ["first", "all"])
def test_too_long_sentence_is_windowed_not_truncated(tokenizer, strategy):
    # 72 subwords with [CLS] and [SEP]: over the 64 of the window, so overlapping windows
    words = ["Peter", "Blackburnian", "lamb"] * 24
    tags = [B_PER, I_PER, OUTSIDE] * 24
    encoded = tokenize_splits(tiny_splits(words, tags), tokenizer, strategy, CONTINUATION, 64)
    examples = encoded["train"].to_list()
    assert len(examples) > 1 and {e["sentence"] for e in examples} == {0}
    assert all(len(e["input_ids"]) <= 64 for e in examples)
    # the kept word ranges tile the sentence: each word scored once, in order
    assert [e["first_word"] for e in examples][0] == 0
    for e, following in zip(examples, examples[1:]):
        assert following["first_word"] == e["first_word"] + len(e["tags"])
    assert [tag for e in examples for tag in e["tags"]] == tags
    # the labelled subwords, concatenated, are exactly those of the sentence in one piece
    whole = tokenize_splits(tiny_splits(words, tags), tokenizer, strategy, CONTINUATION, 512)
    labelled = [label for e in examples for label in e["labels"] if label != IGNORE_INDEX]
    assert labelled == [label for label in whole["train"][0]["labels"] if label != IGNORE_INDEX]
    # each kept word's start points at its own first subword in its window
    for e in examples:
        for w, start in enumerate(e["word_starts"]):
            assert e["labels"][start] == tags[e["first_word"] + w]


def test_a_word_longer_than_the_window_is_an_error_naming_it(tokenizer):
    words = ["Peter", "said", "ab" * 40, "."]  # "ab" * 40 splits into 80 one-letter pieces
    splits = tiny_splits(words, [OUTSIDE] * len(words))
    with pytest.raises(ValueError, match=r"train sentence 0 \(line 1\), word 'abab.*alone has 80"):
        tokenize_splits(splits, tokenizer, "first", CONTINUATION, max_length=64)


def test_collator_pads_dynamically_to_a_multiple():
    collate = PaddingCollator(pad_token_id=0, pad_to_multiple_of=8)
    examples = [
        {
            "input_ids": [2, 5, 6, 3],
            "labels": [-100, 1, 2, -100],
            "word_starts": [1, 2],
            "tags": [1, 2],
        },
        {"input_ids": [2, 7, 3], "labels": [-100, 0, -100], "word_starts": [1], "tags": [0]},
    ]
    batch = collate(examples)
    assert batch["input_ids"].shape == (2, 8)
    assert batch["attention_mask"].sum(1).tolist() == [4, 3]
    assert batch["labels"][1].tolist() == [-100, 0, -100] + [IGNORE_INDEX] * 5
    assert batch["word_starts"].tolist() == [[1, 2], [1, -1]]
    assert batch["word_labels"].tolist() == [[1, 2], [0, IGNORE_INDEX]]


def test_sampler_covers_every_example_once_and_is_reproducible():
    lengths = [
        int(x) for x in torch.randint(3, 60, (1003,), generator=torch.Generator().manual_seed(1))
    ]
    for group_by_length in (True, False):
        sampler = ShuffledBatchSampler(lengths, 8, seed=42, group_by_length=group_by_length)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert sorted(i for batch in batches for i in batch) == list(range(1003))
        assert batches == list(ShuffledBatchSampler(lengths, 8, 42, group_by_length))
        sampler.set_epoch(1)
        assert list(sampler) != batches  # a new order each epoch

    # grouping puts similar lengths together: far less padding than random batches
    def padding(batches):
        return sum(
            max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches
        )

    grouped = list(ShuffledBatchSampler(lengths, 8, 42, True))
    plain = list(ShuffledBatchSampler(lengths, 8, 42, False))
    assert padding(grouped) < padding(plain) / 5


def test_length_sorted_batches():
    assert length_sorted_batches([3, 9, 1, 5], 2) == [[1, 3], [0, 2]]


def test_demo_corpus_source_and_subset(tmp_path, tokenizer):
    overrides = [
        "data=demo",
        "data.demo_sentences={train: 50, validation: 20}",
        "data.test_file=null",
    ]
    data = compose_config(overrides).data
    splits = load_splits(data, NER_LABELS, demo_corpus_dir=tmp_path / "demo")
    assert set(splits) == {"train", "validation"} and len(splits["train"]) == 50
    assert set(splits["train"].column_names) == {"tokens", "tags", "document_id", "line"}
    assert splits["train"][0]["document_id"] == 0 and splits["train"][-1]["document_id"] == 4
    small = subset(splits, max_train=10, max_eval=None)
    assert len(small["train"]) == 10 and len(small["validation"]) == 20
    encoded = tokenize_splits(small, tokenizer, "first", CONTINUATION, 128)
    loaders = build_dataloaders(encoded, 4, 16, True, tokenizer.pad_token_id, 8, 0, 0, False)
    assert sum(len(b["input_ids"]) for b in loaders["train"]) == 10
    assert sum(len(b["input_ids"]) for b in loaders["validation"]) == 20


def write_parquet_copy(directory, ner_names, rows=None):
    """A miniature of the hub's parquet CoNLL-2003 (same columns and ClassLabel features)."""
    from datasets import ClassLabel, Features, Sequence, Value

    features = Features(
        {
            "id": Value("string"),
            "tokens": Sequence(Value("string")),
            "ner_tags": Sequence(ClassLabel(names=ner_names)),
        }
    )
    rows = rows or {
        "id": ["0", "1"],
        "tokens": [["EU", "rejects"], ["Peter", "Blackburn"]],
        "ner_tags": [[3, 0], [1, 2]],
    }
    for split in ("train", "validation"):
        directory.mkdir(parents=True, exist_ok=True)
        Dataset.from_dict(rows, features=features).to_parquet(str(directory / f"{split}.parquet"))
    return str(directory)


def test_hub_source_reads_a_parquet_copy_with_class_labels(tmp_path):
    from bert_pos.data.sources import load_hub_splits

    splits = load_hub_splits(
        write_parquet_copy(tmp_path / "hub", NER_LABELS), None, "ner", NER_LABELS
    )
    assert set(splits) == {"train", "validation"}
    assert splits["train"][1] == {
        "tokens": ["Peter", "Blackburn"],
        "tags": [1, 2],
        "document_id": -1,
        "line": -1,
    }


def test_hub_copy_with_docstart_rows_gives_documents(tmp_path):
    from bert_pos.data.sources import load_hub_splits

    rows = {
        "id": ["0", "1", "2", "3", "4"],
        "tokens": [["-DOCSTART-"], ["EU", "rejects"], ["-DOCSTART-"], ["Peter"], ["Bonn"]],
        "ner_tags": [[0], [3, 0], [0], [1], [5]],
    }
    splits = load_hub_splits(
        write_parquet_copy(tmp_path / "hub", NER_LABELS, rows), None, "ner", NER_LABELS
    )
    assert splits["train"]["tokens"] == [["EU", "rejects"], ["Peter"], ["Bonn"]]
    assert splits["train"]["document_id"] == [0, 1, 1]


def test_hub_source_with_other_label_order_is_refused(tmp_path):
    from bert_pos.data.sources import load_hub_splits

    shuffled = NER_LABELS[::-1]
    with pytest.raises(ValueError, match="differ from the CoNLL-2003 list"):
        load_hub_splits(write_parquet_copy(tmp_path / "hub", shuffled), None, "ner", NER_LABELS)


def test_the_cache_key_follows_every_argument_and_the_encoding_code(tokenizer, monkeypatch):
    from bert_pos.data import cache

    splits = tiny_splits(["Peter", "said"], [B_PER, OUTSIDE])
    key = cache.cache_key(splits, tokenizer, "all", CONTINUATION, 64)
    assert key == cache.cache_key(splits, tokenizer, "all", CONTINUATION, 64, None)  # defaults
    others = {
        cache.cache_key(splits, tokenizer, "first", CONTINUATION, 64),
        cache.cache_key(splits, tokenizer, "all", CONTINUATION, 32),
        cache.cache_key(splits, tokenizer, "all", CONTINUATION, 64, context_subwords=16),
    }
    assert key not in others and len(others) == 3
    monkeypatch.setattr(cache, "encoding_code_digest", lambda: "another version of the code")
    assert cache.cache_key(splits, tokenizer, "all", CONTINUATION, 64) != key
