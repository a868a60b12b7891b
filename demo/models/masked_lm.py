"""Masked-language-model pieces shared by training and evaluation: masks (dynamic for training,
fixed and seeded for measuring) and predictions at the masked positions only.

The vocabulary projection costs as much as a whole small encoder when it runs at every position
(hidden x 30,522 per token); training and evaluation only need it where a token is masked (15%),
so the encoder and the head are run apart here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from demo.core.errors import UserError
from demo.models.inputs import IGNORE_INDEX
from demo.models.loading import pretrained

MASK_RATE = 0.15  # BERT's: 15% of the tokens, of which 80% [MASK], 10% a random token, 10% kept


class NoMaskToken(UserError):
    """A tokenizer without a mask token cannot be trained or measured as a masked LM."""


def mask_token_id(tokenizer, model_name: str) -> int:
    if tokenizer.mask_token is None or tokenizer.mask_token_id is None:
        raise NoMaskToken(f"{model_name}: its tokenizer has no mask token, so it cannot be trained or measured as "
                          "a masked language model; use a BERT-family tokenizer (with [MASK]).")
    return tokenizer.mask_token_id


def special_positions(input_ids: torch.Tensor, attention_mask: torch.Tensor, tokenizer) -> torch.Tensor:
    """Padding and special tokens ([CLS], [SEP], ...): never masked."""
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)), device=input_ids.device)
    return torch.isin(input_ids, special) | ~attention_mask.bool()


class DynamicMasker:
    """New masks for every batch (RoBERTa's and DistilBERT's dynamic masking), 80/10/10, drawn from
    the global torch RNG so that checkpoints (which save it) resume with the same masks.

    The drawing itself is transformers' DataCollatorForLanguageModeling."""

    def __init__(self, tokenizer, rate: float = MASK_RATE):
        from transformers import DataCollatorForLanguageModeling

        mask_token_id(tokenizer, getattr(tokenizer, "name_or_path", "the tokenizer"))
        self.tokenizer = tokenizer
        self.collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=rate)

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(masked input ids, labels: the original token where masked, IGNORE_INDEX elsewhere), on the CPU."""
        ids, mask = input_ids.cpu(), attention_mask.cpu()
        return self.collator.torch_mask_tokens(ids.clone(), special_positions(ids, mask, self.tokenizer))


def fixed_masks(input_ids: torch.Tensor, attention_mask: torch.Tensor, rows: torch.Tensor, tokenizer, seed: int,
                rate: float = MASK_RATE) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks that depend only on the row's index and the seed, not on batching or process count: the
    same positions every time a held-out text is measured. Every chosen token becomes [MASK]; each
    text with a real token gets at least one."""
    masked, labels = input_ids.clone(), torch.full_like(input_ids, IGNORE_INDEX)
    special = special_positions(input_ids, attention_mask, tokenizer)
    mask_id = mask_token_id(tokenizer, getattr(tokenizer, "name_or_path", "the tokenizer"))
    for b, row in enumerate(rows.tolist()):
        candidates = (~special[b]).nonzero().flatten()
        if len(candidates) == 0:
            continue
        n = max(1, round(rate * len(candidates)))
        generator = torch.Generator().manual_seed(seed * 1_000_003 + int(row))
        chosen = candidates[torch.randperm(len(candidates), generator=generator)[:n].to(candidates.device)]
        labels[b, chosen] = input_ids[b, chosen]
        masked[b, chosen] = mask_id
    return masked, labels


# ---- predictions at masked positions ---------------------------------------------------------------
def encode(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, output_hidden_states: bool = False):
    """The encoder alone (no vocabulary head): its output object (last_hidden_state, hidden_states)."""
    base = getattr(model, model.base_model_prefix)
    return base(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=output_hidden_states,
                return_dict=True)


def head_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    """The vocabulary head on selected hidden states (N, H) -> (N, V), for BERT and DistilBERT."""
    if hasattr(model, "cls"):  # BertForMaskedLM
        return model.cls(hidden)
    if hasattr(model, "vocab_projector"):  # DistilBertForMaskedLM
        h = model.vocab_layer_norm(model.activation(model.vocab_transform(hidden)))
        return model.vocab_projector(h)
    return model.get_output_embeddings()(hidden)  # a head that is a single projection


def masked_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                  output_hidden_states: bool = False):
    """(logits at the masked positions (N, V), the encoder output): the head runs where labels != IGNORE_INDEX."""
    out = encode(model, input_ids, attention_mask, output_hidden_states)
    return head_logits(model, out.last_hidden_state[labels != IGNORE_INDEX]), out


