"""Issue 39's hostile probe against a running app (loopback only; every loop bounded): how fast each
request is refused, how much the app's memory grows, whether a cancelled benchmark frees the slot within
5 s, and what twenty evaluations leave on disk. Prints one line per figure.

usage: python app.py --config runs/pair.yaml --port 7899 --scratch-max-mb 50 &
       python docs/trials/bounds_probe.py APP_PID [URL]
"""

import sys
import tempfile
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
from gradio_client import Client, handle_file


def timed_refusal(client, *args, api_name):
    began = time.monotonic()
    try:
        client.predict(*args, api_name=api_name)
        return time.monotonic() - began, "ANSWERED"
    except Exception as exc:  # noqa: BLE001 - the refusal is the figure
        return time.monotonic() - began, str(exc)[:140]


def main(pid: str, url: str = "http://127.0.0.1:7899/") -> None:
    app, client, tmp = psutil.Process(int(pid)), Client(url, verbose=False), Path(tempfile.mkdtemp())
    rss = lambda: app.memory_info().rss / 1e9
    print(f"app RSS at start {rss():.2f} GB")
    seconds, said = timed_refusal(client, "sentiment", ["student"], ",".join(["256"] * 2000), "512", 1000, False,
                                  api_name="/benchmark")
    print(f"benchmark of 2,000 x 256x512 shapes: {seconds:.2f} s: {said}")
    bomb = tmp / "bomb.parquet"
    pq.write_table(pa.table({"text": pa.array(["a good film " * 900] * 50_000),
                             "label": pa.array(["positive", "negative"] * 25_000)}), bomb,
                   compression="zstd", use_dictionary=True)
    before = rss()
    for api, args in (("/evaluate", (handle_file(str(bomb)), "sentiment", "text", "label", 0)),
                      ("/distill_start", ("sentiment", handle_file(str(bomb)), None, 1, 400, 1, False, False, 3))):
        seconds, said = timed_refusal(client, *args, api_name=api)
        print(f"parquet bomb ({bomb.stat().st_size:,} bytes) to {api}: {seconds:.2f} s: {said}")
    print(f"app RSS growth over the bombs: {rss() - before:+.2f} GB")
    cell = tmp / "cell.csv"
    cell.write_text("text,label\n" + "a good film,positive\n" * 30 + f"{'x' * 49_000_000},negative\n")
    seconds, said = timed_refusal(client, handle_file(str(cell)), "sentiment", "text", "label", 0, api_name="/evaluate")
    print(f"CSV with a 49 MB cell: {seconds:.2f} s: {said}; RSS now {rss():.2f} GB")
    job = client.submit("sentiment", ["teacher", "student"], "1,2,4,8", "16,32,64,128", 250, False,
                        api_name="/benchmark")
    time.sleep(4)
    job.cancel()
    cancelled, other = time.monotonic(), Client(url, verbose=False)
    while time.monotonic() - cancelled < 60:
        try:
            other.predict("sentiment", ["student"], "1", "16", 20, False, api_name="/benchmark")
            print(f"cancelled benchmark: another visitor's benchmark ran {time.monotonic() - cancelled:.1f} s later")
            break
        except Exception:  # noqa: BLE001 - "another benchmark is running": try again
            time.sleep(0.2)
    rows = tmp / "eval.tsv"
    rows.write_text("sentence\tlabel\n" + "".join(f"a {'good' if i % 2 else 'dull'} film {i}\t"
                                                   f"{'positive' if i % 2 else 'negative'}\n" for i in range(17)))
    for _ in range(20):
        client.predict(handle_file(str(rows)), "sentiment", "sentence", "label", 0, api_name="/evaluate")
    time.sleep(35)  # the sweeper's next round
    root = next(Path(tempfile.gettempdir()).glob(f"teacher-student-{pid}-*"))
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and "training-jobs" not in str(f))
    print(f"after twenty evaluations: the app's temp dir and gradio's cache hold {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main(*sys.argv[1:3])
