"""Tag raw text or CoNLL files with a trained model.

    echo "Peter Blackburn visited Paris ." | python -m bert_pos.predict model_dir=experiments/runs/demo/<time>
    python -m bert_pos.predict model_dir=<run>/model input=sentences.txt format=jsonl output=tags.jsonl
    python -m bert_pos.predict model_dir=<run>/model input=eng.testb input_format=conll

`model_dir` is an exported model folder (`<run>/model`, Hugging Face layout) or a run folder.
Text input is one sentence per line; words are split on whitespace with punctuation
separated. Output is `word<TAB>tag` lines (a blank line after each sentence) or, with
`format=jsonl`, one JSON object per line with the words, tags and entity spans (character
offsets into the input line, type, text, score). Sentences are tagged in large length-sorted
batches; a sentence longer than the model's window is tagged in overlapping windows and
stitched, never cut.
"""

import json
import logging
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import hydra
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig
from seqeval.metrics.sequence_labeling import get_entities
from transformers import AutoTokenizer

from bert_pos.conll import read_conll
from bert_pos.data import PaddingCollator, word_start_positions, word_windows
from bert_pos.labels import is_span_label_set
from bert_pos.model import BertTagger, load_tagger
from bert_pos.train import autocast_for, pick_device

log = logging.getLogger(__name__)

# A word: letters/digits joined by inner hyphens, apostrophes or dots ("1996-08-22", "O'Neill",
# "U.S"), or any other single non-space character (punctuation stands alone).
WORD = re.compile(r"\w+(?:[-'.]\w+)*|[^\w\s]")


@dataclass
class PredictConfig:
    model_dir: str = MISSING  # an exported model folder, or a run folder holding model/
    input: str = MISSING  # a file, or - for stdin
    input_format: str = MISSING  # text | conll
    format: str = MISSING  # tsv | jsonl
    output: str = MISSING  # a file, or - for stdout
    batch_size: int = MISSING
    device: str = MISSING
    precision: str = MISSING


ConfigStore.instance().store(name="predict_schema", node=PredictConfig)


def split_words(line: str) -> list[tuple[str, int, int]]:
    """Words of a raw text line with their character offsets (start, end)."""
    return [(m.group(), m.start(), m.end()) for m in WORD.finditer(line)]


@torch.inference_mode()
def tag_sentences(
    model: BertTagger,
    tokenizer,
    sentences: list[list[str]],
    label_names: list[str],
    batch_size: int,
    device: torch.device,
    autocast,
) -> list[list[tuple[str, float]]]:
    """(tag, probability) for every word of every sentence: each word takes the prediction at
    its first subword (argmax, or the model's Viterbi path; the probability is the label's
    at that subword). Long sentences go through `word_windows`; words the tokenizer maps to
    no subword get O (or the first label) with probability 0."""
    budget = min(tokenizer.model_max_length, model.config.max_position_embeddings) - 2
    pieces = []  # (sentence index, first word, kept word range, input ids, first-subword positions)
    indices = [index for index, words in enumerate(sentences) if words]
    # One batched call to the Rust tokenizer; only sentences over the window are re-encoded.
    encodings = tokenizer([sentences[i] for i in indices], is_split_into_words=True)
    for row, index in enumerate(indices):
        words, word_ids = sentences[index], encodings.word_ids(row)
        if len(word_ids) - 2 <= budget:
            starts = word_start_positions(word_ids, len(words))
            pieces.append((index, 0, 0, len(words), encodings["input_ids"][row], starts,
                           word_ids))  # fmt: skip
            continue
        counts = [0] * len(words)
        for word_id in word_ids:
            if word_id is not None:
                counts[word_id] += 1
        for start, end, keep_start, keep_end in word_windows(counts, budget):
            encoding = tokenizer(words[start:end], is_split_into_words=True, truncation=False)
            starts = word_start_positions(encoding.word_ids(), end - start)
            pieces.append((index, start, keep_start, keep_end, encoding["input_ids"], starts,
                           encoding.word_ids()))  # fmt: skip

    fallback = "O" if "O" in label_names else label_names[0]
    results = [[(fallback, 0.0)] * len(words) for words in sentences]
    collate = PaddingCollator(tokenizer.pad_token_id, pad_to_multiple_of=8)
    pieces.sort(key=lambda piece: len(piece[4]))
    model.eval()
    for first in range(0, len(pieces), batch_size):
        chunk = pieces[first : first + batch_size]
        batch = collate([{
            "input_ids": ids, "labels": [0] * len(ids), "word_starts": starts,
            "tags": [0] * len(starts), "word_index": [-1 if w is None else w for w in word_ids],
        } for *_, ids, starts, word_ids in chunk])  # fmt: skip
        with autocast:
            logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                           batch["word_index"].to(device))  # fmt: skip
        probabilities = logits.float().softmax(-1)  # (B, T, C)
        word_starts = batch["word_starts"].to(device)
        at_starts = probabilities.gather(
            1, word_starts.clamp(min=0)[..., None].expand(-1, -1, len(label_names))
        )  # (B, W, C)
        # argmax, or the best path of a CRF head or constrained decoding
        best_label = model.decode_words(logits.float(), word_starts)  # (B, W)
        best_probability = at_starts.gather(2, best_label[..., None]).squeeze(2)
        for row, (index, start, keep_start, keep_end, _, starts, _) in enumerate(chunk):
            labels, probs = best_label[row].tolist(), best_probability[row].tolist()
            for w in range(keep_start - start, keep_end - start):
                if starts[w] >= 0:
                    results[index][start + w] = (label_names[labels[w]], probs[w])
    return results


