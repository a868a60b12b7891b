"""Augmented text for distillation: more inputs on which the student can copy its teacher.

The three operations of Tang et al. (2019) and TinyBERT (Jiao et al., 2020), applied word by word:
- masking: a word becomes the mask token (p = mask_prob);
- word replacement: a word is replaced (p = swap_prob) by one of a masked LM's top-k guesses for it, or,
  for a teacher without a masked-LM head, by one of its nearest neighbours in the teacher's own input
  embeddings (TinyBERT's GloVe swaps, with the teacher's vocabulary: "boring" -> "dull", "bland", but
  also "exciting"; the teacher's soft target labels whatever the swap made of the text);
- n-gram sampling: with p = ngram_prob the variant keeps only a random n-gram (n in 1..max_ngram).
An augmented text has no gold label: the teacher's soft targets label it. Seeded: the same texts,
settings and seed give the same variants.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch

from demo.core.errors import UserError
from demo.models.masked_lm import load_masked_lm


class AugmentError(UserError, ValueError):
    """Augmentation cannot run as asked (e.g. no masked LM to propose replacement words)."""


@dataclass(frozen=True)
class AugmentSettings:
    variants: int = 0  # augmented variants per source text (0: off)
    # swaps over masks: a swapped word is text the student will meet, a [MASK] is not; measured on SST-2 and
    # the emotion set at 1,000 rows (docs/results.md): 0.05/0.3 ahead of Tang et al.'s 0.1/0.1 on both
    mask_prob: float = 0.05
    swap_prob: float = 0.3
    ngram_prob: float = 0.25
    max_ngram: int = 5
    top_k: int = 8  # replacement words are drawn from the masked LM's top k
    seed: int = 42
    mlm: str = "none"  # what proposed replacements (part of the cache key)

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass
class MaskedLM:
    """A masked LM and its tokenizer, used only to propose replacement words."""

    model: torch.nn.Module
    tokenizer: object
    name: str
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


    def fill(self, plans: list[_Plan], settings: AugmentSettings) -> None:
        _replacements(plans, self, settings)


@dataclass
class EmbeddingNeighbours:
    """Replacement words from a model's input embeddings: the words whose vectors lie nearest (cosine).
    Needs no masked-LM head, so every BERT teacher has one; only whole words that are one token of the
    vocabulary are swapped (a word split into pieces has no single vector)."""

    embeddings: torch.Tensor  # (V, H) the input word embeddings, each row of unit length
    tokenizer: object
    name: str
    vocab: list[str]  # token of each row
    _neighbours: dict[int, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, model: torch.nn.Module, tokenizer, name: str) -> EmbeddingNeighbours:
        weights = model.get_input_embeddings().weight.detach().float().cpu()
        vocab = tokenizer.convert_ids_to_tokens(list(range(weights.shape[0])))
        return cls(torch.nn.functional.normalize(weights, dim=-1), tokenizer, f"embeddings:{name}", vocab)

    def neighbours(self, token_ids: list[int], top_k: int) -> None:
        """Fill the cache for these token ids: top_k words each (no pieces, specials, or the word itself)."""
        todo = [i for i in dict.fromkeys(token_ids) if i not in self._neighbours]
        vocab = self.vocab
        banned = set(self.tokenizer.all_special_ids)
        for start in range(0, len(todo), 256):
            chunk = todo[start:start + 256]
            scores = self.embeddings[chunk] @ self.embeddings.T  # (U, V) cosine similarities
            for token_id, row in zip(chunk, scores.topk(top_k * 3 + 1, dim=-1).indices.tolist()):
                own = vocab[token_id].lower()
                self._neighbours[token_id] = [vocab[j] for j in row if j not in banned and vocab[j].isalpha()
                                              and vocab[j].lower() != own][:top_k]

    def fill(self, plans: list[_Plan], settings: AugmentSettings) -> None:
        rng = random.Random(settings.seed + 1)
        unk = self.tokenizer.unk_token_id
        ids: dict[str, int | None] = {}
        for plan in plans:
            for i, op in enumerate(plan.ops):
                word = plan.words[i]
                if op == "swap" and word not in ids:
                    pieces = self.tokenizer(word, add_special_tokens=False)["input_ids"] if word.isalpha() else []
                    ids[word] = pieces[0] if len(pieces) == 1 and pieces[0] != unk else None
        self.neighbours([i for i in ids.values() if i is not None], settings.top_k)
        for plan in plans:
            for i, op in enumerate(plan.ops):
                if op != "swap":
                    continue
                options = self._neighbours.get(ids[plan.words[i]], []) if ids[plan.words[i]] is not None else []
                if options:
                    plan.words = [*plan.words[:i], rng.choice(options), *plan.words[i + 1:]]
            plan.ops = ["keep" if op == "swap" else op for op in plan.ops]


def load_proposer(name: str, device: torch.device) -> MaskedLM:
    """The masked LM that proposes replacement words: one whose head really is trained."""
    try:
        model, tokenizer, head_missing = load_masked_lm(name)
    except UserError as exc:
        raise AugmentError(f"--augment-mlm {name}: cannot be loaded as a masked LM ({exc}); pass a fill-mask model, "
                           "or --augment-mlm none to augment by masking and n-gram sampling only.") from None
    if head_missing:
        raise AugmentError(f"{name} has no trained masked-LM head to propose replacement words; pass "
                           "--augment-mlm MODEL (a fill-mask model with the same language, e.g. "
                           "google-bert/bert-base-uncased) or --augment-mlm none to augment by masking and "
                           "n-gram sampling only.")
    return MaskedLM(model.to(device).eval(), tokenizer, name, device)


@dataclass
class _Plan:
    source: int
    words: list[str]
    ops: list[str]  # per word: keep | mask | swap
    span: tuple[int, int]  # kept n-gram [start, end) of words


def _plan(texts: Sequence[str], settings: AugmentSettings, can_swap: bool) -> list[_Plan]:
    rng = random.Random(settings.seed)
    plans = []
    for source, text in enumerate(texts):
        words = text.split()
        if not words:
            continue
        for _ in range(settings.variants):
            ops = []
            for _word in words:
                u = rng.random()
                ops.append("mask" if u < settings.mask_prob else
                           "swap" if can_swap and u < settings.mask_prob + settings.swap_prob else "keep")
            span = (0, len(words))
            if len(words) > 1 and rng.random() < settings.ngram_prob:
                n = rng.randint(1, min(settings.max_ngram, len(words)))
                start = rng.randrange(len(words) - n + 1)
                span = (start, start + n)
            plans.append(_Plan(source, words, ops, span))
    return plans


@torch.inference_mode()
def _replacements(plans: list[_Plan], mlm: MaskedLM, settings: AugmentSettings, batch_size: int = 32) -> None:
    """Fill every 'swap' word with one of the masked LM's top-k guesses (in place, seeded)."""
    rng = random.Random(settings.seed + 1)
    tok = mlm.tokenizer
    banned = set(tok.all_special_ids)
    vocab = tok.convert_ids_to_tokens(list(range(len(tok))))
    todo = [p for p in plans if "swap" in p.ops[p.span[0]:p.span[1]]]
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        masked = [" ".join(tok.mask_token if op == "swap" else w for w, op in zip(p.words, p.ops)) for p in chunk]
        enc = tok(masked, truncation=True, max_length=256, padding=True, return_tensors="pt")
        inputs = {k: v.to(mlm.device) for k, v in enc.items()}
        logits = mlm.model(**inputs).logits  # (B, T, V)
        top = logits.topk(settings.top_k + 4, dim=-1).indices.cpu()  # (B, T, k+4): spares for banned ones
        for row, plan in enumerate(chunk):
            positions = (enc["input_ids"][row] == tok.mask_token_id).nonzero().flatten().tolist()
            swap_words = [i for i, op in enumerate(plan.ops) if op == "swap"]
            for word_index, pos in zip(swap_words, positions):  # words past max_length stay as they are
                original = plan.words[word_index].lower()
                options = [vocab[i] for i in top[row, pos].tolist()
                           if i not in banned and not vocab[i].startswith("##") and vocab[i].lower() != original]
                if options:
                    chosen = rng.choice(options[:settings.top_k])
                    plan.words = [*plan.words[:word_index], chosen, *plan.words[word_index + 1:]]
            plan.ops = ["keep" if op == "swap" else op for op in plan.ops]


def augment_texts(texts: Sequence[str], settings: AugmentSettings, mask_token: str,
                  mlm: MaskedLM | EmbeddingNeighbours | None = None) -> list[tuple[int, str]]:
    """(index of the source text, augmented text) pairs; variants equal to their source or to an
    earlier variant of it are dropped, so the list may be shorter than variants * len(texts)."""
    if settings.variants <= 0:
        return []
    if settings.swap_prob > 0 and mlm is None:
        raise AugmentError("word replacement needs a masked LM: pass --augment-mlm MODEL, or --augment-mlm none "
                           "to augment by masking and n-gram sampling only.")
    plans = _plan(texts, settings, can_swap=mlm is not None and settings.swap_prob > 0)
    if mlm is not None:
        mlm.fill(plans, settings)
    out, seen = [], set()
    for plan in plans:
        start, end = plan.span
        words = [mask_token if op == "mask" else w for w, op in zip(plan.words, plan.ops)][start:end]
        text = " ".join(words)
        key = (plan.source, text)
        if text and text != texts[plan.source].strip() and key not in seen:
            seen.add(key)
            out.append((plan.source, text))
    return out
