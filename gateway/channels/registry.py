"""Which channels exist, where their queues are, and which of them a process runs.

The runner asks it for the channel workers of the lanes a process serves. Adding a channel is
a module behind ``Channel`` and an entry here.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from gateway.channels.queues import ChannelQueues
from gateway.channels.worker import ChannelWorker, Lane
from gateway.mail.sender import EmailSender
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.sms.sender import SmsSender
from gateway.store.keys import Keys
from gateway.store.notices import NoticeStore
from gateway.voice.caller import VoiceCaller
from gateway.voice.progress import CallProgressStore


@dataclass(frozen=True, slots=True)
class ChannelRegistry:
    settings: Settings
    keys: Keys

    def streams(self, channel: str) -> list[dict[Lane, str]]:
        """Per store lane, the queue (Redis Stream) of each lane the channel serves."""
        return ChannelQueues(self.keys).every_lane(channel)

    def workers(
        self,
        redis: aioredis.Redis,
        store: NoticeStore,
        metrics: Metrics,
        consumer: str,
        lanes: frozenset[Lane],
    ) -> dict[str, ChannelWorker]:
        """The channel workers of a process serving ``lanes``, by name.

        SMS: one bind per SMPP link that carries one of the process's lanes (``sms:<link>``;
        a second carrier is a settings entry, ``GATEWAY_SMPP_LINKS``). Voice: where the
        priority lane is served (it holds the FastAGI server), for both voice lanes. Email:
        where the bulk lane is.
        """
        s = self.settings
        out: dict[str, ChannelWorker] = {}
        by_link: dict[str, set[Lane]] = {}
        links = {link.name: link for link in s.smpp.links()}
        for lane, link in s.smpp.links_for(frozenset(lanes)).items():
            by_link.setdefault(link.name, set()).add(Lane(lane))
        for name, link_lanes in by_link.items():
            sms = SmsSender(
                redis,
                self.keys,
                store,
                s.smpp,
                s.worker,
                metrics,
                consumer,
                links[name],
                frozenset(link_lanes),
                s.smpp_throttle,
            )
            streams = self._lanes("sms", frozenset(link_lanes))
            out[sms.name] = self._worker(sms, streams, redis, store, consumer, sms.ack_interval)
        if Lane.PRIORITY in lanes and s.voice.voice_enabled:
            # Its store also prints each step of a call (the local stack's terminal).
            progress = CallProgressStore(redis, self.keys)
            voice = VoiceCaller(redis, self.keys, progress, s, consumer, s.voice.voice_channel)
            out["voice"] = self._worker(voice, self.streams("voice"), redis, store, consumer)
        if Lane.BULK in lanes:
            email = EmailSender(store, s.smtp)
            out["email"] = self._worker(email, self.streams("email"), redis, store, consumer)
        return out

    def _lanes(self, channel: str, lanes: frozenset[Lane]) -> list[dict[Lane, str]]:
        return [
            {lane: q for lane, q in slot.items() if lane in lanes} for slot in self.streams(channel)
        ]

    def _worker(
        self,
        channel: SmsSender | VoiceCaller | EmailSender,
        streams: list[dict[Lane, str]],
        redis: aioredis.Redis,
        store: NoticeStore,
        consumer: str,
        ack_interval: float = 0.005,
    ) -> ChannelWorker:
        return ChannelWorker(
            channel, streams, redis, self.keys, store, self.settings.worker, consumer, ack_interval
        )
