"""The three tasks as plain functions: (loaded model, text) -> Prediction.

Input checks live here too, so the app, the API, the benchmark and the evaluator reject the
same bad text with the same message.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from dataclasses import asdict, dataclass, field

import torch

from demo.core.errors import UserError
from demo.models.inputs import model_inputs
from demo.models.loading import LoadedModel

MAX_CHARS = 20_000  # characters kept before tokenising; far beyond 512 tokens, bounds the tokenizer's work
TOP_K = 5  # labels / tokens shown per model
HIGH_UNK_SHARE = 0.2  # above this share of [UNK] tokens the page warns that the text is not understood
MASK_PATTERN = re.compile(r"\[mask\]|<mask>", re.IGNORECASE)
EXAMPLE_TEXT = {  # also the warm-up input after loading
    "sentiment": "A gripping, beautifully acted film that stays with you.",
    "fill_mask": "The capital of France is [MASK].",
    "classify": "I can't believe they surprised me with a party, I'm so happy!",
}
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")  # embeddings, overrides, isolates


class InputError(UserError, ValueError):
    """Text the task cannot take, with a message that says how to write it."""


@dataclass
class Prediction:
    """One model's answer: the top labels (or tokens) with probabilities, best first."""

    task: str
    top: list[tuple[str, float]]
    n_tokens: int  # tokens the model read, special tokens included
    truncated: bool = False
    unk_share: float = 0.0
    completed: str | None = None  # fill-mask: the text with the top token in place of the mask

    @property
    def label(self) -> str:
        return self.top[0][0]

    @property
    def score(self) -> float:
        return self.top[0][1]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["top"] = [{"label": lab, "score": round(s, 6)} for lab, s in self.top]
        return data


@dataclass
class PreparedText:
    """Cleaned input plus what the user should be told about the cleaning."""

    text: str
    notices: list[str] = field(default_factory=list)


def prepare_text(task: str, text: object) -> PreparedText:
    """Check and normalise user text for a task; raise InputError with a how-to-fix message."""
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise InputError(f"Expected text, got {type(text).__name__}.")
    notices = []
    # Control characters (NUL, escape codes...) mean nothing to the models, and bidirectional overrides
    # (U+202A-U+202E, U+2066-U+2069) would make the page show the text in another order than the models
    # read it; line breaks become spaces.
    cleaned, removed = [], 0
    for ch in text:
        if ch in "\t\n\r":
            cleaned.append(" ")
        elif unicodedata.category(ch) == "Cc" or ch in BIDI_CONTROLS:
            removed += 1
        else:
            cleaned.append(ch)
    text = "".join(cleaned)
    if removed:
        notices.append(f"Removed {removed} control character{'s' * (removed != 1)} from the text.")
    if not text.strip():
        raise InputError("The text is empty: type a sentence to compare the two models on.")
    masks = MASK_PATTERN.findall(text) if task == "fill_mask" else []  # counted in the whole text, before any cut
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS]
        notices.append(f"Only the first {MAX_CHARS:,} characters were read.")
    text = text.strip()
    if task == "fill_mask":
        if len(masks) != 1:
            found = "no mask" if not masks else f"{len(masks)} masks"
            # No angle brackets here: the page renders error messages as (sanitised) HTML.
            raise InputError(f"Fill-mask needs exactly one mask and the text has {found}: write [MASK] "
                             "where the missing word goes, e.g. 'The capital of France is [MASK].' "
                             "(RoBERTa's spelling, mask in angle brackets, is accepted too.)")
        text = MASK_PATTERN.sub("[MASK]", text)
    return PreparedText(text=text, notices=notices)


def encode(loaded: LoadedModel, text: str) -> tuple[dict[str, torch.Tensor], bool]:
    """Tokenise one text for one model, cut to its maximum length. Returns (tensors, truncated)."""
    tok = loaded.tokenizer
    if tok is None:
        return random_ids(loaded, text), False
    if task_uses_mask(loaded.task):
        text = text.replace("[MASK]", tok.mask_token)
    enc = tok(text, truncation=False, verbose=False)
    ids = enc["input_ids"]
    limit = loaded.max_length
    truncated = len(ids) > limit
    # Over the limit: keep the first limit-1 tokens and the closing special token.
    tensors = {key: torch.tensor([values[: limit - 1] + values[-1:] if truncated else values])
               for key, values in enc.items()}
    return model_inputs(loaded.model, tensors, loaded.device), truncated


WORD_PIECES = re.compile(r"\w+|[^\w\s]")


def random_ids(loaded: LoadedModel, text: str) -> dict[str, torch.Tensor]:
    """No tokenizer (architecture-only, offline): random ids as many as the text would have tokens (about 1.3 a
    word)."""
    n = max(3, min(loaded.max_length, 2 + int(1.3 * len(WORD_PIECES.findall(text)))))
    g = torch.Generator().manual_seed(zlib.crc32(text.encode("utf-8", "replace")))
    ids = torch.randint(1000, loaded.model.config.vocab_size, (1, n), generator=g)
    return model_inputs(loaded.model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, loaded.device)


def task_uses_mask(task: str) -> bool:
    return task == "fill_mask"


def _unk_share(loaded: LoadedModel, ids: torch.Tensor) -> float:
    tok = loaded.tokenizer
    if tok is None or tok.unk_token_id is None:
        return 0.0
    special = set(tok.all_special_ids) - {tok.unk_token_id}
    body = [i for i in ids.tolist() if i not in special]
    return sum(i == tok.unk_token_id for i in body) / len(body) if body else 0.0


@torch.inference_mode()
def predict(loaded: LoadedModel, text: str) -> Prediction:
    """Tokenise, run the model, post-process: everything a user waits for, for one text."""
    inputs, truncated = encode(loaded, text)
    ids = inputs["input_ids"][0]
    logits = loaded.model(**inputs).logits.float()
    if loaded.tokenizer is None:  # random weights and ids: time the real work, report nothing meaningful
        probs = logits[0, 1 if loaded.task == "fill_mask" else slice(None)].reshape(-1, logits.shape[-1])[0].softmax(-1)
        scores, classes = probs.topk(min(TOP_K, probs.numel()))
        return Prediction(task=loaded.task, top=[(f"#{int(c)}", s) for c, s in zip(classes.tolist(), scores.tolist())],
                          n_tokens=len(ids), completed=text if loaded.task == "fill_mask" else None)
    if loaded.task == "fill_mask":
        positions = (ids == loaded.tokenizer.mask_token_id).nonzero().flatten()
        if len(positions) == 0:
            raise InputError(f"The [MASK] lies beyond the first {loaded.max_length} tokens this model reads: "
                             "move it earlier or shorten the text.")
        scores_at_mask = logits[0, positions[0]]
        scores_at_mask[loaded.tokenizer.all_special_ids] = float("-inf")  # never suggest [CLS], [PAD]...
        probs = scores_at_mask.softmax(-1)
        scores, token_ids = probs.topk(TOP_K)
        tokens = [loaded.tokenizer.decode([int(t)]).strip() for t in token_ids]
        top = list(zip(tokens, scores.tolist()))
        completed = text.replace("[MASK]", tokens[0], 1)
    else:
        probs = logits[0].softmax(-1)
        scores, classes = probs.topk(min(TOP_K, probs.numel()))
        names = loaded.id2label
        top = [(names.get(int(c), str(int(c))), s) for c, s in zip(classes.tolist(), scores.tolist())]
        completed = None
    return Prediction(task=loaded.task, top=top, n_tokens=len(ids), truncated=truncated,
                      unk_share=_unk_share(loaded, ids), completed=completed)
