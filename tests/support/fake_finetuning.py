"""OpenAI's fine-tuning API as the ``openai`` SDK calls it (files, jobs, events, checkpoints, cancel), on loopback.

Each job follows the statuses a test scripts (``then``), one step per ``GET`` of the job, so a test
drives a job through ``validating_files -> running -> succeeded`` (or ``failed``) without waiting on
a clock. What was uploaded and asked is kept for the test to check.
"""

from __future__ import annotations

import collections
import itertools
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SUCCEEDED = ("validating_files", "running", "succeeded")
FAILED = ("validating_files", "failed")


@dataclass
class FakeFineTuning:
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    contents: dict[str, bytes] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    plans: collections.deque[tuple[str, ...]] = field(default_factory=collections.deque)
    _steps: dict[str, collections.deque[str]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def then(self, *statuses: str) -> FakeFineTuning:
        """The statuses the next job created goes through, one per retrieval."""
        self.plans.append(statuses)
        return self

    async def upload(self, request: Request) -> Response:
        form = await request.form()
        upload = form["file"]
        assert not isinstance(upload, str)
        content = await upload.read()
        file_id = f"file-{next(self._ids)}"
        self.files[file_id] = {"id": file_id, "object": "file", "bytes": len(content), "created_at": 1_700_000_000,
                               "filename": upload.filename, "purpose": form["purpose"], "status": "processed"}
        self.contents[file_id] = content
        return JSONResponse(self.files[file_id])

    async def create(self, request: Request) -> Response:
        body = await request.json()
        for key in ("training_file", "validation_file"):
            if body.get(key) is not None and body[key] not in self.files:
                return JSONResponse({"error": {"message": f"no file {body[key]}", "type": "invalid_request_error",
                                               "param": key, "code": None}}, status_code=400)
        job_id = f"ftjob-{next(self._ids)}"
        self._steps[job_id] = collections.deque(self.plans.popleft() if self.plans else SUCCEEDED)
        self.jobs[job_id] = {
            "id": job_id, "object": "fine_tuning.job", "created_at": 1_700_000_000, "model": body["model"],
            "training_file": body["training_file"], "validation_file": body.get("validation_file"),
            "hyperparameters": {"n_epochs": (body.get("hyperparameters") or {}).get("n_epochs", "auto"),
                                "batch_size": "auto", "learning_rate_multiplier": "auto"},
            "status": "validating_files", "fine_tuned_model": None, "finished_at": None, "trained_tokens": None,
            "error": None, "organization_id": "org-test", "result_files": [], "seed": 7, "suffix": body.get("suffix")}
        return JSONResponse(self.jobs[job_id])

    def _job(self, request: Request) -> dict[str, Any] | None:
        return self.jobs.get(request.path_params["job"])

    async def retrieve(self, request: Request) -> Response:
        job = self._job(request)
        if job is None:
            return JSONResponse({"error": {"message": "no such job", "type": "invalid_request_error"}}, 404)
        steps = self._steps[job["id"]]
        if steps and job["status"] not in ("cancelled",):
            job["status"] = steps.popleft()
            if job["status"] == "succeeded":
                job.update(fine_tuned_model=f"ft:{job['model']}:acme:{job.get('suffix') or 'custom'}:{job['id'][-4:]}",
                           trained_tokens=123_456, finished_at=1_700_003_600)
            elif job["status"] == "failed":
                job.update(error={"code": "invalid_training_file", "message": "line 3: messages must alternate",
                                  "param": "training_file"}, finished_at=1_700_000_100)
        return JSONResponse(job)

    async def events(self, request: Request) -> Response:
        job = self._job(request)
        assert job is not None
        data = [{"id": f"ftevent-{step}", "object": "fine_tuning.job.event", "created_at": 1_700_000_000 + step,
                 "level": "info", "message": f"Step {step}/30: training loss={2.0 / step:.4f}", "type": "metrics",
                 "data": {"step": step, "train_loss": 2.0 / step, "valid_loss": 2.2 / step, "total_steps": 30}}
                for step in (10, 20, 30)] if job["status"] in ("running", "succeeded") else []
        return JSONResponse({"object": "list", "data": list(reversed(data)), "has_more": False})

    async def checkpoints(self, request: Request) -> Response:
        job = self._job(request)
        assert job is not None
        data = [{"id": "ftckpt-1", "object": "fine_tuning.job.checkpoint", "created_at": 1_700_003_000,
                 "fine_tuned_model_checkpoint": f"{job['fine_tuned_model']}:ckpt-step-30",
                 "fine_tuning_job_id": job["id"], "step_number": 30,
                 "metrics": {"step": 30, "train_loss": 0.0667, "valid_loss": 0.0733, "full_valid_loss": 0.08}}
                ] if job["status"] == "succeeded" else []
        return JSONResponse({"object": "list", "data": data, "has_more": False, "first_id": None, "last_id": None})

    async def cancel(self, request: Request) -> Response:
        job = self._job(request)
        assert job is not None
        job["status"] = "cancelled"
        job["finished_at"] = 1_700_000_200
        return JSONResponse(job)

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/files", self.upload, methods=["POST"]),
            Route("/v1/fine_tuning/jobs", self.create, methods=["POST"]),
            Route("/v1/fine_tuning/jobs/{job}", self.retrieve, methods=["GET"]),
            Route("/v1/fine_tuning/jobs/{job}/events", self.events, methods=["GET"]),
            Route("/v1/fine_tuning/jobs/{job}/checkpoints", self.checkpoints, methods=["GET"]),
            Route("/v1/fine_tuning/jobs/{job}/cancel", self.cancel, methods=["POST"]),
        ])
