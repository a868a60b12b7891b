"""Publishing an output directory to the Hub in one commit of exactly the planned files (the same list a
download zips). The token is never printed; no path of this machine leaves it: metrics.json goes as a copy
whose paths are cut to their last part."""

from __future__ import annotations

import json
from pathlib import Path

from demo.core.errors import UserError
from demo.core.formatting import without_paths

# Not the model: resumable training state, the baselines kept for the downstream check, the held-out text
# (a copy of the user's data, which stays on their machine) and the public copies made here.
PUBLIC_DIR = ".public"
IGNORED = ("checkpoint-*", "checkpoints/*", "baselines/*", "heldout_texts.txt", "*.tmp", "__pycache__/*", "*.pyc",
           f"{PUBLIC_DIR}/*")
SCRUBBED = ("metrics.json",)  # files that record this machine's paths (train files, caches): published scrubbed


class PublishError(UserError, RuntimeError):
    pass


def planned_upload(output_dir: str | Path, repo_id: str) -> list[tuple[str, str]]:
    """(local file, path in the repo) for everything that would be uploaded: huggingface_hub's own filter,
    the one upload_folder applies with the same ignore_patterns, so the list is the upload."""
    from huggingface_hub.utils import filter_repo_objects

    root = Path(output_dir)
    if not (root / "README.md").is_file() or not (root / "config.json").is_file():
        raise PublishError(f"{root} is not a finished output directory (README.md or config.json missing).")
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return [(public_copy(root, rel) if rel in SCRUBBED else str(root / rel), f"{repo_id}/{rel}")
            for rel in filter_repo_objects(files, ignore_patterns=list(IGNORED))]


def scrubbed(value):
    if isinstance(value, dict):
        return {k: scrubbed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrubbed(v) for v in value]
    return without_paths(value) if isinstance(value, str) else value


def public_copy(root: Path, rel: str) -> str:
    """A copy of a JSON file with every path of this machine cut to its last part, under .public/."""
    copy = root / PUBLIC_DIR / rel
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(json.dumps(scrubbed(json.loads((root / rel).read_text(encoding="utf-8"))), indent=2),
                    encoding="utf-8")
    return str(copy)


def publish(output_dir: str | Path, repo_id: str, private: bool = False, dry_run: bool = False,
            api=None, token: str | None = None) -> list[tuple[str, str]]:
    """Create or update the repo and upload the folder in one commit (or only list it, with dry_run)."""
    plan = planned_upload(output_dir, repo_id)
    if dry_run:
        print(f"dry run: would upload {len(plan)} files to https://huggingface.co/{repo_id} in one commit:")
        for local, remote in plan:
            print(f"  {local} -> {remote}")
        return plan
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)  # None: HF_TOKEN from the environment or the saved login
    retry = f"python -m demo.distill push --output-dir {output_dir} --repo-id {repo_id}"
    try:
        from huggingface_hub import CommitOperationAdd

        api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
        api.create_commit(repo_id=repo_id, repo_type="model",
                          operations=[CommitOperationAdd(path_in_repo=remote[len(repo_id) + 1:], path_or_fileobj=local)
                                      for local, remote in plan],
                          commit_message="Upload distilled student, model card and training code")
    except Exception as exc:  # noqa: BLE001 - any failure: keep the output, say how to retry
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise PublishError(f"the token cannot write to {repo_id} (the Hub answered {status}): sign in again "
                               "allowing this app to write repositories, or use a token with write access. Nothing "
                               "was published.") from None
        raise PublishError(f"upload to {repo_id} failed ({reason}). The output in {output_dir} is intact; "
                           f"retry with: {retry}") from None
    print(f"published {len(plan)} files to https://huggingface.co/{repo_id}")
    return plan