def entity_spans(
    line: str, words: list[tuple[str, int, int]], tagged: list[tuple[str, float]]
) -> list[dict]:
    """Entities of an IOB2-tagged line (spans as the CoNLL scorer reads them), with character
    offsets into `line` and the mean word probability as score."""
    spans = []
    for entity_type, first, last in get_entities([tag for tag, _ in tagged]):
        start, end = words[first][1], words[last][2]
        score = sum(p for _, p in tagged[first : last + 1]) / (last - first + 1)
        spans.append(
            {
                "type": entity_type,
                "start": start,
                "end": end,
                "text": line[start:end],
                "score": round(score, 6),
            }
        )
    return spans


def read_inputs(source, input_format: str) -> tuple[list[str], list[list[tuple[str, int, int]]]]:
    """Lines and their words with character offsets; CoNLL input reads words from column 0
    and reports offsets into the words joined by single spaces."""
    if input_format == "conll":
        sentences = read_conll(source, label_column=0, label_names=None)
        lines = [" ".join(s.words) for s in sentences]
        return lines, [split_joined(s.words) for s in sentences]
    text = source.read_text() if isinstance(source, Path) else source.read()
    lines = text.splitlines()
    return lines, [split_words(line) for line in lines]


def split_joined(words: list[str]) -> list[tuple[str, int, int]]:
    offsets, position = [], 0
    for word in words:
        offsets.append((word, position, position + len(word)))
        position += len(word) + 1
    return offsets


def resolve_model_dir(path: str) -> Path:
    folder = Path(path)
    if (folder / "model" / "config.json").is_file():
        return folder / "model"
    if (folder / "config.json").is_file():
        return folder
    raise FileNotFoundError(
        f"model_dir={path}: neither an exported model folder nor a run folder with model/"
    )


def predict(cfg: DictConfig) -> dict:
    model_dir = resolve_model_dir(cfg.model_dir)
    device = pick_device(cfg.device)
    model, label_names = load_tagger(model_dir)
    model.to(device)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    source = sys.stdin if cfg.input == "-" else Path(cfg.input)
    lines, words = read_inputs(source, cfg.input_format)

    started = time.perf_counter()
    tagged = tag_sentences(model, tokenizer, [[w for w, _, _ in ws] for ws in words], label_names,
                           cfg.batch_size, device, autocast_for(device, cfg.precision))  # fmt: skip
    seconds = time.perf_counter() - started

    spans = is_span_label_set(label_names)
    out = []
    for line, line_words, line_tags in zip(lines, words, tagged, strict=True):
        if cfg.format == "jsonl":
            record = {
                "text": line,
                "words": [w for w, _, _ in line_words],
                "tags": [t for t, _ in line_tags],
            }
            if spans:
                record["entities"] = entity_spans(line, line_words, line_tags)
            out.append(json.dumps(record, ensure_ascii=False))
        else:
            out += [f"{w}\t{t}" for (w, _, _), (t, _) in zip(line_words, line_tags)] + [""]
    text = "\n".join(out) + "\n"
    if cfg.output == "-":
        sys.stdout.write(text)
    else:
        Path(cfg.output).write_text(text)
    word_count = sum(len(ws) for ws in words)
    stats = {"sentences": len(lines), "words": word_count, "seconds": seconds,
             "sentences_per_s": len(lines) / seconds, "words_per_s": word_count / seconds}  # fmt: skip
    log.info("tagged %d sentences (%d words) in %.2f s: %.1f sentences/s, %.0f words/s",
             len(lines), word_count, seconds, stats["sentences_per_s"], stats["words_per_s"])  # fmt: skip
    return stats


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    predict(cfg)


if __name__ == "__main__":
    main()
