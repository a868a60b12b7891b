"""The teacher's soft targets (logits) on a set of texts: computed once, cached on disk.

A cache entry is a safetensors file holding the logits and, in its header, what they were made
from: the teacher's weights (a digest), the texts (a digest), the maximum length and the
augmentation settings. An entry is used only when all of that matches; anything else is
recomputed (automatic cache) or refused (a file the user named with --transfer-cache, so that
nothing of theirs is overwritten).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from demo.core.errors import UserError
from demo.core.progress import ProgressLine
from demo.distill.batches import batches, encode_texts
from demo.models.inputs import model_inputs
from demo.models.loading import LoadedModel

DEFAULT_CACHE_DIR = Path(os.environ.get("DISTILL_DEMO_CACHE", Path.home() / ".cache" / "distill-demo")) / "targets"
FORMAT = "distill-demo-targets/1"


class TargetsCacheError(UserError, ValueError):
    """A named cache file that belongs to another teacher or other texts."""


@dataclass(frozen=True)
class TargetsKey:
    teacher: str  # digest of the teacher's weights
    texts: str  # digest of the texts, in order
    n_texts: int
    max_length: int
    augmentation: str  # AugmentSettings.key(), or "none"
    teacher_name: str = ""  # for messages only; not compared

    def matches(self, meta: dict) -> str | None:
        """None when meta was made from the same inputs, else what differs (for the log or error)."""
        if meta.get("format") != FORMAT:
            return "it is not a soft-target cache of this tool"
        if meta.get("teacher") != self.teacher:
            return f"it holds the soft targets of another teacher ({meta.get('teacher_name') or 'unknown'})"
        if meta.get("texts") != self.texts or meta.get("n_texts") != str(self.n_texts):
            return "it was made from other texts (another file, sample or order)"
        if meta.get("max_length") != str(self.max_length):
            return f"it was made with --max-seq-length {meta.get('max_length')}"
        if meta.get("augmentation") != self.augmentation:
            return "it was made with other augmentation settings"
        return None

    def metadata(self) -> dict[str, str]:
        return {"format": FORMAT, **{k: str(v) for k, v in asdict(self).items()}}

    def file_name(self) -> str:
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:24]
        return f"targets-{digest}.safetensors"


def weights_digest(model: torch.nn.Module) -> str:
    """Digest of every parameter and buffer (names, shapes, dtypes, values): the teacher's identity."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{tuple(tensor.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:32]


def texts_digest(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


@dataclass
class TargetsInfo:
    """What the log, metrics.json and the model card say about one set of soft targets."""

    name: str
    n_texts: int
    cache: str  # "hit", "miss", "rebuilt: <why>", "off"
    seconds: float
    texts_per_second: float | None
    path: str | None


@torch.inference_mode()
def compute_logits(teacher: LoadedModel, texts: Sequence[str], max_length: int, batch_size: int,
                   desc: str = "teacher soft targets", accelerator=None) -> torch.Tensor:
    """The teacher's logits, (N, C) float32 in the order of texts; run in length order (little padding).

    Under an accelerate launch each process computes every n-th text of that order and the shares
    are gathered, so every text goes through the teacher once in all, and every process ends up
    with all the logits.
    """
    encoded = encode_texts(teacher.tokenizer, texts, max_length)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]["input_ids"]))
    world = accelerator.num_processes if accelerator is not None else 1
    mine = order[accelerator.process_index::world] if world > 1 else order
    chunks = []
    with ProgressLine(desc, unit="texts", enabled=world == 1 or accelerator.is_main_process) as progress:
        for batch in batches([encoded[i] for i in mine], [0] * len(mine), batch_size, teacher.tokenizer):
            chunks.append(teacher.model(**model_inputs(teacher.model, batch, teacher.device)).logits.float().cpu())
            progress(min(len(chunks) * batch_size, len(mine)), len(mine))
    shares = [(mine, torch.cat(chunks) if chunks else torch.empty(0))]
    if world > 1:
        from accelerate.utils import gather_object

        shares = gather_object(shares)  # [(indices, logits)] of every process, in process order
    width = next(s.shape[1] for _, s in shares if s.numel())
    logits = torch.empty(len(texts), width)
    for indices, share in shares:
        if indices:
            logits[torch.tensor(indices)] = share
    return logits


