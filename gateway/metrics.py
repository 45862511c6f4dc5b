"""Prometheus metrics, in a registry owned by the process (no module-level globals)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.core.figures import labels_of

_FIGURE_FAMILIES = {
    "parking": ("gateway_parking", "Parking notices and what followed them", ["measure"]),
    "accident": (
        "gateway_accident_alerts",
        "Accident alerts and their replies, per accident type",
        ["accident_type", "measure"],
    ),
    "reminder": (
        "gateway_reminders",
        "Reminder notices per template and channel",
        ["template", "channel", "measure"],
    ),
}


class FigureCollector(Collector):
    """The /v1/stats figures as counters. Their totals live in Redis, written by the same
    script calls that change statuses, so they are gateway-wide: every process reports the
    same values (aggregate with max, not sum) and they survive restarts."""

    def __init__(self) -> None:
        self.totals: Mapping[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        families = {
            name: CounterMetricFamily(metric, doc, labels=labels)
            for name, (metric, doc, labels) in _FIGURE_FAMILIES.items()
        }
        for name, value in sorted(self.totals.items()):
            found = labels_of(name)
            if found is not None:
                families[found[0]].add_metric(list(found[1]), value)
        yield from families.values()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "gateway_http_requests_total", "API requests", ["route", "status"], registry=r
        )
        self.http_latency = Histogram(
            "gateway_http_request_seconds",
            "API request latency",
            ["route"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        )
        self.notices_created = Counter(
            "gateway_notices_created_total", "Notices accepted", ["kind", "channel"], registry=r
        )
        self.sms_submitted = Counter(
            "gateway_sms_parts_submitted_total", "SMS parts accepted by the SMSC", registry=r
        )
        self.sms_throttled = Counter(
            "gateway_sms_parts_throttled_total",
            "Submits the SMSC throttled, by link, SMPP status and lane",
            ["link", "status", "lane"],
            registry=r,
        )
        self.smpp_link_rate = Gauge(
            "gateway_smpp_link_rate_tps",
            "A link's send rate after throttling",
            ["link"],
            registry=r,
        )
        self.smpp_rate_cuts = Counter(
            "gateway_smpp_rate_cuts_total",
            "Cuts of a link's rate on throttling",
            ["link"],
            registry=r,
        )
        self.sms_late_answers = Counter(
            "gateway_sms_late_answers_total",
            "submit_sm_resp after the response timeout, reconciled (no second submit)",
            ["link"],
            registry=r,
        )
        self.sms_resent = Counter(
            "gateway_sms_parts_resent_total",
            "Parts submitted again that the SMSC may already have (possible duplicates): "
            "session_ended (written, unanswered when the session ended), taken_over (a dead "
            "worker's notice without its carrier id), id_not_stored (a failed write)",
            ["link", "reason"],
            registry=r,
        )
        self.sms_receipts_unmatched = Counter(
            "gateway_sms_receipts_unmatched_total",
            "Receipts whose carrier id matched no part in time",
            registry=r,
        )
        self.sms_rejected = Counter(
            "gateway_sms_rejected_total", "Notices refused by the SMSC", registry=r
        )
        self.sms_receipts = Counter(
            "gateway_sms_receipts_total", "Final delivery receipts received", registry=r
        )
        self.sms_mo = Counter("gateway_sms_mo_total", "Mobile-originated SMS received", registry=r)
        self.smpp_bound = Gauge("gateway_smpp_bound", "1 while the SMPP link is bound", registry=r)
        self.smpp_binds = Counter("gateway_smpp_binds_total", "Successful SMPP binds", registry=r)
        self.webhooks = Counter(
            "gateway_webhooks_total", "Webhook delivery attempts", ["outcome"], registry=r
        )
        self.figures = FigureCollector()
        r.register(self.figures)
