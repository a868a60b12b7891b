"""Bounded by design: a hostile client's requests, each answered within seconds with one sentence, without
holding the machine, its memory or its disk (tiny models; every call through gradio_client or plain HTTP
to this machine's loopback, bounded in count and time)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import psutil
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from demo.core import scratch
from demo.serving import bench_tab

from .apps import InProcessApp, call, call_when_ready, served
from .builders import write_sentiment_tsv

GB = 1024**3


@pytest.fixture(scope="module")
def app(tiny_config):
    yield from served(tiny_config, "--scratch-max-mb", "50")


def refused_quickly(client, *args, api_name: str, match: str, within: float = 10.0) -> str:
    began = time.monotonic()
    with pytest.raises(AppError, match=match) as refused:
        call(client, *args, api_name=api_name)
    assert time.monotonic() - began < within, f"{api_name} took {time.monotonic() - began:.1f} s to refuse"
    message = str(refused.value)
    assert len(message) < 1_000 and "/tmp/" not in message and "Traceback" not in message
    return message


def test_a_benchmark_request_cannot_hold_the_machine(app):
    """The probe's 2,000 shapes of 256 x 512 tokens, 1,000 repeats; 2,000 distinct sizes; a sweep past the
    work cap: each refused in a sentence before anything is timed, and nothing is left holding the slot."""
    client = app.client()
    call_when_ready(client, "warm", "/sentiment")
    refused_quickly(client, "sentiment", ["student"], ",".join(["256"] * 2000), "512", 1000, False,
                    api_name="/benchmark", match=r"256 × 512 tokens is 131,072 tokens in one call")
    refused_quickly(client, "sentiment", ["student"], ",".join(map(str, range(1, 2001))), "16", 20, False,
                    api_name="/benchmark", match=r"batch sizes: 2,000 distinct values; give at most 8")
    refused_quickly(client, "sentiment", ["teacher", "student"], "1,2,4,8", "16,32,64,128", 1000, False,
                    api_name="/benchmark", match=r"would run 14,443,200 tokens .* up to 4,000,000 per benchmark")
    assert not bench_tab.SWEEP_LOCK.locked() and not bench_tab.RUNNING


def test_a_cancelled_benchmark_stops_within_five_seconds(app):
    """A long sweep inside the caps, cancelled by its client: the sweep stops (the slot frees) within 5 s,
    and another visitor's benchmark then runs."""
    client = app.client()
    call_when_ready(client, "warm", "/sentiment")
    job = client.submit("sentiment", ["teacher", "student"], "1,2,4,8", "16,32,64,128", 250, False,
                        api_name="/benchmark")
    deadline = time.monotonic() + 30
    while not bench_tab.SWEEP_LOCK.locked():
        assert time.monotonic() < deadline and not job.done(), "the sweep never started"
        time.sleep(0.1)
    time.sleep(1.5)  # into its timed rounds
    assert bench_tab.SWEEP_LOCK.locked()
    cancelled = time.monotonic()
    job.cancel()
    while bench_tab.SWEEP_LOCK.locked():
        assert time.monotonic() - cancelled < 5, "the sweep ran on after its caller cancelled"
        time.sleep(0.05)
    summary, *_ = call(app.client(), "sentiment", ["student"], "1", "16", 20, False, api_name="/benchmark")
    assert summary["records"]


