"""The distillation objective, per task: one pure function per loss term, and their weighted sum
(for classification, and DistilBERT's triple loss for a masked LM).

Rows without a gold label (transfer text, augmented text) carry the label -100: they get the
teacher-matching terms only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from demo.models.inputs import (
    IGNORE_INDEX,  # the label of a row that only has the teacher's soft targets
)


@dataclass(frozen=True)
class LossWeights:
    temperature: float = 2.0
    alpha_ce: float = 0.5  # soft targets: KL(teacher || student) at temperature T
    alpha_hard: float = 0.5  # cross-entropy on the gold labels (labelled rows only)
    alpha_cos: float = 0.0  # cosine alignment of hidden states
    alpha_hidden: float = 0.0  # MSE between (projected) student and teacher hidden states (PKD, TinyBERT)
    alpha_attn: float = 0.0  # KL between attention distributions of mapped layers (TinyBERT, MiniLM)

    @property
    def needs_teacher_internals(self) -> bool:
        """Hidden states and attentions cannot come from the cached logits: the teacher runs per step."""
        return self.alpha_cos > 0 or self.alpha_hidden > 0 or self.alpha_attn > 0


@dataclass(frozen=True)
class MlmWeights:
    temperature: float = 2.0
    alpha_ce: float = 5.0  # KL(teacher || student) over the vocabulary at masked positions
    alpha_mlm: float = 2.0  # cross-entropy on the true tokens at masked positions
    alpha_cos: float = 1.0  # 1 - cos between hidden states (the last, or every mapped layer), real tokens
    alpha_hidden: float = 0.0  # MSE between every student layer's hidden states and its teacher layer's


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher_T || student_T) * T^2, averaged over the batch.

    logits: (B, C). Softening by T shrinks the gradients by 1/T^2; multiplying by T^2 keeps their
    scale comparable to the hard-label term whatever T is (Hinton et al., 2015).
    """
    t = temperature
    log_p_student = F.log_softmax(student_logits / t, dim=-1)  # (B, C)
    p_teacher = F.softmax(teacher_logits / t, dim=-1)  # (B, C)
    return F.kl_div(log_p_student, p_teacher, reduction="batchmean") * t * t


