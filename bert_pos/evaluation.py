"""Running a tagger over a split and scoring its predictions."""

from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from bert_pos.data import IGNORE_INDEX
from bert_pos.metrics import score_sequences

UNALIGNED = "<none>"  # prediction of a word with no subword, where the label set has no O


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module,
    loader: DataLoader,
    label_names: list[str],
    span_task: bool,
    level: str,
    device: torch.device,
    autocast: AbstractContextManager,
) -> tuple[dict, list[list[str]]]:
    """Loss and scores of `model` on `loader`, and the predicted tags of every sentence.

    `level="word"` scores one tag per word, the prediction at the word's first subword, against
    the gold word labels, whatever the training label strategy. `level="subword"` scores every
    subword that carries a training label, as the Hugging Face token-classification recipes do.
    The loss averages over labelled subwords. Predictions come back in dataset order.
    """
    was_training = model.training
    model.eval()
    loss_sum, labelled = 0.0, 0
    gold_tags, predicted_tags = [], []
    unaligned = "O" if "O" in label_names else UNALIGNED
    for batch in loader:
        batch = {key: tensor.to(device, non_blocking=True) for key, tensor in batch.items()}
        with autocast:
            logits = model(batch["input_ids"], batch["attention_mask"])  # (B, T, C)
        logits = logits.float()
        labels = batch["labels"]
        loss_sum += F.cross_entropy(
            logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
        ).item()
        labelled += int((labels != IGNORE_INDEX).sum())
        predictions = logits.argmax(-1)  # (B, T)
        if level == "word":
            starts = batch["word_starts"]  # (B, W)
            word_predictions = predictions.gather(1, starts.clamp(min=0)).tolist()
            for row, row_gold in enumerate(batch["word_labels"].tolist()):
                n = sum(tag != IGNORE_INDEX for tag in row_gold)
                row_starts = starts[row, :n].tolist()
                gold_tags.append([label_names[tag] for tag in row_gold[:n]])
                predicted_tags.append([
                    label_names[tag] if start >= 0 else unaligned
                    for tag, start in zip(word_predictions[row][:n], row_starts)
                ])  # fmt: skip
        else:
            for row_labels, row_predictions in zip(labels.tolist(), predictions.tolist()):
                kept = [(g, p) for g, p in zip(row_labels, row_predictions) if g != IGNORE_INDEX]
                gold_tags.append([label_names[g] for g, _ in kept])
                predicted_tags.append([label_names[p] for _, p in kept])
    model.train(was_training)

    scores = score_sequences(gold_tags, predicted_tags, span_task)
    scores["loss"] = loss_sum / max(labelled, 1)
    # The loader visits sentences longest first; hand predictions back in dataset order.
    visit_order = [index for batch_indices in loader.batch_sampler for index in batch_indices]
    in_dataset_order = [None] * len(visit_order)
    for tags, index in zip(predicted_tags, visit_order):
        in_dataset_order[index] = tags
    return scores, in_dataset_order
