"""General distillation's pieces on tiny random models: dynamic and fixed masks, the triple loss and
the head run at masked positions only."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import (
    BertForMaskedLM,
    BertTokenizerFast,
)

from demo.distill.losses import MlmWeights, mlm_distillation_loss, soft_target_loss
from demo.distill.objectives import triple_loss_fn
from demo.distill.student import make_student
from demo.models.inputs import IGNORE_INDEX
from demo.models.masked_lm import (
    DynamicMasker,
    MaskedLMAtPositions,
    fixed_masks,
    masked_logits,
)

from .builders import bert_config, save


@pytest.fixture()
def tiny_mlm():
    torch.manual_seed(1)
    # Wide initial weights: a random model whose guesses are far from uniform, so losses are not ~0 by chance.
    return BertForMaskedLM(bert_config(initializer_range=0.3)).eval()


@pytest.fixture()
def tokenizer(tmp_path):
    return BertTokenizerFast.from_pretrained(save(BertForMaskedLM(bert_config()), BertTokenizerFast, tmp_path / "t"))



# ---- masking ---------------------------------------------------------------------------------------
def test_dynamic_masks_follow_bert_rates_and_spare_special_tokens(tokenizer):
    torch.manual_seed(0)
    words = [w for w in tokenizer.get_vocab() if w.isalpha() and not w.startswith("[")]
    enc = tokenizer([" ".join(random.Random(i).choices(words, k=40)) for i in range(200)], padding="longest",
                    return_tensors="pt")
    ids, attention = enc["input_ids"], enc["attention_mask"]
    masked, labels = DynamicMasker(tokenizer)(ids, attention)
    chosen = labels != IGNORE_INDEX
    special = torch.isin(ids, torch.tensor(tokenizer.all_special_ids)) | ~attention.bool()
    assert not (chosen & special).any()  # [CLS], [SEP] and padding are never masked
    assert (labels[chosen] == ids[chosen]).all()  # labels are the original tokens
    assert 0.14 < chosen.sum() / (~special).sum() < 0.16
    as_mask = (masked[chosen] == tokenizer.mask_token_id).float().mean()
    kept = (masked[chosen] == ids[chosen]).float().mean()
    assert 0.77 < as_mask < 0.83 and 0.07 < kept < 0.13  # 80% [MASK], ~10% kept (+ random that hit itself)
    assert (masked[~chosen] == ids[~chosen]).all()


def test_fixed_masks_depend_on_the_row_not_on_the_batch(tokenizer):
    enc = tokenizer(["the film was good and the plot was dull", "a dog ran fast", "i love paris"],
                    padding="longest", return_tensors="pt")
    ids, attention = enc["input_ids"], enc["attention_mask"]
    alone = tokenizer(["a dog ran fast"], return_tensors="pt")
    batch_masked, _ = fixed_masks(ids, attention, torch.tensor([10, 11, 12]), tokenizer, seed=5)
    one_masked, one_labels = fixed_masks(alone["input_ids"], alone["attention_mask"], torch.tensor([11]), tokenizer,
                                         seed=5)
    width = alone["input_ids"].shape[1]
    assert torch.equal(batch_masked[1, :width], one_masked[0])
    assert (one_labels != IGNORE_INDEX).sum() >= 1
    other_seed, _ = fixed_masks(ids, attention, torch.tensor([10, 11, 12]), tokenizer, seed=6)
    assert not torch.equal(other_seed, batch_masked)


# ---- the triple loss -------------------------------------------------------------------------------
def test_soft_loss_is_taken_at_masked_positions_only(tiny_mlm, tokenizer):
    student = make_student(tiny_mlm, [0, 3]).eval()
    with torch.no_grad():  # random tiny models guess near-uniformly: make their guesses differ clearly
        student.vocab_transform.weight += 2 * torch.randn_like(student.vocab_transform.weight)
    enc = tokenizer(["the film was good and the plot was dull", "a dog ran fast"], padding="longest",
                    return_tensors="pt")
    batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    loss_fn = triple_loss_fn(tiny_mlm, DynamicMasker(tokenizer), MlmWeights(alpha_ce=1.0, alpha_mlm=0.0,
                                                                            alpha_cos=0.0), "cpu")
    torch.manual_seed(3)
    _, parts = loss_fn(MaskedLMAtPositions(student), batch)
    torch.manual_seed(3)  # the same masks again, then the loss by hand from every position's logits
    masked, labels = DynamicMasker(tokenizer)(batch["input_ids"], batch["attention_mask"])
    where = labels != IGNORE_INDEX
    with torch.no_grad():
        s_all = student(input_ids=masked, attention_mask=batch["attention_mask"]).logits
        t_all = tiny_mlm(input_ids=masked, attention_mask=batch["attention_mask"]).logits
    at_masks = soft_target_loss(s_all[where], t_all[where], 2.0).item()
    everywhere = soft_target_loss(s_all[batch["attention_mask"].bool()], t_all[batch["attention_mask"].bool()],
                                  2.0).item()
    assert parts["kl"] == pytest.approx(at_masks, rel=1e-4)
    assert abs(parts["kl"] - everywhere) > 100 * abs(parts["kl"] - at_masks)


def test_a_student_equal_to_its_teacher_has_zero_cosine_and_soft_loss(tiny_mlm, tokenizer):
    twin = make_student(tiny_mlm, [0, 1, 2, 3]).eval()  # every layer: the teacher in DistilBERT's shape
    enc = tokenizer(["the film was good", "a dog ran fast and the cat ran slow"], padding="longest",
                    return_tensors="pt")
    loss_fn = triple_loss_fn(tiny_mlm, DynamicMasker(tokenizer), MlmWeights(alpha_ce=1.0, alpha_mlm=0.0,
                                                                            alpha_cos=1.0), "cpu")
    torch.manual_seed(0)
    total, parts = loss_fn(MaskedLMAtPositions(twin), dict(enc))
    assert parts["cos"] == pytest.approx(0.0, abs=1e-6) and parts["kl"] == pytest.approx(0.0, abs=1e-6)
    assert total.item() == pytest.approx(0.0, abs=1e-5)
    half = make_student(tiny_mlm, [0, 3]).eval()
    torch.manual_seed(0)
    _, parts = loss_fn(MaskedLMAtPositions(half), dict(enc))
    assert parts["cos"] > 1e-3 and parts["kl"] > 1e-3  # a half-depth student is not its teacher


def test_every_kept_layer_can_be_aligned_with_the_teacher_layer_it_came_from(tiny_mlm, tokenizer):
    enc = tokenizer(["the film was good", "a dog ran fast and the cat ran slow"], padding="longest",
                    return_tensors="pt")
    weights = MlmWeights(alpha_ce=0.0, alpha_mlm=0.0, alpha_cos=1.0, alpha_hidden=1.0)
    twin_layers, half_layers = [0, 1, 2, 3], [0, 3]
    twin = make_student(tiny_mlm, twin_layers).eval()
    loss_fn = triple_loss_fn(tiny_mlm, DynamicMasker(tokenizer), weights, "cpu", layers=twin_layers, cos_layers="all")
    torch.manual_seed(0)
    _, parts = loss_fn(MaskedLMAtPositions(twin), dict(enc))
    assert parts["cos"] == pytest.approx(0.0, abs=1e-6) and parts["hidden"] == pytest.approx(0.0, abs=1e-8)
    # A student of layers 0 and 3: its first layer is the teacher's first, so that pair matches; its
    # second layer sees layer 0's output where teacher layer 3 saw layer 2's, so that pair does not.
    half = make_student(tiny_mlm, half_layers).eval()
    loss_fn = triple_loss_fn(tiny_mlm, DynamicMasker(tokenizer), weights, "cpu", layers=half_layers, cos_layers="all")
    torch.manual_seed(0)
    _, parts_all = loss_fn(MaskedLMAtPositions(half), dict(enc))
    assert parts_all["hidden"] > 1e-4 and parts_all["cos"] > 1e-4
    last_only = triple_loss_fn(tiny_mlm, DynamicMasker(tokenizer), MlmWeights(alpha_ce=0.0, alpha_mlm=0.0,
                                                                              alpha_cos=1.0), "cpu")
    torch.manual_seed(0)
    _, parts_last = last_only(MaskedLMAtPositions(half), dict(enc))
    # Three pairs (embeddings, layer 0, layer 3), two of which match: the mean is a third of the last pair's.
    assert parts_all["cos"] == pytest.approx(parts_last["cos"] / 3, rel=1e-4)



def test_masked_lm_loss_is_cross_entropy_on_the_true_tokens():
    logits, gold = torch.randn(6, 20), torch.randint(0, 20, (6,))
    _, parts = mlm_distillation_loss(logits, torch.randn(6, 20), gold, MlmWeights(alpha_ce=0, alpha_mlm=1, alpha_cos=0))
    assert parts == {"mlm": pytest.approx(torch.nn.functional.cross_entropy(logits, gold).item())}


def test_head_at_masked_positions_equals_the_full_forward(tiny_mlm, tokenizer):
    enc = tokenizer(["the film was good", "a dog ran fast and far"], padding="longest", return_tensors="pt")
    labels = torch.full_like(enc["input_ids"], IGNORE_INDEX)
    labels[0, 2], labels[1, 4] = 7, 9
    logits, _ = masked_logits(tiny_mlm, enc["input_ids"], enc["attention_mask"], labels)
    full = tiny_mlm(**enc).logits
    assert torch.allclose(logits, full[labels != IGNORE_INDEX], atol=1e-5)