def hard_label_loss(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on labelled rows, summed and divided by the whole batch size B.

    Dividing by B (not by the number of labelled rows) keeps this the batch mean of a per-row loss
    that is zero for unlabelled rows, so a batch holding one labelled row does not give that row the
    weight of a whole batch.
    """
    per_row = F.cross_entropy(student_logits, labels, ignore_index=IGNORE_INDEX, reduction="none")  # (B,)
    return per_row.sum() / student_logits.shape[0]


def cosine_hidden_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor,
                       attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean (1 - cos) between student and teacher hidden states over real (unpadded) tokens.

    hidden: (B, T, H); attention_mask: (B, T) with 1 for real tokens. Padding positions carry no
    meaning and would otherwise pull the student towards arbitrary vectors.
    """
    mask = attention_mask.bool()  # (B, T)
    s = student_hidden[mask]  # (N, H), N = real tokens in the batch
    t = teacher_hidden[mask]  # (N, H)
    return (1.0 - F.cosine_similarity(s, t, dim=-1)).mean()


def hidden_mse_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor,
                    attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error between hidden states over real tokens (student already projected to the
    teacher's width). hidden: (B, T, H); mean over tokens and features, as TinyBERT's MSE."""
    mask = attention_mask.bool()
    return F.mse_loss(student_hidden[mask], teacher_hidden[mask])


def attention_kl_loss(student_attn: torch.Tensor, teacher_attn: torch.Tensor,
                      attention_mask: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """KL(teacher || student) between attention distributions, per head and real query position.

    attn: (B, nh, T, T), each row a distribution over keys (padded keys get ~0 from both models).
    Averaged over heads and real query positions: MiniLM's self-attention distribution transfer.
    """
    t = teacher_attn.clamp_min(eps)
    s = student_attn.clamp_min(eps)
    kl_rows = (t * (t.log() - s.log())).sum(-1)  # (B, nh, T): one KL per head and query
    query_mask = attention_mask.bool()[:, None, :].expand_as(kl_rows)  # (B, nh, T)
    return kl_rows[query_mask].mean()


@dataclass
class LayerPairs:
    """A batch's (student, teacher) internals of the mapped layers, for the terms that compare them (as
    TextBrewer's adaptor hands its losses named parts): the losses never see the models themselves."""

    hidden: Sequence[tuple[torch.Tensor, torch.Tensor]] = ()  # hidden states, each (B, T, H_s) / (B, T, H_t)
    attention_mask: torch.Tensor | None = None  # (B, T): which tokens are real
    attention: Sequence[tuple[torch.Tensor, torch.Tensor]] = ()  # attention probabilities, (B, nh, T, T)
    project: Callable[[int, torch.Tensor], torch.Tensor] | None = None  # pair i's student state -> teacher width
    cos: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None  # the cosine term's pairs (default: hidden)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      weights: LossWeights, pairs: LayerPairs | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the switched-on terms; also each term's value for the progress bar and history."""
    pairs = pairs or LayerPairs()
    hidden_pairs, attention_mask, attention_pairs, project = pairs.hidden, pairs.attention_mask, pairs.attention, \
        pairs.project
    cos_pairs = hidden_pairs if pairs.cos is None else pairs.cos
    total = student_logits.new_zeros(())
    parts: dict[str, float] = {}
    if weights.alpha_ce > 0:
        kl = soft_target_loss(student_logits, teacher_logits.detach(), weights.temperature)
        total = total + weights.alpha_ce * kl
        parts["kl"] = kl.item()
    if weights.alpha_hard > 0 and bool((labels != IGNORE_INDEX).any()):
        ce = hard_label_loss(student_logits, labels)
        total = total + weights.alpha_hard * ce
        parts["ce"] = ce.item()
    if weights.alpha_cos > 0 and cos_pairs:
        cos = torch.stack([cosine_hidden_loss(s, t.detach(), attention_mask) for s, t in cos_pairs]).mean()
        total = total + weights.alpha_cos * cos
        parts["cos"] = cos.item()
    if weights.alpha_hidden > 0 and hidden_pairs:
        mse = torch.stack([hidden_mse_loss(project(i, s) if project else s, t.detach(), attention_mask)
                           for i, (s, t) in enumerate(hidden_pairs)]).mean()
        total = total + weights.alpha_hidden * mse
        parts["hidden"] = mse.item()
    if weights.alpha_attn > 0 and attention_pairs:
        att = torch.stack([attention_kl_loss(s.float(), t.detach().float(), attention_mask)
                           for s, t in attention_pairs]).mean()
        total = total + weights.alpha_attn * att
        parts["attn"] = att.item()
    return total, parts


# ---- general distillation (--objective mlm) ---------------------------------------------------------
def mlm_distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, gold: torch.Tensor,
                          weights: MlmWeights, cos_pairs: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
                          attention_mask: torch.Tensor | None = None,
                          hidden_pairs: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
                          ) -> tuple[torch.Tensor, dict[str, float]]:
    """DistilBERT's triple loss, plus (optionally) the hidden-state MSE of every mapped layer.
    logits: (N, V) at the N masked positions; gold: (N,) true tokens; cos_pairs and hidden_pairs:
    (student, teacher) hidden states (B, T, H), aligned over real tokens."""
    total = student_logits.new_zeros(())
    parts: dict[str, float] = {}
    if gold.numel() == 0:
        return total + student_logits.sum() * 0.0, parts
    if weights.alpha_ce > 0:
        kl = soft_target_loss(student_logits, teacher_logits.detach(), weights.temperature)
        total, parts["kl"] = total + weights.alpha_ce * kl, kl.item()
    if weights.alpha_mlm > 0:
        mlm = F.cross_entropy(student_logits, gold)
        total, parts["mlm"] = total + weights.alpha_mlm * mlm, mlm.item()
    if weights.alpha_cos > 0 and cos_pairs:
        cos = torch.stack([cosine_hidden_loss(s, t.detach(), attention_mask) for s, t in cos_pairs]).mean()
        total, parts["cos"] = total + weights.alpha_cos * cos, cos.item()
    if weights.alpha_hidden > 0 and hidden_pairs:
        mse = torch.stack([hidden_mse_loss(s, t.detach(), attention_mask) for s, t in hidden_pairs]).mean()
        total, parts["hidden"] = total + weights.alpha_hidden * mse, mse.item()
    return total, parts
