"""`python -m bert_pos.predict`: tag a corpus of any size, streamed in chunks.

The input is read a chunk of sentences at a time (`chunk_sentences`), each chunk tagged in
length-sorted batches (bert_pos/inference/tagging.py) and written out in input order before
the next is read, so memory stays flat however long the input. Raw text is split into
sentences and words by segtok (bert_pos/inference/text.py), every word with its character
offsets in its line. Under torchrun each process runs its share of every chunk's batches and
the first writes the whole output: the same bytes one process writes.

Seconds spent reading, encoding, in the model, decoding and writing are logged at the end.
"""

import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import datasets
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from bert_pos.data.conll import read_conll
from bert_pos.data.conllu import (
    FORM_COLUMN,
    new_conllu,
    parse_conllu,
    predicted_conllu,
    read_conllu,
)
from bert_pos.data.conllu import TASK_COLUMNS as CONLLU_TASK_COLUMNS
from bert_pos.data.labels import is_span_label_set
from bert_pos.inference.loading import TrainedModelError, load_trained
from bert_pos.inference.onnx_model import OnnxTagger
from bert_pos.inference.tagging import (
    DocumentContext,
    entity_spans,
    mention_entities,
    tag_tasks,
)
from bert_pos.inference.text import DOCUMENT_MARKER, sentence_splitter, text_sentences
from bert_pos.runtime import distributed
from bert_pos.runtime.devices import autocast_for, pick_device, resolve_precision

log = logging.getLogger(__name__)


@dataclass
class Unit:
    """One sentence to tag: its text, its words with offsets into that text, and where it
    came from (raw text: its line, paragraph, and the text's offset in the line)."""

    text: str
    words: list[tuple[str, int, int]]
    source: dict = field(default_factory=dict)
    opens_document: bool = False  # raw text after a -DOCSTART- line: tsv output repeats it
    opens_paragraph: bool = False  # raw text's first sentence of a paragraph (CoNLL-U's newpar)
    document: int = 0  # its document in the input, whose sentences are its context

    def conllu_comments(self) -> list[str]:
        return ["# newdoc"] * self.opens_document + ["# newpar"] * self.opens_paragraph


def text_units(lines, counts: Counter, split=None) -> Iterator[Unit]:
    """The sentences of raw text lines, each line split by `split` (English by default);
    `counts["bytes"]` follows how much was read."""

    def read():
        for line in lines:
            counts["bytes"] += len(line.encode("utf-8"))
            yield line.rstrip("\r\n")

    last_paragraph = None
    for sentence in text_sentences(read(), split or sentence_splitter("en")):
        start, end = sentence.words[0][1], sentence.words[-1][2]
        line = sentence.line_text
        yield Unit(
            line[start:end],
            [(word, a - start, b - start) for word, a, b in sentence.words],
            {
                "line": sentence.line,
                "document": sentence.document,
                "paragraph": sentence.paragraph,
                "start": start,
            },
            sentence.opens_document,
            sentence.paragraph != last_paragraph,
            sentence.document,
        )
        last_paragraph = sentence.paragraph


def file_units(path: Path, input_format: str) -> Iterator[Unit]:
    """CoNLL input's words (column 0) and CoNLL-U input's syntactic words (FORM); offsets
    into the words joined by single spaces. These annotated files are read whole."""
    if input_format == "conll":
        sentences = read_conll(path, label_column=0, label_names=None)
    else:
        sentences = read_conllu(path, FORM_COLUMN, None)
    for sentence in sentences:
        offsets, position = [], 0
        for word in sentence.words:
            offsets.append((word, position, position + len(word)))
            position += len(word) + 1
        yield Unit(
            " ".join(sentence.words),
            offsets,
            {"line": sentence.line},
            document=max(sentence.document_id, 0),  # -1: no -DOCSTART- before it
        )


def chunks_in_context(
    units: Iterator[Unit], size: int, reach: int
) -> Iterator[tuple[list[Unit], list[Unit], list[Unit]]]:
    """Chunks of `size` sentences, each with up to `reach` sentences before and after it (the
    previous chunk's last and the next chunk's first), as context; with a reach, one chunk is
    read ahead."""
    previous, current = [], list(islice(units, size))
    while current:
        following = list(islice(units, size)) if reach else []
        yield previous[max(len(previous) - reach, 0) :], current, following[:reach]
        previous, current = current, following if reach else list(islice(units, size))


def formatted(cfg, units: list[Unit], tagged: list, tasks: list, spans, mentions) -> str:
    """The chunk's output: `word<TAB>tag` lines (a tag column per task, a blank line after
    each sentence), one JSON object per sentence, or CoNLL-U (text and CoNLL input)."""
    if cfg.format == "conllu":
        columns = conllu_columns(cfg, tasks)
        tags = [[[tag for tag, _ in one[i]] for one in tagged] for i in range(len(units))]
        texts, words = [u.text for u in units], [[w for w, _, _ in u.words] for u in units]
        comments = [unit.conllu_comments() for unit in units]
        return new_conllu(texts, words, columns, tags, comments)
    out = []
    for i, unit in enumerate(units):
        line_tags = [task_tagged[i] for task_tagged in tagged]
        if cfg.format == "tsv":
            if unit.opens_document:
                out += [DOCUMENT_MARKER, ""]
            for k, (word, _, _) in enumerate(unit.words):
                out.append("\t".join([word] + [tags[k][0] for tags in line_tags]))
            out.append("")
            continue
        out.append(
            json.dumps(record(unit, line_tags, tasks, spans, mentions, i), ensure_ascii=False)
        )
    return "\n".join(out) + "\n"


