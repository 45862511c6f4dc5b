"""Which queue (Redis Stream) carries each channel's lanes: asked by the API and the job
dispatcher to queue a notice, and by the channel registry to read it.

Queues are kept once per store lane (``Keys.lanes``; a hash slot each, docs/redis-cluster.md):
a notice goes to its own store lane's queue, and a worker reads every store lane's."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.channels.worker import Lane
from gateway.store.keys import Keys

CHANNELS = ("sms", "voice", "email")


@dataclass(frozen=True, slots=True)
class ChannelQueues:
    keys: Keys

    def streams(self, channel: str, store_lane: int) -> dict[Lane, str]:
        """The queue of each lane the channel serves (email: bulk only) in ``store_lane``."""
        k, i = self.keys, store_lane
        match channel:
            case "sms":
                return {Lane.PRIORITY: k.sms_queue(i), Lane.BULK: k.sms_bulk_queue(i)}
            case "voice":
                return {Lane.PRIORITY: k.voice_queue(i), Lane.BULK: k.voice_bulk_queue(i)}
            case "email":
                return {Lane.BULK: k.email_queue(i)}
        raise KeyError(channel)

    def every_lane(self, channel: str) -> list[dict[Lane, str]]:
        """The channel's queues in each store lane: what its worker reads."""
        return [self.streams(channel, i) for i in self.keys.each_lane()]

    def queue(self, channel: str, notice_id: str, lane: Lane = Lane.PRIORITY) -> str:
        """Where a notice for ``channel`` goes on ``lane`` (a channel with one lane: that):
        the queue of the notice's store lane (written in its id)."""
        return self.queue_in(channel, self.keys.notice_lane(notice_id), lane)

    def queue_in(self, channel: str, store_lane: int, lane: Lane = Lane.PRIORITY) -> str:
        """The queue for ``channel`` on ``lane`` in the store lane ``store_lane``."""
        streams = self.streams(channel, store_lane)
        return streams.get(lane) or next(iter(streams.values()))
