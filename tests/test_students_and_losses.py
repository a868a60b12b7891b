"""The distillation loss terms and students made from teacher layers, on tiny models."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    BertForSequenceClassification,
)

from demo.distill.losses import (
    IGNORE_INDEX,
    LossWeights,
    attention_kl_loss,
    cosine_hidden_loss,
    distillation_loss,
    hard_label_loss,
    soft_target_loss,
)
from demo.distill.objectives import StudentWithProjections, classification_loss_fn
from demo.distill.student import bert_student, distilbert_student, parse_layers
from demo.distill.trainset import DistillSet
from demo.models.inputs import model_inputs

from .builders import bert_config


# ---- losses ------------------------------------------------------------------------------------
def test_soft_target_loss_is_kl_times_t_squared():
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    T = 2.0
    expected = 0.0
    for srow, trow in zip(s.tolist(), t.tolist()):
        p = [math.exp(x / T) / sum(math.exp(y / T) for y in trow) for x in trow]
        q = [math.exp(x / T) / sum(math.exp(y / T) for y in srow) for x in srow]
        expected += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    expected = expected / 2 * T * T
    assert soft_target_loss(s, t, T).item() == pytest.approx(expected, rel=1e-6)
    assert soft_target_loss(t, t, T).item() == pytest.approx(0.0, abs=1e-7)


def test_cosine_loss_ignores_padding():
    student = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])  # (B=1, T=3, H=2)
    teacher = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [-5.0, 1.0]]])
    mask = torch.tensor([[1, 1, 0]])  # the third token is padding
    # token 1: cos = 1 -> 0; token 2: cos = 0 -> 1; mean over real tokens = 0.5
    assert cosine_hidden_loss(student, teacher, mask).item() == pytest.approx(0.5)


def test_total_loss_weights_and_switches_terms():
    s, t = torch.tensor([[1.0, -1.0]]), torch.tensor([[0.0, 1.0]])
    labels = torch.tensor([1])
    w = LossWeights(temperature=2.0, alpha_ce=0.3, alpha_hard=0.7, alpha_cos=0.0)
    total, parts = distillation_loss(s, t, labels, w)
    ce = torch.nn.functional.cross_entropy(s, labels).item()
    assert set(parts) == {"kl", "ce"}
    assert total.item() == pytest.approx(0.3 * soft_target_loss(s, t, 2.0).item() + 0.7 * ce)
    _, only_hard = distillation_loss(s, t, labels, LossWeights(alpha_ce=0.0, alpha_hard=1.0))
    assert set(only_hard) == {"ce"}


# ---- student initialisation --------------------------------------------------------------------
def test_layer_choice():
    assert parse_layers("6", 12) == [0, 2, 4, 7, 9, 11]  # the original DistilBERT extraction
    assert parse_layers("0,2,4,7,9,11", 12) == [0, 2, 4, 7, 9, 11]
    assert parse_layers("3", 6) == [0, 3, 5]
    for bad in ("0", "13", "3,1", "1,1", "x", "0,12"):
        with pytest.raises(ValueError, match="--student-layers"):
            parse_layers(bad, 12)


@pytest.fixture(scope="module")
def teacher_model():
    torch.manual_seed(1)
    model = BertForSequenceClassification(bert_config(num_hidden_layers=6, num_labels=3))
    with torch.no_grad():  # a visible token-type-0 embedding, so folding it matters
        model.bert.embeddings.token_type_embeddings.weight.normal_(0, 1)
    return model.eval()


def test_bert_student_copies_exactly_the_kept_layers(teacher_model):
    layers = [0, 3, 5]
    student = bert_student(teacher_model, layers)
    t, s = teacher_model.state_dict(), student.state_dict()
    for new, old in enumerate(layers):
        for name, tensor in s.items():
            if name.startswith(f"bert.encoder.layer.{new}."):
                assert torch.equal(tensor, t[name.replace(f"layer.{new}.", f"layer.{old}.", 1)])
    for name in ("bert.embeddings.word_embeddings.weight", "bert.pooler.dense.weight", "classifier.weight"):
        assert torch.equal(s[name], t[name])
    assert student.config.num_hidden_layers == 3


def test_distilbert_student_maps_bert_names(teacher_model):
    layers = [1, 4]
    student = distilbert_student(teacher_model, layers)
    t, s = teacher_model.state_dict(), student.state_dict()
    pairs = {"attention.self.query": "attention.q_lin", "attention.self.key": "attention.k_lin",
             "attention.self.value": "attention.v_lin", "attention.output.dense": "attention.out_lin",
             "attention.output.LayerNorm": "sa_layer_norm", "intermediate.dense": "ffn.lin1",
             "output.dense": "ffn.lin2", "output.LayerNorm": "output_layer_norm"}
    for new, old in enumerate(layers):
        for bert_name, distil_name in pairs.items():
            for param in ("weight", "bias"):
                assert torch.equal(s[f"distilbert.transformer.layer.{new}.{distil_name}.{param}"],
                                   t[f"bert.encoder.layer.{old}.{bert_name}.{param}"])
    assert torch.equal(s["pre_classifier.weight"], t["bert.pooler.dense.weight"])
    assert torch.equal(s["classifier.weight"], t["classifier.weight"])
    assert not any("token_type" in k for k in s)


def test_distilbert_embeddings_equal_the_teachers_for_single_segment_input(teacher_model):
    student = distilbert_student(teacher_model, [0, 5]).eval()
    ids = torch.tensor([[2, 10, 20, 30, 3]])
    with torch.no_grad():
        teacher_emb = teacher_model.bert.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
        student_emb = student.distilbert.embeddings(ids)
    assert torch.allclose(teacher_emb, student_emb, atol=1e-6)


def test_each_model_gets_the_inputs_it_accepts(teacher_model):
    student = distilbert_student(teacher_model, [0, 5])
    batch = {"input_ids": torch.ones(1, 3, dtype=torch.long), "attention_mask": torch.ones(1, 3, dtype=torch.long),
             "token_type_ids": torch.zeros(1, 3, dtype=torch.long), "labels": torch.tensor([0]),
             "index": torch.tensor([0])}
    assert set(model_inputs(teacher_model, batch, torch.device("cpu"))) == {"input_ids", "attention_mask",
                                                                            "token_type_ids"}
    assert set(model_inputs(student, batch, torch.device("cpu"))) == {"input_ids", "attention_mask"}


# ---- losses with transfer text, hidden states and attention ----------------------------------------------
def test_rows_without_a_label_get_no_hard_loss():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.5], [-1.0, 3.0]], requires_grad=True)
    labels = torch.tensor([0, IGNORE_INDEX, IGNORE_INDEX])
    expected = torch.nn.functional.cross_entropy(logits[:1], labels[:1]) / 3  # one labelled row of three
    assert hard_label_loss(logits, labels).item() == pytest.approx(expected.item())
    hard_label_loss(logits, labels).backward()
    assert torch.all(logits.grad[1:] == 0)  # unlabelled rows: no gradient from the hard term
    _, parts = distillation_loss(logits, logits.detach(), torch.full((3,), IGNORE_INDEX), LossWeights())
    assert "ce" not in parts and "kl" in parts


def test_attention_loss_is_zero_for_identical_models_and_positive_otherwise():
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(bert_config(num_hidden_layers=3)).eval()
    twin = bert_student(teacher, [0, 1, 2]).eval()
    for m in (teacher, twin):
        m.set_attn_implementation("eager")
    batch = {"input_ids": torch.tensor([[2, 10, 11, 12, 3], [2, 13, 3, 0, 0]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]),
             "token_type_ids": torch.zeros(2, 5, dtype=torch.long), "labels": torch.tensor([0, IGNORE_INDEX]),
             "index": torch.tensor([0, 1])}
    loaded = type("T", (), {"model": teacher, "device": torch.device("cpu")})()
    loss_fn = classification_loss_fn(loaded, DistillSet(), LossWeights(alpha_ce=0, alpha_hard=0, alpha_attn=1.0),
                           [0, 1, 2], "last")
    wrapper = StudentWithProjections(twin, 32, 32, 4)
    _, parts = loss_fn(wrapper, batch)
    assert parts["attn"] == pytest.approx(0.0, abs=1e-6)
    other = bert_student(teacher, [2, 1, 0][::-1])  # same layers, then perturbed
    with torch.no_grad():
        other.bert.encoder.layer[0].attention.self.query.weight.mul_(3.0)
    other.set_attn_implementation("eager")
    _, parts = loss_fn(StudentWithProjections(other, 32, 32, 4), batch)
    assert parts["attn"] > 1e-4
    s = torch.softmax(torch.randn(1, 2, 3, 3), -1)
    assert attention_kl_loss(s, s, torch.ones(1, 3)).item() == pytest.approx(0.0, abs=1e-6)


def test_projection_serves_training_only(tmp_path):
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(bert_config(num_hidden_layers=2, hidden_size=48)).eval()
    student = BertForSequenceClassification(bert_config(num_hidden_layers=1))  # width 32
    wrapper = StudentWithProjections(student, 32, 48, 2)
    loaded = type("T", (), {"model": teacher, "device": torch.device("cpu")})()
    weights = LossWeights(alpha_ce=0, alpha_hard=0, alpha_hidden=1.0)
    loss_fn = classification_loss_fn(loaded, DistillSet(), weights, [1], "last")
    batch = {"input_ids": torch.tensor([[2, 10, 11, 3]]), "attention_mask": torch.ones(1, 4, dtype=torch.long),
             "token_type_ids": torch.zeros(1, 4, dtype=torch.long), "labels": torch.tensor([IGNORE_INDEX]),
             "index": torch.tensor([0])}
    loss, parts = loss_fn(wrapper, batch)
    loss.backward()
    assert parts["hidden"] > 0 and wrapper.projections[1].weight.grad.abs().sum() > 0  # the map is trained
    wrapper.student.save_pretrained(tmp_path)
    saved = load_file(str(tmp_path / "model.safetensors"))
    assert not any("projection" in k for k in saved) and saved["bert.embeddings.word_embeddings.weight"].shape[1] == 32
    assert StudentWithProjections(student, 32, 32, 2).projections is None  # same width: nothing to learn


