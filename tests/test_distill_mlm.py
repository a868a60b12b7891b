"""General distillation (--objective mlm) on tiny random models: masking, the triple loss, the CLI
steps, the evaluator's fill-mask report, the app loading the produced pair, and bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
import yaml
from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    BertForMaskedLM,
    BertTokenizerFast,
    pipeline,
)

from demo.distill.args import DistillTrainArguments
from demo.distill.cli import main
from demo.distill.losses import MlmWeights, mlm_distillation_loss, soft_target_loss
from demo.distill.objectives import triple_loss_fn
from demo.distill.student import make_student
from demo.evaluate import main as evaluate_main
from demo.models.inputs import IGNORE_INDEX
from demo.models.masked_lm import (
    DynamicMasker,
    MaskedLMAtPositions,
    fixed_masks,
    masked_logits,
)

from .builders import WORDS, InProcessApp, bert_config, call_when_ready, save


@pytest.fixture(scope="module")
def texts_file(tmp_path_factory) -> Path:
    rng = random.Random(0)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))) for _ in range(500)]
    path = tmp_path_factory.mktemp("text") / "texts.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bare_encoder_dir(tmp_path_factory) -> Path:
    """A bare BERT encoder without a pooler or an MLM head (BertForMaskedLM's own body)."""
    torch.manual_seed(0)
    return save(BertForMaskedLM(bert_config()).bert, BertTokenizerFast, tmp_path_factory.mktemp("bare-encoder"))


@pytest.fixture(scope="module")
def mlm_teacher(bare_encoder_dir, texts_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mlm-teacher")
    assert main(["finetune", "--objective", "mlm", "--model", str(bare_encoder_dir), "--train-file", str(texts_file),
                 "--epochs", "2", "--min-steps", "0", "--batch-size", "16", "--learning-rate", "3e-3",
                 "--output-dir", str(out), "--overwrite-output-dir"]) == 0
    return out


@pytest.fixture(scope="module")
def mlm_student(mlm_teacher, texts_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mlm-student")
    assert main(["distill", "--objective", "mlm", "--teacher", str(mlm_teacher), "--train-file", str(texts_file),
                 "--student-layers", "2", "--epochs", "1", "--min-steps", "0", "--batch-size", "16",
                 "--baselines", "--eval-file", f"again={texts_file}", "--output-dir", str(out),
                 "--overwrite-output-dir"]) == 0
    return out


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


def test_the_cli_aligns_every_layer_when_asked(mlm_teacher, texts_file, tmp_path):
    out = tmp_path / "layers"
    assert main(["distill", "--objective", "mlm", "--teacher", str(mlm_teacher), "--train-file", str(texts_file),
                 "--student-layers", "2", "--max-steps", "4", "--batch-size", "16", "--cos-layers", "all",
                 "--alpha-hidden", "0.5", "--learning-rate", "1e-3", "--output-dir", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["loss_weights"]["alpha_hidden"] == 0.5 and m["args"]["cos_layers"] == "all"
    assert m["args"]["learning_rate"] == 1e-3  # a given learning rate wins over the objective's default
    assert {"train_cos", "train_hidden"} <= set(m["history"][-1])
    card = (out / "README.md").read_text()
    assert "0.5 × MSE between every student layer's hidden states" in card
    assert "those of the teacher layer it was copied from" in card


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


# ---- the CLI steps ---------------------------------------------------------------------------------
def test_adapting_a_bare_encoder_adds_a_head_and_says_so(mlm_teacher):
    metrics = json.loads((mlm_teacher / "metrics.json").read_text())
    assert metrics["head_added"] is True and metrics["objective"] == "mlm"
    first, last = metrics["history"][0], metrics["history"][-1]
    assert len(metrics["history"]) == 2 and last["train_loss"] < first["train_loss"]  # two epochs, each evaluated
    teacher, n_masked = metrics["masked_lm"]["teacher"], metrics["masked_lm"]["n_masked"]
    assert teacher["top1_accuracy"] < teacher["top5_accuracy"]  # five guesses find more than one
    for share in (teacher["top1_accuracy"], teacher["top5_accuracy"]):  # shares of the masked tokens
        assert share * n_masked == pytest.approx(round(share * n_masked), abs=1e-6)
    assert isinstance(AutoModelForMaskedLM.from_pretrained(mlm_teacher), BertForMaskedLM)


def test_general_distillation_writes_a_fill_mask_student(mlm_student):
    model = AutoModelForMaskedLM.from_pretrained(mlm_student)
    assert type(model).__name__ == "DistilBertForMaskedLM" and model.config.n_layers == 2
    tok = AutoTokenizer.from_pretrained(mlm_student)
    assert "token_type_ids" not in tok("the film")  # DistilBERT: no token types
    guesses = pipeline("fill-mask", model=str(mlm_student), device="cpu")("the film was [MASK] .")
    assert len(guesses) == 5
    m = json.loads((mlm_student / "metrics.json").read_text())
    r = m["masked_lm"]
    assert {"top1_accuracy", "top5_accuracy", "pseudo_perplexity", "masked_perplexity"} <= set(r["student"])
    assert r["retention_top1"] == pytest.approx(r["student"]["top1_accuracy"] / r["teacher"]["top1_accuracy"])
    assert 0 <= r["agreement_top1"] <= 1 and r["speedup"] > 0
    assert m["loss_weights"] == {"temperature": 2.0, "alpha_ce": 5.0, "alpha_mlm": 2.0, "alpha_cos": 1.0,
                                 "alpha_hidden": 0.0}
    assert {"train_kl", "train_mlm", "train_cos"} <= set(m["history"][-1])
    # the loop's score (fixed masks, gathered per row) is the final report's top-1, on the same masks
    assert max(row["validation_accuracy"] for row in m["history"]) == pytest.approx(
        r["student"]["top1_accuracy"], abs=1.5 / r["n_masked"])
    assert m["eval_sets"]["again"]["n_texts"] > 0
    names = [b["name"] for b in m["baselines"]]
    assert names == ["layer dropping alone (no training)", "MLM loss alone (no teacher), same text and budget"]
    for b in m["baselines"]:
        assert type(AutoModelForMaskedLM.from_pretrained(mlm_student / b["path"])).__name__ == "DistilBertForMaskedLM"
        # paired on the same tokens: the difference of the discordant counts is the difference of the accuracies
        p = b["paired_top1"]
        assert p["n_masked"] == r["n_masked"]
        assert p["student_right_baseline_wrong"] - p["baseline_right_student_wrong"] == round(
            (r["student"]["top1_accuracy"] - b["masked_lm"]["student"]["top1_accuracy"]) * r["n_masked"])
    dropped = m["baselines"][0]["paired_top1"]  # the untrained student guesses differently somewhere
    assert dropped["student_right_baseline_wrong"] + dropped["baseline_right_student_wrong"] > 0
    card = (mlm_student / "README.md").read_text()
    assert "pipeline_tag: fill-mask" in card and "What the teacher adds" in card and "triple loss" in card
    assert "McNemar" in card
    assert m["args"]["learning_rate"] == 3e-4 and "learning rate 0.0003" in card  # the mlm default
    held_out = (mlm_student / "heldout_texts.txt").read_text().splitlines()
    assert len(held_out) == r["n_texts"]


def test_held_out_texts_are_the_same_for_teacher_and_student(mlm_teacher, mlm_student):
    assert (mlm_teacher / "heldout_texts.txt").read_text() == (mlm_student / "heldout_texts.txt").read_text()


def test_the_evaluator_reproduces_the_runs_figures(mlm_teacher, mlm_student, tmp_path, capsys):
    config = tmp_path / "pairs.yaml"
    config.write_text(yaml.safe_dump({"device": "cpu", "tasks": {"fill_mask": {
        "teacher": {"model": str(mlm_teacher)}, "student": {"model": str(mlm_student)}}}}))
    assert evaluate_main(["--config", str(config), "--task", "fill_mask", "--file",
                          str(mlm_student / "heldout_texts.txt"), "--out", str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    run = json.loads((mlm_student / "metrics.json").read_text())["masked_lm"]
    for variant in ("teacher", "student"):
        for key in ("top1_accuracy", "top5_accuracy", "pseudo_perplexity"):
            assert report[variant][key] == pytest.approx(run[variant][key], rel=1e-5)
    assert report["agreement_top1"] == pytest.approx(run["agreement_top1"])
    assert "top-1 masked-token accuracy" in (tmp_path / "report" / "report.md").read_text()


def test_the_evaluator_compares_the_student_with_a_baseline_token_by_token(mlm_teacher, mlm_student, tmp_path):
    config = tmp_path / "pairs.yaml"
    config.write_text(yaml.safe_dump({"device": "cpu", "tasks": {"fill_mask": {
        "teacher": {"model": str(mlm_teacher)}, "student": {"model": str(mlm_student)}}}}))
    common = ["--config", str(config), "--task", "fill_mask", "--file", str(mlm_student / "heldout_texts.txt")]
    run = json.loads((mlm_student / "metrics.json").read_text())
    baseline = mlm_student / "baselines" / "layer-drop"  # differs from the student somewhere
    assert evaluate_main([*common, "--against", str(baseline), "--out", str(tmp_path / "vs-dropped")]) == 0
    report = json.loads((tmp_path / "vs-dropped" / "report.json").read_text())
    against = report["against"]
    assert against["student"]["top1_accuracy"] == pytest.approx(
        run["baselines"][0]["masked_lm"]["student"]["top1_accuracy"], rel=1e-5)
    paired = against["paired_top1"]  # the same figures as the run's own paired comparison
    assert paired["student_right_against_wrong"] == run["baselines"][0]["paired_top1"]["student_right_baseline_wrong"]
    assert paired["against_right_student_wrong"] == run["baselines"][0]["paired_top1"]["baseline_right_student_wrong"]
    b, c = paired["student_right_against_wrong"], paired["against_right_student_wrong"]
    assert b + c > 0 and paired["mcnemar_z"] == pytest.approx((b - c) / (b + c) ** 0.5, abs=1e-3)
    assert "McNemar z" in (tmp_path / "vs-dropped" / "report.md").read_text()
    # a student against itself differs on no token
    assert evaluate_main([*common, "--against", str(mlm_student), "--out", str(tmp_path / "vs-self")]) == 0
    itself = json.loads((tmp_path / "vs-self" / "report.json").read_text())["against"]["paired_top1"]
    assert itself["student_right_against_wrong"] == itself["against_right_student_wrong"] == 0
    assert itself["mcnemar_z"] is None


def test_the_evaluator_refuses_against_for_a_labelled_task(tmp_path, capsys):
    assert evaluate_main(["--task", "sentiment", "--file", str(tmp_path / "x.csv"), "--against", "m",
                          "--out", str(tmp_path / "out")]) == 2
    assert "--against compares two fill-mask students" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_evaluator_refuses_an_against_model_that_does_not_load(mlm_teacher, mlm_student, tmp_path, capsys):
    config = tmp_path / "pairs.yaml"
    config.write_text(yaml.safe_dump({"device": "cpu", "tasks": {"fill_mask": {
        "teacher": {"model": str(mlm_teacher)}, "student": {"model": str(mlm_student)}}}}))
    assert evaluate_main(["--config", str(config), "--task", "fill_mask", "--file",
                          str(mlm_student / "heldout_texts.txt"), "--against", str(tmp_path / "missing"),
                          "--out", str(tmp_path / "out")]) == 2
    assert "missing" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_produced_pair_loads_in_the_fill_mask_tab(mlm_teacher, mlm_student, tmp_path):
    config = tmp_path / "pairs.yaml"
    config.write_text(yaml.safe_dump({"device": "cpu", "tasks": {"fill_mask": {
        "teacher": {"model": str(mlm_teacher)}, "student": {"model": str(mlm_student)}}}}))
    server = InProcessApp(config)
    try:
        result = call_when_ready(server.client(), "the film was [MASK] .", "/fill_mask")
        summary = result[0]
        for variant in ("teacher", "student"):
            assert summary[variant]["completed"].startswith("the film was ")
        assert 0.0 <= summary["top5_overlap"] <= 1.0
    finally:
        server.stop()


# ---- bad input: one clear line, exit 2, nothing written ----------------------------------------------
def _refused(argv, capsys, out: Path) -> str:
    assert main([*argv, "--output-dir", str(out)]) == 2
    assert not out.exists()
    return capsys.readouterr().err


def test_a_classifier_teacher_is_refused_for_mlm(texts_file, tmp_path, capsys):
    torch.manual_seed(0)
    from transformers import BertForSequenceClassification

    clf = save(BertForSequenceClassification(bert_config(num_labels=2)), BertTokenizerFast, tmp_path / "clf")
    err = _refused(["distill", "--objective", "mlm", "--teacher", str(clf), "--train-file", str(texts_file)],
                   capsys, tmp_path / "out")
    assert "is a sequence classifier" in err and "--objective classification" in err


def test_a_masked_lm_teacher_is_refused_for_classification(mlm_teacher, tmp_path, capsys):
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\ngood film\tpositive\nbad film\tnegative\n")
    err = _refused(["distill", "--teacher", str(mlm_teacher), "--train-file", str(train), "--validation-file",
                    str(train)], capsys, tmp_path / "out")
    assert "is a masked LM" in err and "--objective mlm" in err


def test_a_bare_encoder_is_refused_as_mlm_teacher(bare_encoder_dir, texts_file, tmp_path, capsys):
    err = _refused(["distill", "--objective", "mlm", "--teacher", str(bare_encoder_dir), "--train-file", str(texts_file)],
                   capsys, tmp_path / "out")
    assert "has no masked-LM head" in err and "finetune --objective mlm" in err


@pytest.mark.parametrize("step", ["finetune", "distill"])
def test_a_text_file_without_text_is_refused(step, mlm_teacher, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n   \n\n")
    flag = "--model" if step == "finetune" else "--teacher"
    err = _refused([step, "--objective", "mlm", flag, str(mlm_teacher), "--train-file", str(empty)], capsys,
                   tmp_path / "out")
    assert "empty.txt: the file has no text" in err


@pytest.mark.parametrize("step", ["finetune", "distill"])
def test_a_tokenizer_without_a_mask_token_is_refused(step, texts_file, tmp_path, capsys):
    model_dir = save(BertForMaskedLM(bert_config()), BertTokenizerFast, tmp_path / "nomask")
    config = json.loads((model_dir / "tokenizer_config.json").read_text())
    config["mask_token"] = None
    (model_dir / "tokenizer_config.json").write_text(json.dumps(config))
    special = model_dir / "special_tokens_map.json"
    special.write_text(json.dumps({k: v for k, v in json.loads(special.read_text()).items() if k != "mask_token"}))
    assert AutoTokenizer.from_pretrained(model_dir).mask_token is None
    flag = "--model" if step == "finetune" else "--teacher"
    err = _refused([step, "--objective", "mlm", flag, str(model_dir), "--train-file", str(texts_file)], capsys,
                   tmp_path / "out")
    assert "has no mask token" in err


@pytest.mark.parametrize("extra, message", [
    (["--alpha-hard", "1"], "--alpha-hard is the gold-label loss"),
    (["--alpha-attn", "1"], "not available with --objective mlm"),
    (["--augment", "2"], "learns from the --train-file text itself"),
    (["--alpha-ce", "0", "--alpha-mlm", "0", "--alpha-cos", "0"], "every loss term is switched off"),
    (["--label-column", "label"], "--label-column and --label-names do not apply"),
    (["--validation-split-percentage", "0"], "--validation-split-percentage must lie between 0 and 50"),
])
def test_flags_that_do_not_fit_the_mlm_objective_are_refused(extra, message, mlm_teacher, texts_file, tmp_path,
                                                            capsys):
    err = _refused(["distill", "--objective", "mlm", "--teacher", str(mlm_teacher), "--train-file", str(texts_file),
                    *extra], capsys, tmp_path / "out")
    assert message in err


def test_each_objective_has_its_own_default_learning_rate(tmp_path):
    def rate(objective, **given):
        return DistillTrainArguments(output_dir=str(tmp_path), **given).check(objective).learning_rate
    # a general-distillation student relearns half its teacher's layers: measured best at 3e-4 (README)
    assert rate("mlm") == 3e-4 and rate("classification") == 1e-4 and rate("mlm", epochs=2) == 3e-4
    assert rate("mlm", learning_rate=5e-5) == 5e-5 and rate("classification", learning_rate=5e-5) == 5e-5


def test_alpha_mlm_needs_the_mlm_objective(tmp_path, capsys):
    err = _refused(["distill", "--teacher", "t", "--train-file", "x.tsv", "--validation-file", "y.tsv",
                    "--alpha-mlm", "1"], capsys, tmp_path / "out")
    assert "--alpha-mlm is the masked-LM loss: it needs --objective mlm" in err


def test_the_general_student_fine_tunes_as_a_classifier(mlm_student, tmp_path):
    """The downstream check's step: `finetune` takes the fill-mask student (and its baselines) as the encoder."""
    from .builders import write_sentiment_tsv

    train, val = write_sentiment_tsv(tmp_path / "train.tsv", 64, 0), write_sentiment_tsv(tmp_path / "val.tsv", 16, 1)
    for name, model in (("distilled", mlm_student), ("layer-drop", mlm_student / "baselines" / "layer-drop")):
        out = tmp_path / name
        assert main(["finetune", "--model", str(model), "--train-file", str(train), "--validation-file", str(val),
                     "--epochs", "1", "--min-steps", "0", "--batch-size", "16", "--output-dir", str(out)]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert 0 <= metrics["accuracy"] <= 1 and metrics["n_train"] == 64
        assert type(AutoModelForMaskedLM.from_pretrained(model)).__name__ == "DistilBertForMaskedLM"


def test_an_mlm_run_resumes_exactly(bare_encoder_dir, texts_file, tmp_path):
    """Dynamic masks come from the global RNG, which checkpoints keep: a resumed run draws the same masks."""
    from safetensors.torch import load_file

    common = ["finetune", "--objective", "mlm", "--model", str(bare_encoder_dir), "--train-file", str(texts_file),
              "--max-steps", "8", "--min-steps", "0", "--epochs", "1", "--batch-size", "16", "--learning-rate", "3e-3"]
    assert main([*common, "--output-dir", str(tmp_path / "whole")]) == 0
    assert main([*common, "--output-dir", str(tmp_path / "split"), "--checkpoint-steps", "4",
                 "--keep-checkpoints", "0"]) == 0
    assert main([*common, "--output-dir", str(tmp_path / "split"), "--checkpoint-steps", "4",
                 "--resume-from-checkpoint", str(tmp_path / "split" / "checkpoints" / "checkpoint-4")]) == 0
    whole, resumed = (load_file(tmp_path / d / "model.safetensors") for d in ("whole", "split"))
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_the_distillation_tab_charts_a_general_distillation_run(mlm_student, mlm_teacher):
    from demo.measuring.charts import (
        recipe_comparison_chart,
        retention_chart,
        run_size_speed_chart,
        training_curves,
    )
    from demo.serving.evidence import Evidence, EvidenceError

    evidence = Evidence.from_dir(mlm_student)
    r = evidence.metrics["masked_lm"]
    figures = evidence.figures
    assert figures["score_name"] == "held-out top-1 masked-token accuracy"
    recipes = recipe_comparison_chart(figures).data[0]
    assert list(recipes.x) == pytest.approx([r["teacher"]["top1_accuracy"], r["student"]["top1_accuracy"]] +
                                            [b["masked_lm"]["student"]["top1_accuracy"]
                                             for b in evidence.metrics["baselines"]])
    assert retention_chart(figures).data[0].y[0] == pytest.approx(r["retention_top1"])
    assert "speedup" in run_size_speed_chart(figures).layout.annotations[1].text
    curves = training_curves(evidence.history, figures["score_name"])
    assert curves.layout.annotations[1].text == "Held-out top-1 masked-token accuracy"
    assert curves.layout.xaxis2.matches == "x"  # a one-epoch run's single score shares the loss panel's steps
    assert "raw text" in evidence.recipe_markdown()
    with pytest.raises(EvidenceError, match="shows no student"):
        Evidence.from_dir(mlm_teacher)  # an adapted teacher: no student to show


@pytest.mark.slow
def test_general_distillation_runs_on_two_processes(mlm_teacher, texts_file, tmp_path):
    """`accelerate launch --num_processes 2` (CPU processes over gloo): one output, written once, its held-out
    figures over every held-out text (gathered, not duplicated). Each process masks its own half-batch, so
    the weights are not the one-process run's."""
    import os
    import subprocess
    import sys

    from .builders import ROOT, free_port

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    out = tmp_path / "two"
    run = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                          "--main_process_port", str(free_port()), "-m", "demo.distill", "distill", "--objective",
                          "mlm", "--teacher", str(mlm_teacher), "--train-file", str(texts_file), "--student-layers",
                          "2", "--epochs", "1", "--min-steps", "0", "--batch-size", "16", "--eval-batch-size", "16",
                          "--device", "cpu", "--output-dir", str(out)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    teacher = json.loads((mlm_teacher / "metrics.json").read_text())["masked_lm"]
    assert metrics["num_processes"] == 2 and run.stdout.count("student saved to") == 1
    assert metrics["masked_lm"]["n_masked"] == teacher["n_masked"]
    assert metrics["masked_lm"]["teacher"]["top1_accuracy"] == pytest.approx(teacher["teacher"]["top1_accuracy"])
    # the loop's own gathered score of the best pass is the final held-out top-1 of the saved student
    best = max(row["validation_accuracy"] for row in metrics["history"])
    assert best == pytest.approx(metrics["masked_lm"]["student"]["top1_accuracy"],
                                 abs=1.5 / metrics["masked_lm"]["n_masked"])  # padding may flip one near-tie


def test_publishing_a_general_student_leaves_training_state_baselines_and_data_behind(mlm_student, capsys):
    assert main(["push", "--output-dir", str(mlm_student), "--repo-id", "me/tiny-mlm", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "me/tiny-mlm/model.safetensors" in printed and "me/tiny-mlm/README.md" in printed
    assert "me/tiny-mlm/training/demo/distill/general.py" in printed
    assert "baselines/" not in printed and "heldout_texts" not in printed and "checkpoints/" not in printed


def test_the_held_out_sample_does_not_depend_on_seed_or_file_order(tmp_path):
    from demo.distill.data import load_text_corpus

    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("".join(f"first file text {i}\n" for i in range(3000)))
    b.write_text("".join(f"second file text {i}\n" for i in range(3000)))
    one = load_text_corpus([str(a), str(b)], None, None, 10.0, 1000, 50, seed=1)
    two = load_text_corpus([str(b), str(a)], None, None, 10.0, 2000, 50, seed=2)
    assert sorted(one.validation) == sorted(two.validation) and len(one.validation) == 50
    assert not set(one.validation) & set(one.train) and not set(two.validation) & set(two.train)
    assert len(one.train) == 1000 and one.train != two.train[:1000]
