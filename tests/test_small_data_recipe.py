"""The small-data default (`--augment auto`): the rule, fitting it to a budget, and what a run says and
records, through the CLI on tiny models; every refusal one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from demo.core.errors import UsageError
from demo.distill.cli import main
from demo.distill.recipe import AUTO_MAX_VARIANTS, Passes, auto_variants, can_vary, plan_augmentation

from .builders import write_sentiment_tsv, write_teacher


def plan_of(asked, texts, n_transfer, teacher_targets, epochs, batch_size, budget_steps=None):
    return plan_augmentation(asked, len(texts), can_vary(texts), n_transfer, teacher_targets,
                             Passes(epochs, batch_size, max_steps=budget_steps))


SENTENCES = ["the film was very good indeed"] * 10


# ---- the rule (pure) -------------------------------------------------------------------------------
def test_small_sets_get_variants_until_about_twenty_thousand_new_texts():
    assert auto_variants(1_000, 0) == 20 and auto_variants(4_000, 0) == 5 and auto_variants(9_000, 0) == 3
    assert auto_variants(500, 0) == AUTO_MAX_VARIANTS  # capped: 20 variants of a text at most
    assert auto_variants(4_000, 12_000) == 2  # transfer text given counts
    assert auto_variants(10_000, 0) == 0 and auto_variants(2_000, 20_000) == 0  # enough text already


def test_the_plan_says_what_it_generates_and_how_to_turn_it_off():
    plan = plan_of("auto", SENTENCES * 100, 0, True, epochs=3, batch_size=32)
    assert plan.variants == 20 and "--augment 0 turns it off" in plan.reason
    assert plan_of("0", SENTENCES, 0, True, 3, 32).variants == 0
    assert plan_of("5", SENTENCES * 2000, 0, True, 3, 32).variants == 5  # a number is kept as asked
    no_teacher = plan_of("auto", SENTENCES, 0, False, 3, 32)
    assert no_teacher.variants == 0 and "--alpha-ce 0" in no_teacher.reason


def test_a_budget_cuts_the_variants_then_the_passes():
    texts = SENTENCES * 100  # 1,000 rows: 32 steps a pass at batch 32
    fitted = plan_of("auto", texts, 0, True, epochs=3, batch_size=32, budget_steps=300)
    assert fitted.variants == 2 and "cut from 20 to fit 300 steps" in fitted.reason  # 3 x 94 steps of 3,000 rows
    none = plan_of("auto", texts, 0, True, epochs=3, batch_size=32, budget_steps=100)
    assert none.variants == 0 and "no generated text" in none.reason
    short = plan_of("auto", texts, 0, True, epochs=3, batch_size=32, budget_steps=20)
    assert short.variants == 0 and short.labelled_only_steps == 20 and "less than one pass" in short.reason


def test_texts_too_short_to_vary_are_not_augmented_and_a_number_asked_for_them_is_refused():
    plan = plan_of("auto", ["good", "very bad"] * 50, 0, True, 3, 32)
    assert plan.variants == 0 and "too short to vary" in plan.reason
    with pytest.raises(UsageError, match="--augment 4: every text has fewer than 3 words"):
        plan_of("4", ["good", "very bad"] * 50, 0, True, 3, 32)


def test_a_number_of_variants_the_budget_cannot_reach_is_refused():
    """The page tells the run its plan (--augment N --max-steps S): a run that could not honour it says so
    instead of training something else."""
    with pytest.raises(UsageError, match="--augment 5 with --max-steps 20: those steps are less than one pass"):
        plan_of("5", SENTENCES * 100, 0, True, 3, 32, budget_steps=20)
    assert plan_of("5", SENTENCES * 100, 0, True, 3, 32, budget_steps=40).variants == 5  # cut passes, as asked


# ---- through the CLI ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    return {"teacher": write_teacher(root / "teacher"), "train": write_sentiment_tsv(root / "train.tsv", 48, 0),
            "validation": write_sentiment_tsv(root / "validation.tsv", 24, 1), "root": root}


def run(setup, out: Path, *extra: str, train: Path | None = None) -> int:
    return main(["distill", "--teacher", str(setup["teacher"]), "--student-layers", "1", "--train-file",
                 str(train or setup["train"]), "--validation-file", str(setup["validation"]), "--epochs", "1",
                 "--batch-size", "32", "--output-dir", str(out), *extra])


def test_the_default_run_augments_a_small_set_and_says_so_first(setup, tmp_path, capsys):
    assert run(setup, tmp_path / "auto") == 0
    first = capsys.readouterr().out.strip().splitlines()[0]
    assert first.startswith("augmentation: 20 teacher-labelled variants of each labelled text"), first
    assert "swapped by embeddings:" in first  # a classifier teacher has no masked-LM head: its embeddings swap
    metrics = json.loads((tmp_path / "auto" / "metrics.json").read_text())
    assert metrics["data"]["labelled"] == 48 and metrics["data"]["augmented"] > 48 * 10
    assert metrics["augmentation"]["variants"] == 20 and "--augment 0" in metrics["augmentation"]["reason"]


def test_labels_alone_generates_nothing_and_says_why(setup, tmp_path, capsys):
    assert run(setup, tmp_path / "labels", "--alpha-ce", "0", "--alpha-hard", "1") == 0
    assert "no augmentation: generated text has no labels" in capsys.readouterr().out
    assert json.loads((tmp_path / "labels" / "metrics.json").read_text())["data"]["augmented"] == 0


def test_a_budget_below_one_pass_runs_the_labelled_rows_alone(setup, tmp_path, capsys):
    assert run(setup, tmp_path / "tiny", "--batch-size", "16", "--max-steps", "2", "--logging-steps", "1") == 0
    assert "less than one pass over the 48 labelled rows (3 steps)" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "tiny" / "metrics.json").read_text())
    assert metrics["data"]["augmented"] == 0 and metrics["total_steps"] == 2


def test_one_word_texts_run_without_augmentation(setup, tmp_path, capsys):
    short = setup["root"] / "short.tsv"
    short.write_text("sentence\tlabel\n" + "".join(f"{w}\t{lab}\n" for w, lab in
                                                   [("good", "positive"), ("bad", "negative")] * 20))
    assert run(setup, tmp_path / "short", train=short) == 0
    assert "too short to vary" in capsys.readouterr().out
    assert json.loads((tmp_path / "short" / "metrics.json").read_text())["data"]["augmented"] == 0


@pytest.mark.parametrize("extra, message", [
    (["--augment", "-1"], "--augment '-1': give 'auto'"),
    (["--augment-mlm", "{teacher}", "--augment", "3"], "has no trained masked-LM head"),  # a classifier, not fill-mask
    (["--augment-mlm", "{root}/nothing-here", "--augment", "3"], "cannot be loaded as a masked LM"),
])
def test_bad_augmentation_input_is_one_line_and_writes_nothing(setup, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    rc = run(setup, out, *[a.format(teacher=setup["teacher"], root=setup["root"]) for a in extra])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_frozen_embeddings_stay_the_teachers_and_the_baseline_trains_for_its_own_steps(setup, tmp_path, capsys):
    """--freeze-embeddings keeps the student's word embeddings the teacher's (the labels-alone baseline trains its
    own, as the CLI would alone); --baseline-steps gives the baseline its own budget, which the sentence names."""
    import torch
    from safetensors.torch import load_file

    out = tmp_path / "frozen"
    assert run(setup, out, "--augment", "2", "--freeze-embeddings", "--baselines", "labels",
               "--baseline-steps", "7") == 0
    teacher = load_file(str(setup["teacher"] / "model.safetensors"))
    student = load_file(str(out / "model.safetensors"))
    word = next(k for k in student if k.endswith("word_embeddings.weight"))
    assert torch.equal(student[word], teacher["bert.embeddings.word_embeddings.weight"])
    assert not torch.equal(student[next(k for k in student if "q_lin.weight" in k)],
                           teacher["bert.encoder.layer.0.attention.self.query.weight"])  # the layers did train
    metrics = json.loads((out / "metrics.json").read_text())
    assert [b["steps"] for b in metrics["baselines"]] == [0, 7] and metrics["total_steps"] != 7
    assert "labels alone (for its own 7 steps)" in metrics["bought"]
    assert "hard labels only epoch 1/4" in capsys.readouterr().out  # 7 steps, 2 a pass over 48 rows (32 a batch)


def test_a_negative_baseline_budget_is_refused_in_one_line(setup, tmp_path, capsys):
    assert run(setup, tmp_path / "neg", "--baselines", "labels", "--baseline-steps", "-1") == 2
    err = capsys.readouterr().err
    assert "--baseline-steps must be 0 (the run's own budget) or more" in err and not (tmp_path / "neg").exists()