def check_named_cache(path: Path, key: TargetsKey, teacher_only: bool = False) -> None:
    """Before anything is written: a cache file the user named must be ours and match, or be absent
    (a corrupt one is rebuilt). teacher_only: check the teacher and length alone (the texts are not
    known yet). Raises TargetsCacheError with what differs."""
    if path.is_dir():
        raise TargetsCacheError(f"--transfer-cache {path}: is a directory; name a file (e.g. transfer.safetensors).")
    if not path.is_file():
        return
    meta = _read_meta(path)
    if meta is None:
        return
    if teacher_only:
        meta = {**meta, "texts": key.texts, "n_texts": str(key.n_texts), "augmentation": key.augmentation}
    why = key.matches(meta)
    if why is not None:
        raise TargetsCacheError(f"--transfer-cache {path}: {why}; delete the file or name another one.")


def _read_meta(path: Path) -> dict | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception:  # noqa: BLE001 - unreadable: treated as corrupt
        return None


def _load(path: Path, key: TargetsKey) -> tuple[torch.Tensor | None, str]:
    from safetensors.torch import load_file

    if not path.is_file():
        return None, "miss"
    meta = _read_meta(path)
    if meta is None:
        return None, "rebuilt: the cache file was corrupt"
    why = key.matches(meta)
    if why is not None:
        return None, f"rebuilt: {why}"
    try:
        logits = load_file(str(path))["logits"]
    except Exception:  # noqa: BLE001
        return None, "rebuilt: the cache file was corrupt"
    if logits.ndim != 2 or logits.shape[0] != key.n_texts or not torch.isfinite(logits).all():
        return None, "rebuilt: the cache file was corrupt"
    return logits, "hit"


def _save(path: Path, logits: torch.Tensor, key: TargetsKey) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    save_file({"logits": logits.contiguous()}, str(tmp), metadata=key.metadata())
    tmp.replace(path)  # atomic: a run killed mid-write leaves no half file under the real name


def soft_targets(teacher: LoadedModel, texts: Sequence[str], *, name: str, max_length: int, batch_size: int,
                 augmentation: str = "none", teacher_digest: str | None = None, cache_dir: Path | None = None,
                 cache_file: Path | None = None, log: Callable[[str], None] | None = None,
                 accelerator=None) -> tuple[torch.Tensor, TargetsInfo]:
    """Logits of the teacher on texts, from the cache when it matches, else computed and stored.

    cache_file: a file the user named (refused if it belongs to another teacher or texts: see
    check_named_cache); cache_dir: the automatic cache (None: no caching).
    """
    key = TargetsKey(teacher=teacher_digest or weights_digest(teacher.model), texts=texts_digest(texts),
                     n_texts=len(texts), max_length=max_length, augmentation=augmentation,
                     teacher_name=teacher.name)
    path = cache_file if cache_file is not None else (cache_dir / key.file_name() if cache_dir else None)
    main = accelerator is None or accelerator.is_main_process
    log = log or (print if main else (lambda _line: None))  # one log, the main process's
    status = "off"
    if path is not None:
        if cache_file is not None:
            check_named_cache(path, key)
        logits, status = _load(path, key)
        if logits is not None:
            log(f"{name}: reusing the teacher's soft targets for {len(texts):,} texts from the cache ({path})")
            return logits, TargetsInfo(name, len(texts), "hit", 0.0, None, str(path))
        if status.startswith("rebuilt"):
            log(f"{name}: cache {path} not used ({status[len('rebuilt: '):]}); recomputing")
    start = time.perf_counter()
    logits = compute_logits(teacher, texts, max_length, batch_size, desc=f"teacher soft targets ({name})",
                            accelerator=accelerator)
    seconds = time.perf_counter() - start
    rate = len(texts) / seconds if seconds > 0 else None
    world = accelerator.num_processes if accelerator is not None else 1
    shared = f", computed once over {world} processes (~{-(-len(texts) // world):,} texts each)" if world > 1 else ""
    log(f"{name}: teacher soft targets for {len(texts):,} texts in {seconds:.1f} s "
        f"({rate or 0:,.0f} texts/s at max length {max_length}){shared}" + (f"; cached in {path}" if path else ""))
    if path is not None and main:
        _save(path, logits, key)
    if accelerator is not None:
        accelerator.wait_for_everyone()  # the cache file is complete before any process reads it again
    return logits, TargetsInfo(name, len(texts), status, seconds, rate, str(path) if path else None)
