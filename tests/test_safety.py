"""Safe by default: pickled weights never run, the Hub token is never printed."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from demo.models.config import ModelSpec
from demo.models.loading import LoadError, load_model

from .builders import ROOT, make_pair


class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = Path("/tmp/distill-demo-pickle-ran")


def test_a_pickle_payload_in_bin_weights_never_runs(tmp_path):
    MARKER.unlink(missing_ok=True)
    dirs = make_pair("classify", tmp_path)
    target = dirs["student"]
    (target / "model.safetensors").unlink()
    with (target / "pytorch_model.bin").open("wb") as f:
        pickle.dump({"weights": Payload()}, f)
    with pytest.raises(LoadError) as info:
        load_model(ModelSpec(str(target)), "classify", torch.device("cpu"))
    assert "truncated or corrupt" in info.value.reason or "could not be loaded" in info.value.reason
    assert not MARKER.exists()


@pytest.mark.slow  # a new interpreter, as the token would reach a user's: ~5 s of imports
def test_the_hub_token_is_never_printed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "README.md").write_text("card")
    (out / "config.json").write_text("{}")
    token = "hf_FAKEtoken0123456789abcdef"
    proc = subprocess.run([sys.executable, "-m", "demo.distill", "push", "--output-dir", str(out), "--repo-id",
                           "me/x", "--dry-run"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_TOKEN": token})
    assert proc.returncode == 0 and "would upload 2 files" in proc.stdout
    assert token not in proc.stdout + proc.stderr



def test_predictions_csv_never_hands_a_spreadsheet_a_formula(tiny_config, tmp_path):
    """Texts from anyone's upload go into predictions.csv: a cell that a spreadsheet would run (=, +, -, @)
    is written with a leading quote; the HTML and Markdown reports escape on their own."""
    import csv

    from demo.evaluate import main as evaluate_main

    texts = ["=HYPERLINK(\"http://x\",\"click\")", "+1+2", "-2+3", "@SUM(A1)", "a plain good film"]
    data = tmp_path / "hostile.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{t}\t{i % 2}\n" for i, t in enumerate(texts)), encoding="utf-8")
    assert evaluate_main(["--config", str(tiny_config), "--task", "sentiment", "--file", str(data),
                          "--out", str(tmp_path / "out")]) == 0
    with (tmp_path / "out" / "predictions.csv").open(encoding="utf-8", newline="") as f:
        written = [row["text"] for row in csv.DictReader(f)]
    assert written == [f"'{t}" for t in texts[:4]] + [texts[4]]