def record(unit: Unit, line_tags: list, tasks: list, spans: list, mentions, i: int) -> dict:
    """One sentence as JSON: its text and where it came from, words, tags and entity spans
    (character offsets into `text`); with several tasks `tags` and `entities` map each task
    to its own; a span head's mentions (nested ones too) are the first task's entities."""
    tags = {name: [t for t, _ in one] for name, one in zip(tasks, line_tags, strict=True)}
    entities = {
        name: entity_spans(unit.text, unit.words, one)
        for name, one, span in zip(tasks, line_tags, spans, strict=True)
        if span
    }
    if mentions is not None:
        entities[tasks[0]] = mention_entities(unit.text, unit.words, mentions[i])
    result = {"text": unit.text, **unit.source, "words": [w for w, _, _ in unit.words]}
    if len(tasks) > 1:
        result["tags"] = tags
        if entities:
            result["entities"] = entities
    else:
        result["tags"] = tags[tasks[0]]
        if entities:
            result["entities"] = entities[tasks[0]]
    return result


def conllu_columns(cfg, tasks: list) -> list[int]:
    columns = [CONLLU_TASK_COLUMNS.get(task) for task in tasks]
    if None in columns:
        raise TrainedModelError(
            f"format=conllu needs a model of CoNLL-U tasks ({', '.join(CONLLU_TASK_COLUMNS)}), "
            f"loaded from its run folder or a multi-task export; model_dir={cfg.model_dir} "
            f"has the tasks {tasks}"
        )
    return columns


def predict(cfg: DictConfig) -> dict:
    try:
        trained = load_trained(cfg.model_dir)
    except TrainedModelError as err:
        reason = str(err).removeprefix(f"{cfg.model_dir}: ")
        raise TrainedModelError(f"model_dir={cfg.model_dir}: {reason}") from None
    if cfg.compile and isinstance(trained.model, OnnxTagger):
        raise TrainedModelError(
            f"compile=true compiles a PyTorch tagger; model_dir={cfg.model_dir} is an ONNX "
            "folder (ONNX Runtime optimizes its own graph)"
        )
    source = sys.stdin if cfg.input == "-" else Path(cfg.input)
    if source is not sys.stdin and not source.is_file():
        raise TrainedModelError(f"input={cfg.input}: no such file (or - for stdin)")
    split = sentence_splitter(cfg.language) if cfg.input_format == "text" else None
    if cfg.input_format != "text" and source is sys.stdin:
        raise TrainedModelError(f"input_format={cfg.input_format} reads a file, not stdin")
    if cfg.format == "conllu":
        conllu_columns(cfg, trained.task_names)
    context = distributed.setup(cfg.device)
    if context.enabled:
        log.info(
            "process %d of %d tags one batch in %d of each chunk",
            context.rank,
            context.world_size,
            context.world_size,
        )
    try:
        return tag_stream(cfg, trained, source, context, split)
    finally:
        distributed.teardown()


@dataclass
class ChunkTagger:
    """Tags a chunk of sentences as evaluation would: with document context (a tagger trained
    with it), each sentence amid its document's neighbours, those beyond the chunk's edges too."""

    model: object
    tokenizer: object
    batch_size: int
    device: object
    autocast: object
    context_subwords: int | None  # the model's document context; None: sentences alone
    timings: Counter

    @property
    def reach(self) -> int:
        """Sentences beyond a chunk's edge that context may read: the budget in subwords
        (each sentence gives context at least one, unless it needs windows or has none)."""
        return self.context_subwords or 0

    def tag(self, before: list[Unit], chunk: list[Unit], after: list[Unit]):
        """Per task, each sentence of `chunk`'s (tag, probability) of every word; and a span
        head's mentions per sentence (None for tagging heads)."""
        units, mine = before + chunk + after, range(len(before), len(before) + len(chunk))
        document_context = None
        if self.context_subwords:
            documents = [unit.document for unit in units]
            document_context = DocumentContext(documents, self.context_subwords, mine)
        mentions = [] if hasattr(self.model.heads()[0], "candidates") else None
        tagged = tag_tasks(
            self.model,
            self.tokenizer,
            [[w for w, _, _ in unit.words] for unit in units],
            self.model.task_label_names,
            self.batch_size,
            self.device,
            self.autocast,
            mentions,
            self.timings,
            document_context,
        )
        kept = slice(mine.start, mine.stop)
        return [task[kept] for task in tagged], mentions and mentions[kept]


