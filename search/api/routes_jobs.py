"""Jobs: ingest (server paths or uploads), re-tag, and their status (see :mod:`.jobs`)."""

from __future__ import annotations

import uuid
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from assetlens.models.vocab import load_vocabulary
from assetlens.search.api.auth import Reader, Writer, check_scope
from assetlens.search.api.common import api_state, client_of, json_body, media_type, require_json, validated
from assetlens.search.api.errors import ApiError, problems
from assetlens.search.api.jobs import IngestJob, JobRequest, JobRunner, TagJob
from assetlens.search.api.paths import resolve
from assetlens.search.api.schemas import MAX_ID, IngestRequest, JobAccepted, JobOut, TagRequest
from assetlens.search.api.uploads import check_media, display_name, store_upload, unprocessable, upload_folder

router = APIRouter(prefix="/v1", tags=["jobs"])

MAX_FILES = 100

_UPLOAD_SCHEMA = {
    "type": "object",
    "required": ["files"],
    "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}, "maxItems": MAX_FILES},
        "force": {"type": "boolean"},
        "transcribe": {"type": "boolean"},
    },
}


def _jobs(request: Request) -> JobRunner:
    """This server's job runner (503 when the server was built without a worker to run jobs)."""
    jobs = api_state(request).jobs
    if not jobs.available:
        raise ApiError(
            503, "this server runs no ingest or tag jobs (serve it with `assetlens serve`)", "unavailable",
            title="Jobs unavailable",
        )  # fmt: skip
    return jobs


async def _submit(request: Request, job: JobRequest) -> int:
    return await run_in_threadpool(_jobs(request).submit, job)


def _truthy(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on")


@router.post(
    "/ingest",
    status_code=202,
    response_model=JobAccepted,
    responses=problems(404, 415),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/IngestRequest"}},
                "multipart/form-data": {"schema": _UPLOAD_SCHEMA},
            },
        }
    },
)
async def ingest(request: Request, principal: Writer) -> Any:
    """Ingest files, as a background job (poll ``/v1/jobs/{job_id}``).

    * JSON ``{"paths": [...]}`` (``admin`` scope): files or folders on the server, each inside a
      library root (``ASSETLENS_API_ROOTS``); relative paths are looked up in the roots. Anything
      leading elsewhere (``..``, symlinks, encoded or look-alike characters) is refused (403).
    * Multipart ``files`` (``write`` scope): stored under the data dir with generated names, then
      ingested; each must be an image, video or audio file (422) within the size limit (413).
    """
    state = api_state(request)
    _jobs(request)  # before any upload is stored
    content_type = media_type(request)
    if content_type == "multipart/form-data":
        return await _ingest_uploads(request)
    require_json(content_type, 'send JSON ({"paths": [...]}) or multipart file uploads')
    body: IngestRequest = validated(IngestRequest, await json_body(request), "body")
    check_scope(principal, "admin")
    roots, client = state.settings.roots, client_of(request)
    paths = await run_in_threadpool(lambda: [str(resolve(p, roots, client)) for p in body.paths])
    job = IngestJob(
        tuple(dict.fromkeys(paths)), force=body.force, prune=body.prune, transcribe=body.transcribe
    )
    job_id = await _submit(request, job)
    return {"job_id": job_id, "status": "queued", "uploads": None}


async def _ingest_uploads(request: Request) -> dict[str, Any]:
    state = api_state(request)
    limit = state.settings.max_upload_bytes
    folder = upload_folder(state.data_dir) / uuid.uuid4().hex[:12]  # one folder per request
    stored: dict[str, str] = {}
    try:
        async with request.form(max_files=MAX_FILES, max_fields=10, max_part_size=64 * 1024) as form:
            uploads = [
                v for k, v in form.multi_items() if k in ("files", "file") and isinstance(v, UploadFile)
            ]
            if not uploads:
                raise unprocessable("send the files as multipart file fields named 'files'")
            options = {k: v for k, v in form.multi_items() if isinstance(v, str)}
            for upload in uploads:
                saved = await store_upload(upload, folder, limit)
                stored[str(saved)] = display_name(upload.filename)
        for name_on_disk, name in stored.items():
            await run_in_threadpool(
                check_media, FilePath(name_on_disk), name or "upload", state.settings.max_pixels
            )
    except BaseException:
        for name_on_disk in stored:
            FilePath(name_on_disk).unlink(missing_ok=True)
        raise
    job = IngestJob(
        tuple(stored),
        force=_truthy(options.get("force")),
        transcribe=not options.get("transcribe") or _truthy(options.get("transcribe")),
        uploads=tuple(stored.items()),
    )
    job_id = await _submit(request, job)
    return {"job_id": job_id, "status": "queued", "uploads": {name: path for path, name in stored.items()}}


@router.post("/tag", status_code=202, response_model=JobAccepted, responses=problems())
async def retag(body: TagRequest, request: Request, _: Writer) -> Any:
    """Re-tag every asset from its stored vectors (no file is read), as a background job.

    ``vocab`` is a vocabulary file's text (tags, synonyms, parents) added to the default one; it
    is kept for later ingests, as with ``assetlens tag --vocab``.
    """
    state = api_state(request)
    _jobs(request)
    vocab_file = None
    if body.vocab is not None and body.vocab.strip():
        vocab_file = state.data_dir / "api" / f"vocab-{uuid.uuid4().hex}.txt"
        vocab_file.parent.mkdir(parents=True, exist_ok=True)
        vocab_file.write_text(body.vocab, encoding="utf-8")
        try:  # loaded as the job will load it (with the default vocabulary): errors are 422 now
            await run_in_threadpool(load_vocabulary, vocab_file)
        except BaseException:
            vocab_file.unlink(missing_ok=True)
            raise
    job_id = await _submit(request, TagJob(vocab_file))
    return {"job_id": job_id, "status": "queued", "uploads": None}


@router.get("/jobs/{job_id}", response_model=JobOut, responses=problems(404))
async def get_job(job_id: Annotated[int, Path(ge=1, le=MAX_ID)], request: Request, _: Reader) -> Any:
    """A job's status, counts and failures (API jobs and any CLI run: ingest, transcribe...)."""
    doc = await run_in_threadpool(api_state(request).jobs.describe, job_id)
    if doc is None:
        raise ApiError(404, f"no job with id {job_id}", "not-found", title="No such job")
    return doc
