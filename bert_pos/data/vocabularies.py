"""Vocabularies built from the training words, for randomly initialised models of any family:
WordPiece (BERT, ELECTRA, DistilBERT), byte-level BPE (RoBERTa, ModernBERT) and a
SentencePiece-style Unigram model (XLM-R, DeBERTa-v3), each with the family's special tokens.
Built offline in seconds; the pretrained families' own tokenizers are these kinds too."""

from collections import Counter
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from tokenizers.decoders import WordPiece as WordPieceDecoder
from tokenizers.models import WordPiece
from tokenizers.normalizers import BertNormalizer
from tokenizers.pre_tokenizers import BertPreTokenizer
from tokenizers.processors import TemplateProcessing
from transformers import PreTrainedTokenizerFast

# Special tokens in vocabulary order: RoBERTa-style ids (<pad> = 1) where the family expects them.
ROBERTA_SPECIALS = {
    "bos_token": "<s>",
    "pad_token": "<pad>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "mask_token": "<mask>",
}
BERT_SPECIALS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}
ROBERTA_STYLE = {"roberta", "xlm-roberta", "camembert"}


def build_tokenizer(
    kind: str, model_type: str, sentences: list[list[str]], directory: Path
) -> PreTrainedTokenizerFast:
    """A `kind` (wordpiece | bpe | unigram) tokenizer for a random `model_type` model."""
    if kind == "wordpiece":
        return build_wordpiece_tokenizer(sentences, directory)
    return build_subword_tokenizer(kind, sentences, directory, model_type in ROBERTA_STYLE)


def build_subword_tokenizer(
    kind: str,
    sentences: list[list[str]],
    directory: Path,
    roberta_style: bool,
    vocab_size: int = 2000,
) -> PreTrainedTokenizerFast:
    """Byte-level BPE (`bpe`) or Unigram (`unigram`) trained on the words of `sentences`."""
    specials = ROBERTA_SPECIALS if roberta_style else BERT_SPECIALS
    tokens = list(specials.values())
    first, last = (
        (specials["bos_token"], specials["eos_token"])
        if roberta_style
        else (specials["cls_token"], specials["sep_token"])
    )
    if kind == "bpe":
        backend = Tokenizer(models.BPE(unk_token=specials["unk_token"]))
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=tokens,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
    else:
        backend = Tokenizer(models.Unigram())
        backend.pre_tokenizer = pre_tokenizers.Metaspace()
        backend.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab_size, special_tokens=tokens, unk_token=specials["unk_token"]
        )
    backend.train_from_iterator((" ".join(words) for words in sentences), trainer)
    template = TemplateProcessing(
        single=f"{first} $A {last}",
        pair=f"{first} $A {last} $B:1 {last}:1",
        special_tokens=[(first, backend.token_to_id(first)), (last, backend.token_to_id(last))],
    )
    # byte-level BPE: offsets without the prefix space, as RoBERTa's own tokenizer gives them
    backend.post_processor = (
        processors.Sequence([processors.ByteLevel(trim_offsets=True), template])
        if kind == "bpe"
        else template
    )
    roles = dict(specials)
    roles.update({"cls_token": first, "sep_token": last, "bos_token": first, "eos_token": last})
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=512, **roles)
    tokenizer.save_pretrained(directory)
    return tokenizer


def build_wordpiece_tokenizer(
    sentences: list[list[str]], directory: Path, max_pieces: int = 4000
) -> PreTrainedTokenizerFast:
    """A cased WordPiece tokenizer for a randomly initialised model, built from `sentences`.

    Vocabulary: the special tokens, every character seen (alone and as a `##` continuation),
    every word seen at least twice, and the most frequent word-initial and `##` continuation
    pieces of 2 to 5 characters, so rare and unseen words split into meaningful pieces
    (`Lovi ##gal`, `Vifen ##port`) instead of collapsing to [UNK].
    """
    word_counts = Counter(word for sentence in sentences for word in sentence)
    characters = sorted({c for word in word_counts for c in word})
    frequent_words = [word for word, count in word_counts.items() if count >= 2 and len(word) > 1]
    piece_counts = Counter()
    for word, count in word_counts.items():
        for start in range(len(word)):
            for end in range(start + 2, min(start + 5, len(word)) + 1):
                piece_counts[word[start:end] if start == 0 else "##" + word[start:end]] += count
    pieces = [piece for piece, count in piece_counts.most_common(max_pieces) if count >= 5]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += characters + ["##" + c for c in characters]
    vocab += sorted(set(frequent_words + pieces) - set(vocab))
    backend = Tokenizer(WordPiece({piece: i for i, piece in enumerate(vocab)}, unk_token="[UNK]"))
    backend.normalizer = BertNormalizer(lowercase=False, strip_accents=False)
    backend.pre_tokenizer = BertPreTokenizer()
    backend.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab.index("[CLS]")), ("[SEP]", vocab.index("[SEP]"))],
    )
    backend.decoder = WordPieceDecoder()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )
    tokenizer.save_pretrained(directory)
    return tokenizer
