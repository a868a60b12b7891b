"""`python -m demo.bench_serving`: what the app costs on top of its models, against a trivial Gradio app.

The edge only: flags -> measuring.serving_bench.measure -> serving.json, serving.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from demo.core.errors import UsageError, exit_on_user_error
from demo.measuring.serving_bench import measure, trivial_app


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m demo.bench_serving", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default=None, help="pairs YAML for the app (default: pairs.yaml)")
    p.add_argument("--task", default="sentiment", help="the endpoint to time")
    p.add_argument("--requests", type=int, default=100, help="sequential requests to each app")
    p.add_argument("--users", type=int, default=16, help="concurrent API users in the load run (0: skip it)")
    p.add_argument("--load-tasks", default=None, help="comma-separated endpoints the load run cycles through "
                                                       "(default: --task)")
    p.add_argument("--per-user", type=int, default=25, help="requests per concurrent user")
    p.add_argument("--out", default=None, help="directory for serving.json and serving.md (required)")
    p.add_argument("--serve-trivial", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_trivial:
        trivial_app(args.serve_trivial)
        return 0
    if not args.out:
        raise UsageError("--out DIR is required: where serving.json and serving.md go.")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load_tasks = [t.strip() for t in args.load_tasks.split(",") if t.strip()] if args.load_tasks else None
    report = measure(args.config, args.task, args.requests, args.users, args.per_user, out, load_tasks)
    (out / "serving.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    (out / "serving.md").write_text(report.markdown(), encoding="utf-8")
    print(report.markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
