"""Submit a dataset's fine-tuning job and follow it, with the ``openai`` SDK against any OpenAI-compatible API.

``submit`` refuses a dataset whose manifest is not for OpenAI's chat format, uploads the training and
validation files (``purpose="fine-tune"``), starts the job with the manifest's epochs, and records the
job next to the dataset (``job.json``) so ``status`` can be given the directory instead of the id.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from openai import OpenAI

JOB_FILE = "job.json"
FINISHED = frozenset({"succeeded", "failed", "cancelled"})


class FineTuneError(ValueError):
    """The dataset or job cannot go on as asked; the CLI prints it and exits 2."""


@dataclass(frozen=True)
class Submitted:
    job_id: str
    model: str
    training_file: str
    validation_file: str | None
    epochs: int
    submitted_at: float


@dataclass(frozen=True)
class Progress:
    job_id: str
    status: str
    model: str
    fine_tuned_model: str | None
    trained_tokens: int | None
    step: int | None
    total_steps: int | None
    train_loss: float | None
    valid_loss: float | None
    checkpoints: tuple[str, ...]
    error: str | None
    finished_at: int | None  # epoch seconds, once the job has finished

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def _manifest(dataset: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = orjson.loads((dataset / "manifest.json").read_bytes())
    except FileNotFoundError:
        raise FineTuneError(f"{dataset}: no manifest.json (make one with hybrid-gateway dataset export)") from None
    if manifest.get("format") != "openai-chat" or manifest.get("provider") not in ("openai", "azure"):
        raise FineTuneError(f"{dataset}: a {manifest.get('provider')} {manifest.get('format')} dataset; "
                            "finetune submits OpenAI chat datasets")
    return manifest


def submit(client: OpenAI, dataset: Path, model: str | None = None, suffix: str | None = None,
           epochs: int | None = None) -> Submitted:
    """Upload ``dataset``'s files and start its job; the job is recorded in ``dataset/job.json``."""
    manifest = _manifest(dataset)
    base = model or manifest["base_model"]
    rounds = epochs or int(manifest["epochs"])
    with (dataset / "train.jsonl").open("rb") as train:
        training = client.files.create(file=train, purpose="fine-tune").id
    validation = None
    if manifest["counts"].get("validation"):
        with (dataset / "validation.jsonl").open("rb") as held:
            validation = client.files.create(file=held, purpose="fine-tune").id
    job = client.fine_tuning.jobs.create(model=base, training_file=training, validation_file=validation,
                                         suffix=suffix, hyperparameters={"n_epochs": rounds})
    submitted = Submitted(job.id, base, training, validation, rounds, time.time())
    (dataset / JOB_FILE).write_bytes(orjson.dumps(asdict(submitted), option=orjson.OPT_INDENT_2))
    return submitted


def job_id_of(given: str) -> str:
    """A job id, or a dataset directory whose ``job.json`` names one."""
    path = Path(given)
    if path.is_dir():
        try:
            return str(orjson.loads((path / JOB_FILE).read_bytes())["job_id"])
        except FileNotFoundError:
            raise FineTuneError(f"{path}: no {JOB_FILE}; submit the dataset first") from None
    return given


def progress(client: OpenAI, job_id: str) -> Progress:
    """The job now: status, the latest step's training and validation loss, its checkpoints, its error."""
    job = client.fine_tuning.jobs.retrieve(job_id)
    step = total = None
    train_loss = valid_loss = None
    for event in client.fine_tuning.jobs.list_events(job_id, limit=50).data:  # newest first
        data = event.data if isinstance(event.data, dict) else None
        if event.type == "metrics" and data and "step" in data:
            step, total = data.get("step"), data.get("total_steps")
            train_loss, valid_loss = data.get("train_loss"), data.get("valid_loss")
            break
    checkpoints = tuple(c.fine_tuned_model_checkpoint for c in client.fine_tuning.jobs.checkpoints.list(job_id).data)
    error = f"{job.error.code}: {job.error.message}" if job.error and job.error.code else None
    return Progress(job.id, job.status, job.model, job.fine_tuned_model, job.trained_tokens, step, total,
                    train_loss, valid_loss, checkpoints, error, job.finished_at)


def cancel(client: OpenAI, job_id: str) -> str:
    return client.fine_tuning.jobs.cancel(job_id).status
