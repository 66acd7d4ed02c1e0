"""Cache: tokenized splits kept on disk and reused by later runs.

The key is derived from everything that determines the encoding, so no version string is
bumped by hand: the sentences (the splits' content fingerprints), the tokenizer (its full
serialisation), every argument of `tokenize_splits`, and the source code of the encoding
module itself. A change to any of them makes a new entry.
"""

import hashlib
import inspect
import json
import logging
import os
from pathlib import Path

from datasets import DatasetDict, load_from_disk

from bert_pos.data import encoding
from bert_pos.data.encoding import tokenize_splits

log = logging.getLogger(__name__)


def encoding_code_digest() -> str:
    """SHA-256 of the encoding module's source: the layout and the logic of the examples."""
    return hashlib.sha256(Path(encoding.__file__).read_bytes()).hexdigest()


def cache_key(*args, **kwargs) -> str:
    """The key of `tokenize_splits(*args, **kwargs)`: every argument, bound by name."""
    bound = inspect.signature(tokenize_splits).bind(*args, **kwargs)
    bound.apply_defaults()
    recipe = {"code": encoding_code_digest()}
    for name, value in bound.arguments.items():
        if name == "splits":
            value = {split: dataset._fingerprint for split, dataset in value.items()}
        elif name == "tokenizer":
            value = value.backend_tokenizer.to_str()
        recipe[name] = value
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:20]


def tokenize_splits_cached(cache_dir: str | None, *args, **kwargs) -> DatasetDict:
    """`tokenize_splits(*args, **kwargs)`, kept under `cache_dir` and read back when the same
    sentences are encoded the same way again. `cache_dir=None` tokenizes every time."""
    if cache_dir is None:
        return tokenize_splits(*args, **kwargs)
    key = cache_key(*args, **kwargs)
    folder = Path(cache_dir).expanduser() / key
    if (folder / "dataset_dict.json").is_file():
        log.info("tokenized splits read from the cache %s", folder)
        return load_from_disk(str(folder))
    tokenized = tokenize_splits(*args, **kwargs)
    # Written beside, then renamed: a run killed while saving never leaves a partial entry.
    partial = folder.with_name(f"{key}.partial-{os.getpid()}")
    tokenized.save_to_disk(str(partial))
    try:
        partial.rename(folder)
    except OSError:  # another run stored the same entry first
        pass
    return tokenized
