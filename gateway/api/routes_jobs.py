"""Reminder jobs: create (JSON list or streamed CSV), read progress, cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from gateway.api.auth import CALLER
from gateway.api.body import parse_model, validation_error
from gateway.api.context import CATALOGUE, JOBS, METRICS, SETTINGS
from gateway.api.errors import ApiError
from gateway.api.limits import limited_chunks
from gateway.api.models import JobOptions, ReminderJobIn
from gateway.api.responses import json_response
from gateway.api.routes_notices import _callback
from gateway.core.templates import Template, TemplateError
from gateway.jobs.charsets import UnknownCharset
from gateway.jobs.intake import Intake, NotCsv, TooManyRows
from gateway.store.jobs import new_job_id
from gateway.store.notices import now_iso

JSON_MAX = 32 * 1024 * 1024
CSV_TYPES = ("text/csv", "application/csv", "text/plain")


def _template(request: web.Request, opts: JobOptions) -> Template:
    try:
        template = request.app[CATALOGUE].get(opts.template)
    except TemplateError as exc:
        raise ApiError(422, exc.code, str(exc), details=exc.details) from None
    if opts.channel not in template.channels:
        raise ApiError(
            422,
            "channel_not_supported",
            f"template {template.name} is not for {opts.channel}",
            details={"allowed": list(template.channels)},
        )
    if opts.channel == "voice" and not request.app[SETTINGS].voice.voice_enabled:
        raise ApiError(422, "channel_unavailable", "voice is not enabled on this gateway")
    return template


def _upload(request: web.Request, limit: int, what: str) -> AsyncIterator[bytes]:
    jobs = request.app[SETTINGS].jobs
    return limited_chunks(request, limit, jobs.job_upload_timeout, what)


async def _json_body(request: web.Request) -> ReminderJobIn:
    limit = min(JSON_MAX, request.app[SETTINGS].jobs.job_max_bytes)
    raw = bytearray()
    async for chunk in _upload(request, limit, "a JSON job (upload larger ones as CSV)"):
        raw += chunk
    return parse_model(raw, ReminderJobIn)[1]


async def post_reminder_job(request: web.Request) -> web.Response:
    """Create a job from a JSON recipient list, or from a CSV upload (options in the query)."""
    ctype = request.content_type
    is_csv = ctype in CSV_TYPES
    body: ReminderJobIn | None = None
    if is_csv:
        try:
            opts = JobOptions.model_validate(dict(request.query), strict=False)
        except ValidationError as exc:
            raise validation_error(exc) from None
    elif ctype in ("application/json", ""):
        opts = body = await _json_body(request)
    else:
        raise ApiError(
            415,
            "unsupported_media_type",
            "send recipients as application/json or text/csv; with curl: "
            "-H 'Content-Type: text/csv' --data-binary @file.csv",
            details={"allowed": ["application/json", *CSV_TYPES]},
        )
    template = _template(request, opts)
    key = request[CALLER]
    callback = _callback(opts.callback_url, key)
    settings = request.app[SETTINGS]
    store = request.app[JOBS]
    job_id = new_job_id()
    job = {
        "id": job_id,
        "name": opts.name or "",
        "key_id": key.id,
        "key_name": key.name,
        "template": template.name,
        "template_version": template.version,
        "channel": opts.channel,
        "status": "receiving",
        "window": opts.send_window or settings.general.job_send_window,
        "rate": opts.rate or settings.jobs.job_default_rate,
        "callback_url": callback,
        "created_at": now_iso(),
        "total": 0,
    }
    await store.create(job)
    intake = Intake(store, job_id, template, opts.channel, settings.jobs.job_max_rows)
    try:
        if body is not None:
            await intake.json_list(body.recipients)
        else:
            chunks = _upload(request, settings.jobs.job_max_bytes, "the CSV upload")
            await intake.csv_stream(chunks, request.charset)
    except TemplateError as exc:
        await store.abort(job_id, exc.code)
        raise ApiError(422, exc.code, str(exc), details=exc.details) from None
    except NotCsv as exc:
        await store.abort(job_id, "not_csv")
        raise ApiError(400, "invalid_csv", str(exc)) from None
    except UnknownCharset as exc:
        await store.abort(job_id, "unknown_charset")
        raise ApiError(
            415, "unsupported_charset", f"{exc}; send UTF-8, GB18030 (GBK) or UTF-16"
        ) from None
    except TooManyRows as exc:
        await store.abort(job_id, "too_many_rows")
        raise ApiError(413, "too_many_rows", str(exc)) from None
    except BaseException:
        await store.abort(job_id, "upload_interrupted")
        raise
    if intake.total == 0:
        await store.abort(job_id, "no_valid_rows")
        raise _no_rows(intake, csv=body is None)
    status = await store.open(job_id, intake.total, intake.bad)
    request.app[METRICS].notices_created.labels("reminder_job", opts.channel).inc()
    out: dict[str, Any] = {
        "job_id": job_id,
        "status": status,
        "total": intake.total,
        "bad_rows": intake.bad,
        "bad_rows_sample": intake.bad_sample,
        "links": {"self": f"/v1/reminder-jobs/{job_id}"},
    }
    if opts.channel == "sms":
        out["segments"] = {"total": intake.segments, "max_per_message": intake.max_segments}
    return json_response(out, status=202, headers={"Location": f"/v1/reminder-jobs/{job_id}"})


def _no_rows(intake: Intake, *, csv: bool) -> ApiError:
    """A job with nothing to send is refused rather than accepted and finished empty."""
    if not intake.bad:
        return ApiError(422, "no_recipients", "the upload has a header but no recipient rows")
    hint = (
        '; if the file came from Excel, save it as "CSV UTF-8 (逗号分隔)(*.csv)", or declare '
        "its encoding: Content-Type: text/csv; charset=gbk"
        if csv
        else ""
    )
    return ApiError(
        422,
        "no_valid_rows",
        f"none of the {intake.bad} rows can be sent (first: {intake.bad_sample[0]['error']}){hint}",
        details=intake.bad_sample[:20],
    )


async def _own_job(request: web.Request, progress: bool = True) -> dict[str, Any]:
    job_id = request.match_info["id"]
    job = (
        await request.app[JOBS].get(job_id, progress=progress)
        if job_id.startswith("job_")
        else None
    )
    caller = request[CALLER]
    if job is None or (job["key_id"] != caller.id and caller.role != "admin"):
        raise ApiError(404, "not_found", "no such reminder job")
    return job


def job_view(job: dict[str, Any]) -> dict[str, Any]:
    return {
        "job_id": job["id"],
        "name": job.get("name") or None,
        "status": job["status"],
        "template": job["template"],
        "channel": job["channel"],
        "total": int(job.get("total", 0)),
        "dispatched": int(job.get("cursor", 0)),
        "done": int(job.get("done", 0)),
        "counts": job["counts"],
        "bad_rows": int(job.get("bad_rows", 0)),
        "bad_rows_sample": job["bad_rows_sample"],
        "send_window": job["window"],
        "rate": float(job["rate"]),
        "created_at": job["created_at"],
        "finished_at": job.get("finished_at") or None,
        "cancelled_at": job.get("cancelled_at") or None,
    }


async def get_reminder_job(request: web.Request) -> web.Response:
    """Progress: counts per status, rows dispatched, bad rows by line."""
    return json_response(job_view(await _own_job(request)))


async def cancel_reminder_job(request: web.Request) -> web.Response:
    job = await _own_job(request, progress=False)  # a cancel needs only the job's own lane
    before = await request.app[JOBS].cancel(job["id"])
    if before not in ("running", "waiting_window", "receiving"):
        raise ApiError(409, "job_closed", f"the job is already {before}")
    return json_response(job_view(await _own_job(request)))
