"""The two objectives side by side: what the loop optimises (the loss function of a batch) and what it
scores a pass by, for classification and for the masked LM (general distillation).

Both pair student and teacher layers by one rule (student.layer_pairs): the cosine term on the pairs
--cos-layers names, the hidden-state MSE on every pair, through a learned projection where the widths
differ. The loss terms themselves are the pure functions of losses.py.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from demo.distill.losses import (
    LayerPairs,
    LossWeights,
    MlmWeights,
    distillation_loss,
    mlm_distillation_loss,
)
from demo.distill.student import layer_pairs
from demo.models.inputs import IGNORE_INDEX, accepted_inputs, model_inputs
from demo.models.masked_lm import DynamicMasker, fixed_masks, masked_logits


class StudentWithProjections(torch.nn.Module):
    """The student plus one linear map per aligned layer from its width to the teacher's (the
    hidden-state MSE needs equal widths). Only .student is saved: the maps serve training alone."""

    def __init__(self, student: torch.nn.Module, student_width: int, teacher_width: int, n_pairs: int):
        super().__init__()
        self.student = student
        self.projections = (torch.nn.ModuleList([torch.nn.Linear(student_width, teacher_width)
                                                 for _ in range(n_pairs)])
                            if student_width != teacher_width else None)
        self._demo_accepted_inputs = accepted_inputs(student)  # the wrapper takes what the student takes

    def forward(self, **inputs):
        """The student's forward: training calls go through the wrapper (and DDP's, under accelerate)."""
        return self.student(**inputs)

    def project(self, index: int, hidden: torch.Tensor) -> torch.Tensor:
        return hidden if self.projections is None else self.projections[index](hidden)


def aligned_hidden_states(s_hidden, t_hidden, layers: list[int] | None,
                          which: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(student, teacher) hidden states, each (B, T, H), of the layer pairs `which` names ("last" or "all")."""
    return [(s_hidden[s].float(), t_hidden[t].float()) for s, t in layer_pairs(layers, which)]


def teacher_context(accelerator):
    """No gradients for the teacher, in the run's mixed precision."""
    return accelerator.autocast() if accelerator is not None else contextlib.nullcontext()


def forward(model: torch.nn.Module, batch: dict, device, **extra):
    """A training forward pass through the prepared model (DDP's wrapper, where there is one, must
    see the call), given exactly the inputs the inner model takes."""
    inner = getattr(model, "module", model)
    return model(**model_inputs(inner, batch, device), **extra)


# ---- classification --------------------------------------------------------------------------------
def cross_entropy_loss_fn(device):
    """Fine-tuning a teacher: cross-entropy on the gold labels."""

    def loss_fn(model, batch):
        logits = forward(model, batch, device).logits
        return F.cross_entropy(logits.float(), batch["labels"].to(device)), {}

    return loss_fn


def classification_loss_fn(teacher, dset, weights: LossWeights, layers: list[int], cos_layers: str, accelerator=None):
    """The per-batch KD loss: student forward, teacher logits from the cache (or a teacher forward when
    hidden states or attentions are matched, or the rows were streamed), then the weighted terms."""
    device = teacher.device
    need_hidden = weights.alpha_cos > 0 or weights.alpha_hidden > 0
    extra = {"output_hidden_states": True} if need_hidden else {}
    if weights.alpha_attn > 0:
        extra["output_attentions"] = True

    def loss_fn(model: torch.nn.Module, batch: dict):
        wrapper: StudentWithProjections = getattr(model, "module", model)  # inside DDP's, under accelerate
        s_out = forward(model, batch, device, **extra)
        # Streamed rows (index -1) have no cached soft targets: the teacher runs on their batch.
        streamed = bool(dset.n_streamed) and bool((batch["index"] < 0).any())
        t_out = None
        if weights.needs_teacher_internals or streamed:
            with torch.no_grad(), teacher_context(accelerator):
                # The teacher gets exactly what plain inference gives it (token_type_ids included).
                t_out = teacher.model(**model_inputs(teacher.model, batch, device), **extra)
            t_logits = t_out.logits.float()
        elif dset.logits is not None:
            t_logits = dset.logits[batch["index"]].to(device)
        else:
            t_logits = s_out.logits.detach()
        cos_pairs, hidden_pairs, attention_pairs = [], [], []
        if weights.alpha_cos > 0:
            cos_pairs = aligned_hidden_states(s_out.hidden_states, t_out.hidden_states, layers, cos_layers)
        if weights.alpha_hidden > 0:
            hidden_pairs = aligned_hidden_states(s_out.hidden_states, t_out.hidden_states, layers, "all")
        if weights.alpha_attn > 0:
            attention_pairs = [(s_out.attentions[j], t_out.attentions[t]) for j, t in enumerate(layers)]
        pairs = LayerPairs(hidden_pairs, batch["attention_mask"].to(device), attention_pairs, wrapper.project,
                           cos=cos_pairs)
        return distillation_loss(s_out.logits.float(), t_logits, batch["labels"].to(device), weights, pairs)

    return loss_fn


