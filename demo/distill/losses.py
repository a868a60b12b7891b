"""The DistilBERT training objective, per task: soft targets + hard labels + hidden-state alignment."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossWeights:
    temperature: float = 2.0
    alpha_ce: float = 0.5  # soft targets: KL(teacher || student) at temperature T
    alpha_hard: float = 0.5  # cross-entropy on the gold labels
    alpha_cos: float = 0.0  # cosine alignment of hidden states


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher_T || student_T) * T^2, averaged over the batch.

    logits: (B, C). Softening by T shrinks the gradients by 1/T^2; multiplying by T^2 keeps their
    scale comparable to the hard-label term whatever T is (Hinton et al., 2015).
    """
    t = temperature
    log_p_student = F.log_softmax(student_logits / t, dim=-1)  # (B, C)
    p_teacher = F.softmax(teacher_logits / t, dim=-1)  # (B, C)
    return F.kl_div(log_p_student, p_teacher, reduction="batchmean") * t * t


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


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      weights: LossWeights, hidden_pairs: list[tuple[torch.Tensor, torch.Tensor]] = (),
                      attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the switched-on terms; also each term's value for the progress bar."""
    total = student_logits.new_zeros(())
    parts: dict[str, float] = {}
    if weights.alpha_ce > 0:
        kl = soft_target_loss(student_logits, teacher_logits.detach(), weights.temperature)
        total = total + weights.alpha_ce * kl
        parts["kl"] = kl.item()
    if weights.alpha_hard > 0:
        ce = F.cross_entropy(student_logits, labels)
        total = total + weights.alpha_hard * ce
        parts["ce"] = ce.item()
    if weights.alpha_cos > 0 and hidden_pairs:
        cos = torch.stack([cosine_hidden_loss(s, t.detach(), attention_mask) for s, t in hidden_pairs]).mean()
        total = total + weights.alpha_cos * cos
        parts["cos"] = cos.item()
    return total, parts
