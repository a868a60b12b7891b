"""What leaves the app in a card and a publish: no row of anyone's data, no path of this machine, the
teacher's class names, license and language only where the teacher's card gives them, tags true to the
student (tiny models, the CLI end to end; the card read back as the Hub reads it)."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
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


@pytest.fixture(scope="module")
def run(encoder_dir, data, tmp_path_factory) -> SimpleNamespace:
    """A tiny teacher, and its 1-layer BERT-shaped student distilled from files labelled 0/1 whose first
    validation row carries a marker."""
    tmp_path = tmp_path_factory.mktemp("card-run")
    teacher = distill(tmp_path / "teacher", "finetune", "--model", str(encoder_dir), "--train-file",
                      str(data["train"]), "--validation-file", str(data["validation"]), "--epochs", "1",
                      "--min-steps", "0", "--batch-size", "16")
    train = numbered(data["train"], tmp_path / "train01.tsv")
    validation = numbered(data["validation"], tmp_path / "validation01.tsv", f"{MARKER} a good film")
    out = distill(tmp_path / "job" / "student", "distill", "--teacher", str(teacher), "--student-layers", "1",
                  "--student-arch", "bert", "--train-file", str(train), "--validation-file", str(validation),
                  "--epochs", "1", "--min-steps", "0", "--augment", "0", "--batch-size", "16")
    return SimpleNamespace(teacher=teacher, out=out, tmp_path=tmp_path)


def test_a_card_carries_no_row_of_the_data_no_server_path_and_the_teachers_class_names(run):
    teacher, out, tmp_path = run.teacher, run.out, run.tmp_path
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


class StandInHub:
    """huggingface_hub.HfApi as publish() meets it, recording the token it was given; no network."""

    calls: tuple = ()  # set per test (monkeypatch): what was sent, with which token
    answer: int | None = None  # an HTTP status to fail the commit with

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, **kwargs):
        StandInHub.calls.append(("create_repo", self.token, kwargs["repo_id"]))

    def create_commit(self, **kwargs):
        if StandInHub.answer:
            error = RuntimeError(f"{StandInHub.answer} Client Error")
            error.response = SimpleNamespace(status_code=StandInHub.answer)
            raise error
        StandInHub.calls.append(("create_commit", self.token, kwargs["repo_id"]))


def test_publishing_on_a_space_takes_the_visitors_sign_in_under_their_own_name(run, monkeypatch, capsys):
    """The publish handler as gradio calls it on a Space with hf_oauth: gradio's OAuthToken and OAuthProfile
    objects, a stand-in Hub. Not signed in, another user's repo, a token the Hub will not let write: one
    sentence each, nothing sent; signed in under their name: one commit with their token, never shown."""
    import huggingface_hub

    from demo.serving.train_tab import TrainHandlers
    from demo.serving.training.jobs import Job, JobRunner
    from demo.serving.training.service import TrainingService

    monkeypatch.setenv("SPACE_ID", "someone/teacher-student")
    monkeypatch.setenv("OAUTH_CLIENT_ID", "client-id")
    monkeypatch.setattr(huggingface_hub, "HfApi", StandInHub)
    monkeypatch.setattr(StandInHub, "calls", [])
    runner = JobRunner(run.tmp_path / "jobs")
    job = Job(id="0123456789ab", visitor="v", task="sentiment", folder=run.out.parent, argv=[], state="done")
    runner.jobs[job.id] = job
    handlers = TrainHandlers(TrainingService(SimpleNamespace(), runner, True, students=SimpleNamespace()),
                             SimpleNamespace(), page_timer=None)
    secret = "hf_oauthSECRETtoken123456"
    token = gr.OAuthToken(token=secret, scope="openid profile write-repos manage-repos",
                          expires_at=int(time.time()) + 3600)
    alice = gr.OAuthProfile({"name": "Alice", "preferred_username": "alice", "profile": "", "picture": ""})
    with pytest.raises(gr.Error, match="sign in with Hugging Face first"):
        handlers.publish(job.key, "alice/tiny", "", False, None, None)
    with pytest.raises(gr.Error, match="bob/tiny is not under your name: publish as alice/tiny"):
        handlers.publish(job.key, "bob/tiny", "", False, token, alice)
    monkeypatch.setattr(StandInHub, "answer", 403)
    with pytest.raises(gr.Error, match=r"the token cannot write to alice/tiny .*Nothing was published"):
        handlers.publish(job.key, "alice/tiny", "", False, token, alice)
    assert StandInHub.calls == [("create_repo", secret, "alice/tiny")]  # refused before anything was sent
    monkeypatch.setattr(StandInHub, "answer", None)
    said = handlers.publish(job.key, "alice/tiny", "a pasted token is ignored here", False, token, alice)
    assert "published" in said and StandInHub.calls[-1] == ("create_commit", secret, "alice/tiny")
    assert secret not in said and secret not in capsys.readouterr().out
    with pytest.raises(gr.Error, match="only the browser or script that started job"):
        handlers.publish(job.id, "alice/tiny", "", False, token, alice)  # the id alone is not the key


def test_the_report_and_the_card_say_how_many_scored_rows_the_models_trained_on(run, tmp_path):
    """Scored on the student's own training file: every row is one it trained on, and so is every row for
    the teacher (fine-tuned on the same texts, labelled by name): the report says so; the card says it for
    its validation rows."""
    import json

    from demo.evaluate import main as evaluate_main

    config = tmp_path / "pair.yaml"
    config.write_text(f"device: cpu\ntasks:\n  sentiment:\n    teacher: {{model: {run.teacher}}}\n"
                      f"    student: {{model: {run.out}}}\n")
    assert evaluate_main(["--config", str(config), "--task", "sentiment", "--file", str(run.tmp_path / "train01.tsv"),
                          "--out", str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    rows = report["n_examples"]
    assert report["overlap"]["overlapping"] == {"teacher": rows, "student": rows}
    assert f"{rows:,} of the {rows:,} scored rows are in the student's own training data" in (
        tmp_path / "report" / "report.md").read_text()
    card = (run.out / "README.md").read_text()
    assert "**Rows these models trained on**" in card and "scored rows" in card