@torch.inference_mode()
def gathered_predictions(accelerator, model: torch.nn.Module, loader: DataLoader) -> tuple[list[int], list[int]]:
    """Argmax predictions and labels of every validation row, gathered from every process (the
    padding rows of an uneven last batch dropped by gather_for_metrics)."""
    model.eval()
    preds, labels = [], []
    for batch in loader:
        logits = model(**model_inputs(model, batch, accelerator.device)).logits
        p, y = accelerator.gather_for_metrics((logits.argmax(-1), batch["labels"].to(accelerator.device)))
        preds += p.tolist()
        labels += y.tolist()
    return preds, labels


@torch.inference_mode()
def predict_ids(model: torch.nn.Module, batch_iter, device) -> list[int]:
    """Argmax class ids in one process (final figures on the main process)."""
    model.eval()
    out = []
    for batch in batch_iter:
        out += model(**model_inputs(model, batch, device)).logits.argmax(-1).tolist()
    return out


def classification_accuracy(accelerator, model: torch.nn.Module, loader: DataLoader) -> float:
    preds, labels = gathered_predictions(accelerator, model, loader)
    return sum(p == y for p, y in zip(preds, labels)) / max(len(labels), 1)


# ---- masked LM (--objective mlm) ---------------------------------------------------------------------
def mlm_loss_fn(masker: DynamicMasker, device):
    """The masked-LM loss alone (adaptation, and the no-teacher baseline)."""

    def loss_fn(model, batch):
        ids, labels = masker(batch["input_ids"], batch["attention_mask"])
        labels = labels.to(device)
        logits, _ = model(input_ids=ids.to(device), attention_mask=batch["attention_mask"].to(device), labels=labels)
        gold = labels[labels != IGNORE_INDEX]
        if gold.numel() == 0:  # a batch of one-token texts: nothing masked, nothing to learn
            return logits.sum() * 0.0, {}
        return F.cross_entropy(logits.float(), gold), {}

    return loss_fn


def triple_loss_fn(teacher, masker: DynamicMasker, weights: MlmWeights, device, accelerator=None,
                   layers: list[int] | None = None, cos_layers: str = "last"):
    """DistilBERT's triple loss per batch: one set of masks for both models; the teacher runs without
    gradients. layers: the teacher layers the student kept (the cosine and MSE terms pair by them)."""
    need_hidden = weights.alpha_cos > 0 or weights.alpha_hidden > 0

    def loss_fn(model, batch):
        ids, labels = masker(batch["input_ids"], batch["attention_mask"])
        ids, labels, attention = ids.to(device), labels.to(device), batch["attention_mask"].to(device)
        s_logits, s_out = model(input_ids=ids, attention_mask=attention, labels=labels,
                                output_hidden_states=need_hidden)
        with torch.no_grad(), teacher_context(accelerator):
            t_logits, t_out = masked_logits(teacher, ids, attention, labels, output_hidden_states=need_hidden)
        cos_pairs = (aligned_hidden_states(s_out.hidden_states, t_out.hidden_states, layers, cos_layers)
                     if weights.alpha_cos > 0 else [])
        hidden_pairs = (aligned_hidden_states(s_out.hidden_states, t_out.hidden_states, layers, "all")
                        if weights.alpha_hidden > 0 else [])
        return mlm_distillation_loss(s_logits.float(), t_logits.float(), labels[labels != IGNORE_INDEX], weights,
                                     cos_pairs, attention, hidden_pairs)

    return loss_fn


def masked_accuracy(tokenizer, seed: int):
    """The loop's score: top-1 masked-token accuracy on the validation rows, fixed masks, gathered
    over processes (per row, so the padding rows of an uneven last batch are dropped)."""

    @torch.inference_mode()
    def score(accelerator, model, loader) -> float:
        model.eval()
        totals = torch.zeros(2)
        for batch in loader:
            ids, attention = batch["input_ids"].cpu(), batch["attention_mask"].cpu()
            masked, labels = fixed_masks(ids, attention, batch["index"].cpu(), tokenizer, seed)
            device = accelerator.device
            logits, _ = masked_logits(model, masked.to(device), attention.to(device), labels.to(device))
            where = labels != IGNORE_INDEX
            hits = (logits.argmax(-1).cpu() == labels[where]).float()
            per_row = torch.zeros(len(ids)).index_add_(0, where.nonzero()[:, 0], hits)
            rows = torch.stack([per_row, where.sum(1).float()], 1).to(device)
            totals += accelerator.gather_for_metrics(rows).sum(0).cpu()
        return (totals[0] / totals[1]).item() if totals[1] else 0.0

    return score
