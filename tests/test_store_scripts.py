"""The script files themselves: every one declares its keys and every wrapper passes exactly
those; the status tables are the enum's; the webhook envelopes the Lua builds are the ones
the Python builder makes."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.core.records import Notice, QueueEntry
from gateway.core.replies import Reply
from gateway.core.statuses import (
    HARD_STATUSES,
    JOB_FINAL_STATUSES,
    VOICE_JOB_FINAL_STATUSES,
    NoticeStatus,
)
from gateway.core.webhooks import OutboxEntry, webhook_envelope
from gateway.receipts.dispatcher import WebhookDispatcher
from gateway.store import scripts
from gateway.store.accident_replies import AccidentReplies
from gateway.store.binding_requests import Actor, BindingRequestStore
from gateway.store.follow_ups import FollowUpStore
from gateway.store.job_scripts import Admission, AdmitRow, JobScripts, Progress
from gateway.store.keys import Keys
from gateway.store.notice_scripts import Fallback
from gateway.store.notices import NoticeStore, new_notice_id
from gateway.store.plate_calls import PlateCalls
from gateway.store.ratelimit import AdaptiveRate, Aimd, Gcra
from gateway.store.replicas import NO_WAIT
from gateway.store.streams import ClaimOwn
from gateway.store.unmatched_receipts import UnmatchedReceipts
from gateway.store.voice_scripts import VoiceScripts

AT = "2026-11-28T08:00:00.000Z"


def test_every_script_names_its_keys_and_argv_and_indexes_neither_by_hand() -> None:
    names = scripts.script_names()
    assert len(names) == 29
    for name in names:
        source = scripts.source_of(f"{name}.lua")
        header = scripts.parse_header(source)
        assert header.keys, name
        assert re.search(r"^-- ARGV: ", source, re.M), name
        # Positional KEYS only for a declared variable tail; ARGV never; no key built from
        # a prefix (every in-script name comes from a --!keys builder).
        assert "ARGV[" not in source, name
        assert ("KEYS[" in source) == bool(header.more_keys), name
        assert not re.search(r"\.\. ?'[:{]", source), name
        for word in set(re.findall(r"\bK\.(\w+)", source)):
            assert word in header.keys, (name, word)
        for word in set(re.findall(r"\bA\.(\w+)", source)):
            assert word in header.argv, (name, word)


async def test_the_rendered_status_tables_are_the_enums(r: aioredis.Redis) -> None:
    probe = (
        "-- KEYS: webhooks, jobs_active, events\n-- ARGV: none\n--!include transition.lua\n"
        "return cjson.encode({RANK=RANK, HARD=HARD, JOB_FINAL=JOB_FINAL,"
        " VOICE_FINAL=VOICE_FINAL})\n"
    )
    tables = json.loads(await r.eval(scripts.render_text(probe, "gw"), 3, "a", "b", "c"))
    assert tables["RANK"] == {s.value: s.rank for s in NoticeStatus}
    assert set(tables["HARD"]) == {s.value for s in HARD_STATUSES}
    assert set(tables["JOB_FINAL"]) == {s.value for s in JOB_FINAL_STATUSES}
    assert set(tables["VOICE_FINAL"]) == {s.value for s in VOICE_JOB_FINAL_STATUSES}
    # The values the scripts had before the enum existed.
    assert set(tables["HARD"]) == {
        "delivered", "undeliverable", "expired", "rejected", "acknowledged", "disputed",
        "no_input", "sent", "cancelled", "listened", "unreachable", "moved",
    }  # fmt: skip
    assert {s for s, n in tables["RANK"].items() if n < 3} == {
        "queued",
        "submitted",
        "dialing",
        "answered",
    }


async def _a_receipt_moved_between_lanes(r: aioredis.Redis, prefix: str) -> None:
    """With three lanes: a receipt parked in its carrier id's lane before its notice's lane
    was known, moved there when the carrier id came (``drop_parked_receipt``)."""
    k = Keys(prefix, 3)
    notices = NoticeStore(r, k)
    mid = "m-moved"
    lane = (k.carrier_lane(mid) + 1) % 3
    n = Notice(id=new_notice_id(k, lane), kind="message", channel="sms", to="1", created_at=AT)
    await notices.create(n, k.sms_queue(lane))
    writes = notices.sms_writes(60, 60, 0.001)
    runs = [asyncio.create_task(b.run()) for b in writes.batchers]
    assert await writes.receipt(mid, [mid], "", "s", NoticeStatus.DELIVERED, AT, "D", "0", "") == (
        "early"
    )
    assert await writes.submitted(n.id, 0, 1, mid, AT, scope="s", form=mid, to_tail="") == 1
    await writes.close()
    await asyncio.gather(*runs)


async def test_every_wrapper_passes_exactly_the_keys_its_script_declares(
    r: aioredis.Redis, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each call is checked against the header (``ScriptCallError`` otherwise); this runs
    every wrapper once and sees that together they call every script."""
    called: list[tuple[str, tuple[str, ...]]] = []
    real = scripts.Script.__call__

    async def spy(
        self: scripts.Script, keys: Mapping[str, str], args: Mapping[str, Any], **kw: Any
    ) -> Any:
        called.append((self.name, tuple(keys)))
        return await real(self, keys, args, **kw)

    monkeypatch.setattr(scripts.Script, "__call__", spy)
    k = Keys(prefix)
    notices = NoticeStore(r, k)
    n = Notice(
        id="ntc_w1",
        kind="parking_notice",
        channel="voice",
        to="13800000001",
        created_at=AT,
        plate="云A1",
        key_id="k",
    )
    await notices.create(n, k.voice_queue(0), idempotency_key="i1", warnings_window_ms=1000)
    await notices.transition("ntc_w1", NoticeStatus.DIALING, {"attempt": 1})
    fb = Fallback.of(n.fallback_to("sms", id="ntc_w2", at=AT), k.sms_queue(0))
    await notices.outcome("ntc_w1", NoticeStatus.BUSY, {}, fallback=fb)
    writes = notices.sms_writes(60, 60, 0.001)
    (batcher,) = writes.batchers
    writes.submitted("ntc_w2", 0, 1, "m1", AT, scope="smsc", form="m1", to_tail="")
    writes.receipt("m1", ["m1"], "", "smsc", NoticeStatus.DELIVERED, AT, "DELIVRD", "000", "")
    await writes.close()
    await batcher.run()
    await _a_receipt_moved_between_lanes(r, prefix)
    jobs = JobScripts(r, k)
    admission = Admission(
        "job_w", AT, "20261128", 60, 600, 0, 0, True, "k", "key", "t", "1", "", "sms"
    )  # fmt: skip
    await jobs.admit_rows(
        admission=admission,
        lane=0,
        prev=-1,
        rows=[AdmitRow(0, "ntc_w3", "13800000002", "8613800000002", "x", 1)],
        queue=k.sms_bulk_queue(0),
    )
    (progress,) = await jobs.progress(["job_w"])
    await jobs.finish(job_id="job_w", progress=progress, at=AT)
    await jobs.advance(job_id="job_w", cursor=1)
    await jobs.open(job_id="job_w", total=1, bad_rows=0, at=AT, retention_s=60)
    await jobs.cancel(job_id="job_w", at=AT)
    await jobs.release_lease(job_id="job_w", holder="me")
    await notices.scripts.expire_unreceipted(lane=0, now_ms=0, at=AT)
    voice = VoiceScripts(r, k)
    await voice.begin_call(
        notice_id="ntc_w1", slot="s", at=AT, ttl_ms=100, max_calls=1, max_attempts=2
    )
    await voice.move_due_retries(now_ms=0)
    await voice.record_suspected_clone(notice_id="ntc_w1", at=AT, recipients=[])
    assert await PlateCalls(r, k).count(plate="云A1", notice_id="ntc_w1", max_calls=1) == 0
    await Gcra(r).take(k.rate("x"), 10, 1)
    await AdaptiveRate(r, k, "link", 10, Aimd(1, 1)).acquire()
    await UnmatchedReceipts(r, k).report(60, 600)
    await FollowUpStore(r, k).record(
        notice_id="ntc_w1", plate="云A1", key_id="k", admin=False, outcome="moved", at=AT,
        now_ms=0, window_ms=1000, replay_mark="", detail={}, audit={"event": "follow_up"},
    )  # fmt: skip
    await FollowUpStore(r, k).count_missing(now_ms=0)
    await AccidentReplies(r, k).record(
        national="13800000001", reply=Reply.SELF_SETTLED, text="1", from_masked="138****0001",
        mo_id="1-0", mo_ms=1, window_ms=1000, at=AT, recipients=[],
    )  # fmt: skip
    requests = BindingRequestStore(r, k, "pepper")
    actor = Actor("api", key_id="k")
    await requests.create(
        ref="R1",
        code="123456",
        plate="云A1",
        phone="13800000001",
        email="",
        actor=actor,
        ttl_seconds=60,
        daily_limit=3,
    )
    await requests.verify("R1", "000000", actor, confirm=False, max_attempts=3)
    await requests.close("R1", "cancelled", actor, "test")
    await requests.remove_binding("云A1", "13800000001", actor, "R1")
    dispatcher = WebhookDispatcher.__new__(WebhookDispatcher)
    dispatcher.keys, dispatcher._due = k, scripts.Script(r, "webhook_due", k)
    await dispatcher.move_due(now_ms=0)
    assert await ClaimOwn(r, k)(NO_WAIT, [k.sms_queue(0)], "g", "me", [[]]) == [[]]
    assert {name for name, _ in called} == set(scripts.script_names())
    for name, keys in called:
        assert keys == scripts.parse_header(scripts.source_of(f"{name}.lua")).keys


