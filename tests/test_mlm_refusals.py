"""General distillation's bad input: one clear line, exit 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoTokenizer,
    BertForMaskedLM,
    BertTokenizerFast,
)

from demo.distill.args import DistillTrainArguments
from demo.distill.cli import main

from .builders import bert_config, save


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
    err = _refused(["distill", "--objective", "mlm", "--teacher", str(bare_encoder_dir), "--train-file",
                    str(texts_file)], capsys, tmp_path / "out")
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
    special = model_dir / "special_tokens_map.json"  # transformers 4 wrote one; 5 keeps it all in tokenizer_config
    if special.exists():
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
    (["--freeze-embeddings"], "--freeze-embeddings is for classification"),
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