def bomb(path: Path) -> Path:
    """The probe's parquet: 50,000 rows of one 10 KB text, zstd and dictionary encoded (about 1 KB on disk,
    500 MB once decoded)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": pa.array(["a good film " * 900] * 50_000),
                             "label": pa.array(["positive", "negative"] * 25_000)}), path,
                   compression="zstd", use_dictionary=True)
    assert path.stat().st_size < 10_000
    return path


def test_a_decompression_bomb_is_refused_in_seconds_without_the_memory_or_a_cache_copy(app, tmp_path):
    client = app.client()
    path = bomb(tmp_path / "bomb.parquet")
    datasets_cache = Path.home() / ".cache" / "huggingface" / "datasets"
    before = set(datasets_cache.rglob("*")) if datasets_cache.exists() else set()
    rss = psutil.Process().memory_info().rss
    refused_quickly(client, handle_file(str(path)), "sentiment", "text", "label", 0, api_name="/evaluate",
                    match="once decompressed")
    refused_quickly(client, "sentiment", handle_file(str(path)), None, 1, 400, 1, False, False, 3,
                    api_name="/distill_start", match="once decompressed")
    assert psutil.Process().memory_info().rss - rss < 1.5 * GB
    after = set(datasets_cache.rglob("*")) if datasets_cache.exists() else set()
    assert after == before  # no Arrow copy of the visitor's data in a cache that outlives the request
    from gradio.utils import get_upload_folder

    assert not list(Path(get_upload_folder()).rglob("bomb.parquet"))  # the upload, deleted once read


def test_a_huge_cell_and_a_million_columns_are_one_short_sentence(app, tmp_path):
    client = app.client()
    cell = tmp_path / "cell.csv"
    cell.write_text("text,label\n" + "a good film,positive\n" * 30 + f"{'x' * 2_000_000},negative\n")
    refused_quickly(client, handle_file(str(cell)), "sentiment", "text", "label", 0, api_name="/evaluate",
                    match=r"row 31, column 'text' holds 2,000,000 characters; this app reads cells of up to 20,000")
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(100_000)) + "\n" + ",".join("1" * 100_000) + "\n")
    refused_quickly(client, handle_file(str(wide)), "sentiment", None, None, 0, api_name="/evaluate",
                    match=r"100,000 columns; this app reads files of up to 1,000 columns")


def test_errors_are_short_escaped_text_in_the_pages_words(app, tmp_path):
    client = app.client()
    hostile = tmp_path / "labels.tsv"
    hostile.write_text("sentence\tlabel\n" + "".join(f"a film\t<b>x{i}</b><img src=x>\n" for i in range(5000)))
    message = refused_quickly(client, handle_file(str(hostile)), "sentiment", None, None, 0, api_name="/evaluate",
                              match="are unknown to")
    assert "<b>" not in message and "&lt;b&gt;x0&lt;/b&gt;" in message and "and 4,988 more" in message
    unnamed = tmp_path / "unnamed.tsv"
    unnamed.write_text("words\tscore\n" + "a good film\t1\n" * 50)
    message = refused_quickly(client, handle_file(str(unnamed)), "sentiment", None, None, 0, api_name="/evaluate",
                              match="cannot tell which column holds the text")
    assert "--text-column" not in message and "name it with the text column" in message


def test_text_is_cleaned_of_bidi_overrides_and_masks_are_counted_whole(app):
    client = app.client()
    answer = call_when_ready(client, "a good\u202e film", "/sentiment")
    assert "\u202e" not in answer["text"] and any("control character" in n for n in answer["notices"])
    with pytest.raises(AppError, match="the text has 10000 masks"):
        call(client, "[MASK] " * 10_000, api_name="/fill_mask")


@pytest.mark.slow  # twenty evaluations, each writing a ~5 MB report: ~17 s
def test_twenty_evaluations_keep_the_apps_files_under_the_budget(app, tmp_path):
    """--scratch-max-mb 50: reports and gradio's copies of them (and of the uploads) together stay bounded."""
    client = app.client()
    path = write_sentiment_tsv(tmp_path / "eval.tsv", 17, 4)
    for _ in range(20):
        call(client, handle_file(str(path)), "sentiment", "sentence", "label", 0, api_name="/evaluate")
    time.sleep(scratch.IN_USE_SECONDS + 0.5)
    scratch.enforce_budget()
    cache = Path(os.environ["GRADIO_TEMP_DIR"])
    assert cache.resolve().is_relative_to(scratch.process_root().resolve())  # gradio's cache is the app's
    reports = sum(scratch.folder_bytes(p) for p in scratch._DIRS if Path(p).name.startswith("evaluation-"))
    assert reports + scratch.folder_bytes(cache) < 100 * 10**6


def test_a_file_posted_with_no_event_expires(app, tmp_path):
    upload = tmp_path / "stray.txt"
    upload.write_bytes(b"x" * 1000)
    with httpx.Client(timeout=10) as http, upload.open("rb") as f:
        stored = http.post(f"{app.url}gradio_api/upload", files={"files": ("stray.txt", f)}).json()[0]
    stored = Path(stored)
    assert stored.is_file() and stored.resolve().is_relative_to(scratch.process_root().resolve())
    old = time.time() - scratch.UPLOAD_KEEP_SECONDS - 5
    for p in (stored, stored.parent):
        os.utime(p, (old, old))
    scratch.enforce_budget()
    assert not stored.exists()


def test_on_a_public_address_no_client_can_reach_the_operators_buttons(tiny_config):
    server = InProcessApp(tiny_config, "--host", "0.0.0.0")
    try:
        config = server.client().config
        ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
        assert "sentiment-run" in ids and not ids & {"sentiment-reload", "sentiment-cpu", "sentiment-random"}
    finally:
        server.stop()