async def test_a_call_with_other_keys_than_the_header_names_is_refused(
    r: aioredis.Redis, prefix: str
) -> None:
    slot = scripts.Script(r, "gcra", Keys(prefix))
    with pytest.raises(scripts.ScriptCallError):
        await slot(keys={"limit": "x"}, args={"rate_per_s": 1, "burst": 1, "want": 1})
    with pytest.raises(scripts.ScriptCallError):
        await slot(keys={"limiter": "x"}, args={"burst": 1, "rate_per_s": 1, "want": 1})


async def test_the_lua_envelopes_are_the_python_builders(r: aioredis.Redis, prefix: str) -> None:
    k = Keys(prefix)
    store = NoticeStore(r, k)
    n = Notice(
        id="ntc_e1", kind="reminder", channel="sms", to="13800000001", created_at=AT,
        key_id="k1", callback_url="https://cb.example/h", job="job_e", plate="云A1",
    )  # fmt: skip
    await store.create(n, k.sms_queue(0))
    job = {"status": "running", "total": 1, "channel": "sms", "key_id": "k2"}
    await r.hset(k.job("job_e"), mapping={**job, "callback_url": "https://cb.example/j"})
    await r.hset(k.job_counts("job_e"), "queued", 1)
    await store.transition("ntc_e1", NoticeStatus.REJECTED, {"smpp_status": "ESME_RINVDSTADR"})
    jobs = JobScripts(r, k)
    (progress,) = await jobs.progress(["job_e"])
    assert progress == Progress(1, {"rejected": 1})
    assert await jobs.finish(job_id="job_e", progress=progress, at=AT) == "finished"
    clones = VoiceScripts(r, k)
    await clones.record_suspected_clone(
        notice_id="ntc_e1", at=AT, recipients=[("cc", "https://cc.example/e")]
    )
    # The notice's transition counted it in its job's progress; the job's end follows.
    got = [f for _, f in await r.xrange(k.webhook_queue(0))]
    at = json.loads(got[0]["body"])["at"]
    behind = [{"id": "ntc_e1", "at": AT, "location": ""}]  # the notices behind the report
    report = {"plate": "云A1", "count": 1, "last_notice": "ntc_e1", "last_at": AT, "location": ""}
    report["notices"] = behind
    envelopes = [
        (
            webhook_envelope(
                id="ntc_e1", kind="reminder", channel="sms", status="rejected", at=at,
                detail={"smpp_status": "ESME_RINVDSTADR"},
            ),
            "k1", "https://cb.example/h",
        ),
        (
            webhook_envelope(
                id="job_e", kind="reminder_job", channel="sms", status="finished", at=AT,
                detail={"total": 1, "counts": {"rejected": 1}},
            ),
            "k2", "https://cb.example/j",
        ),
        (
            webhook_envelope(id="ntc_e1", kind="suspected_cloned_plate", at=AT, detail=report),
            "cc", "https://cc.example/e",
        ),
    ]  # fmt: skip
    assert len(got) == len(envelopes)
    for entry, (envelope, key_id, url) in zip(got, envelopes, strict=True):
        want = OutboxEntry.of(envelope, key_id=key_id, url=url).fields()
        assert json.loads(entry.pop("body")) == json.loads(want.pop("body"))
        assert entry == want


def test_a_queue_entry_carries_what_its_channel_sends() -> None:
    sms = Notice(id="n1", kind="message", channel="sms", to="13800000001", created_at=AT, text="t")
    assert QueueEntry.for_notice(sms).fields() == {"id": "n1", "to": "8613800000001", "text": "t"}
    voice = Notice(id="n2", kind="parking_notice", channel="voice", to="13800000001", created_at=AT)
    assert QueueEntry.for_notice(voice).fields() == {"id": "n2"}
    assert Notice.from_hash(sms.to_hash()) == sms