def tag_stream(cfg: DictConfig, trained, source, context, split=None) -> dict:
    device = pick_device(cfg.device)
    datasets.disable_progress_bars()
    model = trained.model.to(device)
    if cfg.compile:
        compile_encoder(model)
    tasks, spans = trained.task_names, [is_span_label_set(x) for x in model.task_label_names]
    autocast = autocast_for(device, resolve_precision(cfg.precision, device))
    timings, counts = Counter(), Counter()
    document_context = trained.context_subwords if cfg.document_context else None
    tagger = ChunkTagger(
        model, trained.tokenizer, cfg.batch_size, device, autocast, document_context, timings
    )
    if cfg.input_format == "conllu" and cfg.format == "conllu":
        return conllu_to_conllu(cfg, trained, source, context, tagger)
    streamed = cfg.input_format == "text" and isinstance(source, Path)  # others: read by path
    opened = open(source, encoding="utf-8") if streamed else nullcontext(source)
    output = None
    if context.is_main:
        output = sys.stdout if cfg.output == "-" else open(cfg.output, "w", encoding="utf-8")
    size = source.stat().st_size if isinstance(source, Path) else None
    progress = progress_bar(size, context.is_main)
    started = time.perf_counter()
    try:
        with opened as stream:
            if cfg.input_format == "text":
                units = text_units(stream, counts, split)
            else:
                units = file_units(source, cfg.input_format)
            pieces = chunks_in_context(units, cfg.chunk_sentences, tagger.reach)
            while True:
                reading = time.perf_counter()
                piece = next(pieces, None)
                timings["reading"] += time.perf_counter() - reading
                if piece is None:
                    break
                chunk = piece[1]
                tagged, mentions = tagger.tag(*piece)
                counts["sentences"] += len(chunk)
                counts["words"] += sum(len(unit.words) for unit in chunk)
                if output is not None:
                    writing = time.perf_counter()
                    output.write(formatted(cfg, chunk, tagged, tasks, spans, mentions))
                    output.flush()
                    timings["writing"] += time.perf_counter() - writing
                if size is not None:
                    progress.n = counts["bytes"] if cfg.input_format == "text" else size
                seconds = time.perf_counter() - started
                progress.set_postfix(words_per_s=f"{counts['words'] / seconds:,.0f}")
                progress.refresh()
    finally:
        progress.close()
        if output is not None and output is not sys.stdout:
            output.close()
    return summary(counts, time.perf_counter() - started, timings)


def compile_encoder(model) -> None:
    """Compiles the tagger's encoder for inference (torch.compile): its weights are frozen into
    the graph (inductor's `freezing`; on CPUs its linear layers then run on oneDNN with weights
    packed once), and one graph serves every batch shape (`dynamic`). The first batches pay
    the compile time; the tags are eager's (tests)."""
    log.info("compiling the encoder (torch.compile, frozen weights): the first batches wait")
    encoder = torch.compile(model.encoder, dynamic=True, options={"freezing": True})
    setattr(model, model.encoder_name, encoder)


def progress_bar(size: int | None, shown: bool) -> tqdm:
    """Bytes of the input read, with the ETA and words/s beside them; no bar where stderr is
    no terminal (a log file), nor on the other data-parallel processes."""
    return tqdm(
        total=size, unit="B", unit_scale=True, desc="tagging", disable=None if shown else True
    )


def conllu_to_conllu(cfg, trained, source: Path, context, tagger: ChunkTagger) -> dict:
    """A CoNLL-U input with the model's columns filled in, every other byte as it was: the
    file is rewritten whole (a treebank file, not a stream)."""
    started = time.perf_counter()
    units = list(file_units(source, "conllu"))
    tagged, _ = tagger.tag([], units, [])
    tags = [[[tag for tag, _ in one[i]] for one in tagged] for i in range(len(units))]
    columns = conllu_columns(cfg, trained.task_names)
    first_lines = [s.first_line for s in parse_conllu(source)]
    text = predicted_conllu(source, columns, dict(zip(first_lines, tags, strict=True)))[0]
    if context.is_main:
        if cfg.output == "-":
            sys.stdout.write(text)
        else:
            Path(cfg.output).write_text(text)
    counts = Counter(sentences=len(units), words=sum(len(unit.words) for unit in units))
    return summary(counts, time.perf_counter() - started, tagger.timings)


def summary(counts: Counter, seconds: float, timings: Counter) -> dict:
    stats = {
        "sentences": counts["sentences"],
        "words": counts["words"],
        "seconds": seconds,
        "sentences_per_s": counts["sentences"] / seconds,
        "words_per_s": counts["words"] / seconds,
        "seconds_in": dict(timings),
    }
    log.info(
        "tagged %d sentences (%d words) in %.2f s: %.1f sentences/s, %.0f words/s; seconds in %s",
        counts["sentences"],
        counts["words"],
        seconds,
        stats["sentences_per_s"],
        stats["words_per_s"],
        ", ".join(f"{name} {value:.2f}" for name, value in timings.items()),
    )
    return stats