class MaskedLMAtPositions(torch.nn.Module):
    """A masked LM whose forward returns logits at the masked positions only (and its encoder
    output): what the training loop calls, through accelerate's (and DDP's) wrapper."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self._demo_accepted_inputs = {"input_ids", "attention_mask"}

    def forward(self, input_ids, attention_mask, labels, output_hidden_states: bool = False):
        return masked_logits(self.model, input_ids, attention_mask, labels, output_hidden_states)


# ---- measuring -------------------------------------------------------------------------------------
@dataclass
class MaskedCounts:
    """Sums over masked tokens, mergeable across batches, files and processes."""

    masked: int = 0
    top1: int = 0
    top5: int = 0
    nll: float = 0.0

    def add(self, other: MaskedCounts) -> MaskedCounts:
        return MaskedCounts(self.masked + other.masked, self.top1 + other.top1, self.top5 + other.top5,
                            self.nll + other.nll)

    @property
    def top1_accuracy(self) -> float:
        return self.top1 / self.masked if self.masked else float("nan")

    @property
    def top5_accuracy(self) -> float:
        return self.top5 / self.masked if self.masked else float("nan")

    @property
    def masked_perplexity(self) -> float:
        return math.exp(self.nll / self.masked) if self.masked else float("nan")


def score_logits(logits: torch.Tensor, gold: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per masked token: top-1 hit, top-5 hit, negative log-likelihood of the gold token."""
    logits = logits.float()
    top5 = logits.topk(min(5, logits.shape[-1]), dim=-1).indices
    nll = torch.nn.functional.cross_entropy(logits, gold, reduction="none")
    return top5[:, 0] == gold, (top5 == gold[:, None]).any(-1), nll


@torch.inference_mode()
def pseudo_perplexity(model, tokenizer, texts: list[str], max_length: int, batch_size: int, device) -> float:
    """Salazar et al. (2020): mask each token of a text in turn, score it given all the others;
    exp of the mean negative log-likelihood over every real token of every text. One forward per
    token, so callers pass a bounded sample of texts."""
    mask_id = mask_token_id(tokenizer, getattr(tokenizer, "name_or_path", "the tokenizer"))
    special = set(tokenizer.all_special_ids)
    copies: list[tuple[list[int], int]] = []  # (ids, position masked)
    for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]:
        copies += [(ids, p) for p, t in enumerate(ids) if t not in special]
    copies.sort(key=lambda c: len(c[0]))  # similar lengths together: little padding
    total, count = 0.0, 0
    model.eval()
    for start in range(0, len(copies), batch_size):
        chunk = copies[start:start + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        input_ids = torch.full((len(chunk), width), tokenizer.pad_token_id or 0, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        labels = torch.full_like(input_ids, IGNORE_INDEX)
        for b, (ids, p) in enumerate(chunk):
            input_ids[b, :len(ids)] = torch.tensor(ids)
            attention[b, :len(ids)] = 1
            labels[b, p], input_ids[b, p] = ids[p], mask_id
        logits, _ = masked_logits(model, input_ids.to(device), attention.to(device), labels.to(device))
        gold = labels[labels != IGNORE_INDEX].to(device)
        total += torch.nn.functional.cross_entropy(logits.float(), gold, reduction="sum").item()
        count += len(gold)
    return math.exp(total / count) if count else float("nan")


# ---- loading ---------------------------------------------------------------------------------------
MLM_HEAD_PREFIXES = ("cls.", "vocab_", "lm_head")  # BERT's, DistilBERT's, RoBERTa-style heads: weights named so


def is_classifier(config) -> bool:
    return any("ForSequenceClassification" in a for a in (getattr(config, "architectures", None) or []))


def is_masked_lm(config) -> bool:
    return any("ForMaskedLM" in a for a in (getattr(config, "architectures", None) or []))


def load_masked_lm(name: str):
    """(model, tokenizer, head_missing): a checkpoint as a masked LM, saying whether its head had to be
    made up. from_pretrained silently adds a random head to a classifier or a bare encoder; its loading
    info tells, and a random head guesses random words. Raises LoadError (or NoMaskToken)."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tokenizer = pretrained(AutoTokenizer, name)
    mask_token_id(tokenizer, name)
    model, info = pretrained(AutoModelForMaskedLM, name, output_loading_info=True)
    head_missing = any(k.startswith(MLM_HEAD_PREFIXES) for k in info.get("missing_keys", []))
    return model, tokenizer, head_missing
