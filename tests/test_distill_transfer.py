"""Transfer text, augmentation, intermediate-layer losses, soft-target cache and extra test sets,
on tiny random models through the CLI and the package functions."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from transformers import (
    BertForMaskedLM,
    BertForSequenceClassification,
    BertTokenizerFast,
)

from demo.distill.augment import (
    AugmentError,
    AugmentSettings,
    augment_texts,
    load_proposer,
)
from demo.distill.cli import main
from demo.distill.targets import soft_targets
from demo.models.config import ModelSpec
from demo.models.loading import load_model

from .builders import FILLER, NEGATIVE, POSITIVE, bert_config, save, write_sentiment_tsv


def write_texts(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    lines = [" ".join([*rng.sample(FILLER, 5), rng.choice(POSITIVE + NEGATIVE)]) for _ in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer-data")
    ood = root / "ood.tsv"  # quoted fields spanning lines, as the review sets come
    ood.write_text('sentence\tlabel\n"good film\nvery good"\t1\n"bad\tplot, ""dull"""\t0\n"the film was great"\t1\n'
                   '"sad and terrible"\t0\n', encoding="utf-8")
    return {"train": write_sentiment_tsv(root / "train.tsv", 120, 0),
            "validation": write_sentiment_tsv(root / "validation.tsv", 40, 1),
            "transfer": write_texts(root / "transfer.txt", 150, 2),
            "transfer_tsv": write_sentiment_tsv(root / "transfer.tsv", 50, 3),
            "ood": ood}


@pytest.fixture(scope="module")
def teacher_dir(files, tmp_path_factory):
    torch.manual_seed(0)
    encoder = save(BertForSequenceClassification(bert_config(num_hidden_layers=4)).bert, BertTokenizerFast,
                   tmp_path_factory.mktemp("enc"))
    out = tmp_path_factory.mktemp("teacher")
    assert main(["finetune", "--model", str(encoder), "--train-file", str(files["train"]), "--validation-file",
                 str(files["validation"]), "--epochs", "3", "--min-steps", "0", "--batch-size", "16",
                 "--learning-rate", "3e-3", "--output-dir", str(out), "--overwrite-output-dir"]) == 0
    return out


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory):
    torch.manual_seed(3)
    return save(BertForMaskedLM(bert_config(num_hidden_layers=2)), BertTokenizerFast, tmp_path_factory.mktemp("mlm"))


def distill(teacher_dir, files, out: Path, *extra: str) -> int:
    return main(["distill", "--augment", "0",
                 "--teacher", str(teacher_dir), "--student-layers", "2", "--train-file", str(files["train"]),
                 "--validation-file", str(files["validation"]), "--epochs", "2", "--min-steps", "0", "--batch-size",
                 "16", "--learning-rate", "3e-3", "--output-dir", str(out), *extra])


# ---- augmentation --------------------------------------------------------------------------------
def test_augmentation_is_deterministic_under_a_seed(mlm_dir):
    texts = ["the film was very good and the plot bright", "i hate this dull movie", "a"]
    mlm = load_proposer(str(mlm_dir), torch.device("cpu"))
    settings = AugmentSettings(variants=4, seed=7, mlm=str(mlm_dir))
    first = augment_texts(texts, settings, "[MASK]", mlm)
    assert first == augment_texts(texts, settings, "[MASK]", mlm)
    assert first != augment_texts(texts, AugmentSettings(variants=4, seed=8, mlm=str(mlm_dir)), "[MASK]", mlm)
    assert all(0 <= i < len(texts) and t != texts[i] for i, t in first)
    assert any("[MASK]" in t for _, t in first)  # masking happened
    originals = {w for t in texts for w in t.split()} | {"[MASK]"}
    assert any(set(t.split()) - originals for _, t in first)  # the masked LM proposed new words
    heavy = augment_texts(texts[:1], AugmentSettings(variants=20, ngram_prob=1.0, swap_prob=0), "[MASK]")
    assert all(1 <= len(t.split()) <= 5 for _, t in heavy)  # n-gram sampling keeps 1..5 words


