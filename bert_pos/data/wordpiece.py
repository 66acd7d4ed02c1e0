"""A WordPiece vocabulary built from the training words, for randomly initialised models."""

from collections import Counter
from pathlib import Path

from tokenizers import Tokenizer
from tokenizers.decoders import WordPiece as WordPieceDecoder
from tokenizers.models import WordPiece
from tokenizers.normalizers import BertNormalizer
from tokenizers.pre_tokenizers import BertPreTokenizer
from tokenizers.processors import TemplateProcessing
from transformers import PreTrainedTokenizerFast


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
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab.index("[CLS]")), ("[SEP]", vocab.index("[SEP]"))],
    )  # fmt: skip
    backend.decoder = WordPieceDecoder()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=512,
    )  # fmt: skip
    tokenizer.save_pretrained(directory)
    return tokenizer
