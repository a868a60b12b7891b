"""What leaves the app in a card and a publish: no row of anyone's data, no path of this machine, the
teacher's class names, license and language only where the teacher's card gives them, tags true to the
student (tiny models, the CLI end to end; the card read back as the Hub reads it)."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import ModelCard

from demo.distill.card import card_metadata
from demo.distill.hub import planned_upload

from .conftest import distill

MARKER = "PLANTEDMARKER"


def numbered(source: Path, target: Path, first_text: str | None = None) -> Path:
    """source's rows labelled 0/1 instead of by name (as many files come), the first text replaced."""
    lines = source.read_text().splitlines()
    rows = [line.rsplit("\t", 1) for line in lines[1:]]
    if first_text:
        rows[0][0] = first_text
    target.write_text("sentence\tlabel\n" + "".join(f"{t}\t{int(lab == 'positive')}\n" for t, lab in rows))
    return target


def test_a_card_carries_no_row_of_the_data_no_server_path_and_the_teachers_class_names(encoder_dir, data,
                                                                                        tmp_path):
    teacher = distill(tmp_path / "teacher", "finetune", "--model", str(encoder_dir), "--train-file",
                      str(data["train"]), "--validation-file", str(data["validation"]), "--epochs", "1",
                      "--min-steps", "0", "--batch-size", "16")
    train = numbered(data["train"], tmp_path / "train01.tsv")
    validation = numbered(data["validation"], tmp_path / "validation01.tsv", f"{MARKER} a good film")
    out = distill(tmp_path / "student", "distill", "--teacher", str(teacher), "--student-layers", "1",
                  "--student-arch", "bert", "--train-file", str(train), "--validation-file", str(validation),
                  "--epochs", "1", "--min-steps", "0", "--augment", "0", "--batch-size", "16")
    card = (out / "README.md").read_text(encoding="utf-8")
    assert MARKER not in card and "/tmp/" not in card and str(tmp_path) not in card
    assert "text classification (negative, positive)" in card and "Labels: negative, positive." in card
    assert "](#)" not in card and "(a local model)" in card  # a local teacher is named, not linked
    meta = ModelCard.load(out / "README.md").data  # as the Hub reads it
    assert "bert" in meta.tags and "distilbert" not in meta.tags
    assert meta.license is None and meta.language is None and meta.base_model is None
    assert "Before publishing**: the teacher's card gives no license or language" in card
    for local, remote in planned_upload(out, "me/tiny"):  # what a publish sends, and the download zips
        if remote.endswith((".md", ".json", ".jsonl")) and "/training/" not in remote:
            text = Path(local).read_text(encoding="utf-8")
            assert MARKER not in text and str(tmp_path) not in text, remote
    (teacher / "README.md").write_text("---\nlicense: mit\nlanguage: en\n---\n# teacher\n")
    facts = card_metadata(str(teacher), "distilbert", "text-classification")
    assert (facts.license, facts.language) == ("mit", "en") and "distilbert" in facts.tags


def test_a_card_from_a_hub_teacher_names_it_as_its_base_model_and_relation():
    meta = card_metadata("google-bert/bert-base-uncased", "distilbert", "fill-mask")
    assert meta.base_model == "google-bert/bert-base-uncased" and meta.base_model_relation == "finetune"
    assert meta.to_dict()["pipeline_tag"] == "fill-mask"