def test_augmentation_without_a_masked_lm_is_refused(teacher_dir):
    with pytest.raises(AugmentError, match="--augment-mlm MODEL"):
        load_proposer(str(teacher_dir), torch.device("cpu"))  # a classifier: its MLM head would be random
    with pytest.raises(AugmentError, match="--augment-mlm none"):
        augment_texts(["good film"], AugmentSettings(variants=2), "[MASK]", None)


# ---- soft-target cache ---------------------------------------------------------------------------
def test_soft_target_cache_hit_miss_and_corruption(teacher_dir, tmp_path):
    teacher = load_model(ModelSpec(str(teacher_dir)), "classify", torch.device("cpu"))
    texts = ["good film", "bad plot", "the movie was great"]
    logs = []
    first, info = soft_targets(teacher, texts, name="t", max_length=32, batch_size=2, cache_dir=tmp_path,
                               log=logs.append)
    assert info.cache == "miss" and len(list(tmp_path.glob("*.safetensors"))) == 1
    again, info = soft_targets(teacher, texts, name="t", max_length=32, batch_size=2, cache_dir=tmp_path,
                               log=logs.append)
    assert info.cache == "hit" and torch.equal(first, again) and "reusing" in logs[-1]
    _, info = soft_targets(teacher, texts[:2], name="t", max_length=32, batch_size=2, cache_dir=tmp_path,
                           log=logs.append)
    assert info.cache == "miss"  # other texts: another entry
    cache_file = next(p for p in tmp_path.glob("*.safetensors"))
    cache_file.write_bytes(b"not a safetensors file")
    recomputed = [soft_targets(teacher, t, name="t", max_length=32, batch_size=2, cache_dir=tmp_path,
                               log=logs.append)[1].cache for t in (texts, texts[:2])]
    assert any(c.startswith("rebuilt: the cache file was corrupt") for c in recomputed)


# ---- the CLI end to end --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def transfer_run(teacher_dir, files, mlm_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("kd-transfer")
    cache = tmp_path_factory.mktemp("cache")
    argv = ["--transfer-file", str(files["transfer"]), "--transfer-file", str(files["transfer_tsv"]),
            "--max-transfer-samples", "180", "--augment", "2", "--augment-mlm", str(mlm_dir),
            "--eval-file", f"ood={files['ood']}",
            "--targets-cache-dir", str(cache), "--transfer-cache", str(cache / "named.safetensors"), "--baselines",
            "--overwrite-output-dir"]
    assert distill(teacher_dir, files, out, *argv) == 0
    return out, argv, cache


def test_transfer_run_records_what_the_student_saw(transfer_run):
    out, _, _ = transfer_run
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"]["labelled"] == 120 and m["data"]["transfer"] == 180 and m["data"]["augmented"] > 150
    assert [f["texts"] for f in m["transfer_files"]] == [150, 50]
    assert {"train_kl", "train_ce"} <= set(m["history"][-1])
    names = [b["name"] for b in m["baselines"]]
    assert names[1] == "hard labels alone (no teacher)" and names[2].startswith("same KD recipe, labelled rows only")
    assert m["baselines"][1]["data"] == {"labelled": 120, "augmented": 0, "transfer": 0, "transfer_augmented": 0}
    assert set(m["baselines"][2]["eval_sets"]) == {"ood"}
    ood = m["eval_sets"]["ood"]
    assert ood["n_examples"] == 4 and ood["retention"] == pytest.approx(ood["student_accuracy"] /
                                                                         ood["teacher_accuracy"])
    sample = (out / "augmented_samples.tsv").read_text().splitlines()
    assert sample[0] == "set\tsource_text\taugmented_text" and len(sample) > 10


def test_intermediate_layer_losses_train_and_leave_no_extra_weights(teacher_dir, files, tmp_path):
    out = tmp_path / "kd-layers"
    assert distill(teacher_dir, files, out, "--transfer-file", str(files["transfer"]), "--max-transfer-samples",
                   "40", "--epochs", "1", "--alpha-hidden", "0.5",
                   "--alpha-attn", "0.5", "--alpha-cos", "0.1", "--targets-cache-dir", "none") == 0
    m = json.loads((out / "metrics.json").read_text())
    assert {"train_kl", "train_ce", "train_hidden", "train_attn", "train_cos"} <= set(m["history"][-1])
    assert not any("projection" in k for k in load_file(str(out / "model.safetensors")))
    assert "MSE between every student layer" in (out / "README.md").read_text()


