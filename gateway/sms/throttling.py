"""The gateway's answer to an SMSC that throttles (ESME_RTHROTTLED, ESME_RMSGQFUL).

The link's shared rate is cut (``AdaptiveRate``, AIMD) and only the throttled part waits its
back-off; everything else keeps going at the slower rate, priority parts first. Never a
link-wide stop: the library default this replaces stopped all sending for minutes.
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis

from gateway.core.phones import mask
from gateway.metrics import Metrics
from gateway.settings import SmppLink, SmppSettings, SmppThrottleSettings
from gateway.sms.in_flight import Part
from gateway.store.keys import Keys
from gateway.store.ratelimit import AdaptiveRate, Aimd

log = logging.getLogger(__name__)


def link_rate(
    redis: aioredis.Redis, keys: Keys, link: SmppLink, throttle: SmppThrottleSettings
) -> AdaptiveRate:
    """The rate every process sending on ``link`` shares (by account and SMSC address)."""
    aimd = Aimd(
        floor=link.tps * throttle.smpp_throttle_floor,
        increase=link.tps * throttle.smpp_throttle_increase,
        factor=throttle.smpp_throttle_decrease,
        hold=throttle.smpp_throttle_hold,
    )
    name = f"smpp:{link.system_id}@{link.host}:{link.port}"
    return AdaptiveRate(redis, keys, name, link.tps, aimd)


class Throttling:
    def __init__(
        self, link: SmppLink, smpp: SmppSettings, rate: AdaptiveRate, metrics: Metrics
    ) -> None:
        self.link = link
        self.smpp = smpp
        self.rate = rate
        self.metrics = metrics
        self._cuts_seen = 0

    def backoff(self, attempt: int) -> float:
        """The part's wait before its next submit: doubling per throttled attempt, capped."""
        first, cap = self.smpp.smpp_throttle_backoff, self.smpp.smpp_throttle_backoff_max
        return float(min(first * 2 ** max(attempt - 1, 0), cap))

    def throttled(self, part: Part, status: str) -> float:
        """Slow the link, count and log the throttle; the part's back-off."""
        self.rate.throttled()
        delay = self.backoff(part.attempt)
        lane = "bulk" if part.bulk else "priority"
        self.metrics.sms_throttled.labels(self.link.name, status, lane).inc()
        log.info(
            "SMSC throttled %s to %s (%s, attempt %d, %s lane): retried in %.2fs, the rest "
            "goes on; link %s at %.0f of %.0f tps",
            part.label,
            mask(part.to),
            status,
            part.attempt,
            lane,
            delay,
            self.link.name,
            self.rate.current,
            self.link.tps,
        )
        return delay

    def observe(self) -> None:
        """Publish the link's current rate (housekeeping), and log the cuts since last time."""
        self.metrics.smpp_link_rate.labels(self.link.name).set(self.rate.current)
        cuts = self.rate.cuts - self._cuts_seen
        if cuts:
            self._cuts_seen = self.rate.cuts
            self.metrics.smpp_rate_cuts.labels(self.link.name).inc(cuts)
            log.warning(
                "SMPP link %s throttled: its rate cut %d time(s), now %.0f of %.0f tps",
                self.link.name,
                cuts,
                self.rate.current,
                self.link.tps,
            )
