"""Tag raw text or CoNLL files with a trained model, streamed: any input size, flat memory.

    echo "Sator said on Monday that Isvello Motors would open an office in Viport ." \
        | python -m bert_pos.predict model_dir=experiments/runs/demo/<time>
    python -m bert_pos.predict model_dir=<run>/model input=corpus.txt format=jsonl output=tags.jsonl
    python -m bert_pos.predict model_dir=<run>/model input=eng.testb input_format=conll
    python -m bert_pos.predict model_dir=minilm-onnx input=corpus.txt    # ONNX Runtime
    torchrun --nproc_per_node 2 -m bert_pos.predict model_dir=... input=corpus.txt output=tags.tsv

`model_dir` is an exported model folder (`<run>/model`, Hugging Face layout), a run folder,
or an ONNX folder (`python -m bert_pos.export`). Raw text is split into sentences and words
by segtok (English; `language=de`, `fr`, ... use spaCy's rules for that language): a line
may hold several sentences, a blank line ends a paragraph, a `-DOCSTART-` line a document.
Output is `word<TAB>tag` lines (a blank line after each sentence) or, with `format=jsonl`, one JSON
object per sentence: its text, line, paragraph and offset in the line, words, tags and
entity spans (character offsets into the sentence's text, type, text, score). Sentences are
read, tagged and written a chunk at a time, in length-sorted batches; a sentence longer than
the model's window is tagged in overlapping windows and stitched, never cut. A tagger trained
with document context reads each sentence amid its document's, as evaluation does. Under
torchrun each process tags a share of the batches and the first writes what one process would
write.
"""

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from bert_pos.cli import command, run_command
from bert_pos.runtime.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class PredictConfig:
    model_dir: str = MISSING  # an exported model folder, or a run folder holding model/
    input: str = MISSING  # a file, or - for stdin
    input_format: str = MISSING  # text | conll | conllu
    format: str = MISSING  # tsv | jsonl | conllu
    output: str = MISSING  # a file, or - for stdout
    batch_size: int = MISSING
    chunk_sentences: int = MISSING
    device: str = MISSING
    precision: str = MISSING
    compile: bool = MISSING  # torch.compile the encoder, its weights frozen: for large inputs
    language: str = MISSING  # raw text's: en (segtok), or another ISO code (spaCy's rules)
    document_context: bool = MISSING  # a tagger trained with it: each sentence amid its document


ConfigStore.instance().store(name="predict_schema", node=PredictConfig)
INPUT_FORMATS = ("text", "conll", "conllu")
OUTPUT_FORMATS = ("tsv", "jsonl", "conllu")


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
@command("bert_pos.predict", PredictConfig)
def main(cfg: DictConfig) -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    if not Path(cfg.model_dir).is_dir():  # said before torch is imported
        raise UserError(f"model_dir={cfg.model_dir}: no such folder (a run or its model/)")
    for key, allowed in (("input_format", INPUT_FORMATS), ("format", OUTPUT_FORMATS)):
        if cfg[key] not in allowed:
            raise UserError(f"{key}={cfg[key]}: expected one of {', '.join(allowed)}")
    from bert_pos.inference.predict_run import predict  # torch and co.: only now

    predict(cfg)


if __name__ == "__main__":
    run_command(main)