def test_card_shows_test_sets_and_the_baseline_table(transfer_run):
    out, _, _ = transfer_run
    card = ModelCard.load(out / "README.md")
    assert "## Other test sets" in card.text and "| ood | 4 |" in card.text
    assert "| **this student (distilled)** | 120 |" in card.text and "| ood |" in card.text
    table = card.text[card.text.index("| student | labelled |"):]
    rows = table[:table.index("\n\n")].splitlines()  # a markdown table: no blank line inside
    assert len(rows) == 2 + 1 + 3 and rows[1].startswith("| --- |") and rows[-1].startswith("| same KD recipe")
    assert card.data.eval_results is None  # local test sets are tables in the card, never model-index entries


def test_second_run_reuses_the_cached_soft_targets(transfer_run, teacher_dir, files, tmp_path, capsys):
    _, argv, _ = transfer_run
    capsys.readouterr()
    # Other loss weights, same teacher and text: the soft targets come from the cache.
    rest = [a for a in argv if a not in ("--baselines",)] + ["--alpha-hard", "0.2", "--temperature", "3"]
    assert distill(teacher_dir, files, tmp_path / "again", *rest) == 0
    printed = capsys.readouterr().out
    assert "labelled: reusing the teacher's soft targets" in printed
    assert "transfer: reusing the teacher's soft targets" in printed
    m = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert [t["cache"] for t in m["soft_targets"]] == ["hit", "hit"]


def test_cache_made_by_another_teacher_is_refused(transfer_run, teacher_dir, files, tmp_path, capsys):
    _, _, cache = transfer_run
    other = tmp_path / "other-teacher"
    model = BertForSequenceClassification.from_pretrained(teacher_dir)
    with torch.no_grad():
        model.classifier.bias.add_(1.0)
    model.save_pretrained(other)
    BertTokenizerFast.from_pretrained(teacher_dir).save_pretrained(other)
    out = tmp_path / "out"
    rc = distill(other, files, out, "--transfer-file", str(files["transfer"]), "--max-transfer-samples", "180",
                 "--transfer-cache", str(cache / "named.safetensors"))
    err = capsys.readouterr().err
    assert rc == 2 and "holds the soft targets of another teacher" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("make, extra, message", [
    (lambda d: (d / "t.tsv").write_text("label\tscore\npositive\t1\n"), ["--transfer-file", "{f}"],
     "cannot tell which column holds the text; name it with --transfer-text-column"),
    (lambda d: (d / "t.txt").write_text("\n  \n"), ["--transfer-file", "{f}"], "the file has no text"),
    (lambda d: (d / "t.txt").write_text(""), ["--transfer-file", "{f}"], "the file is empty"),
    (lambda d: None, ["--augment", "2", "--augment-mlm", "{teacher}"], "has no trained masked-LM head"),
    (lambda d: (d / "e.tsv").write_text("sentence\tlabel\ngood\tneutral\n"), ["--eval-file", "x={f}"],
     "labels neutral are unknown"),
    (lambda d: (d / "e.tsv").write_text("sentence\tlabel\ngood\tpositive\tx\n"), ["--eval-file", "x={f}"],
     "line 2: 3 fields where the header has 2"),
])
def test_bad_input_is_one_clear_line_and_writes_nothing(teacher_dir, files, tmp_path, capsys, make, extra, message):
    made = make(tmp_path)
    f = next((p for p in tmp_path.iterdir() if p.is_file()), None) if made is not None else None
    out = tmp_path / "out"
    rc = distill(teacher_dir, files, out, *[a.format(f=f, teacher=teacher_dir) for a in extra])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["--max-transfer-samples", "5"], "need --transfer-file"),
    (["--augment", "0", "--augment-transfer"], "--augment-transfer needs --augment N"),
    (["--augment", "many"], "--augment 'many': give 'auto'"),
    (["--eval-file", "nofile"], "write NAME=FILE"),
    (["--transfer-file", "x.txt", "--alpha-ce", "0"], "needs a teacher-matching loss"),
])
def test_bad_flags_say_how_to_fix(teacher_dir, files, tmp_path, capsys, argv, message):
    assert distill(teacher_dir, files, tmp_path / "out", *argv) == 2
    assert message in capsys.readouterr().err
