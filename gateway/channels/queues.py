"""Which queue (Redis Stream) carries each channel's lanes: asked by the API and the job
dispatcher to queue a notice, and by the channel registry to read it."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.channels.worker import Lane
from gateway.store.keys import Keys

CHANNELS = ("sms", "voice", "email")


@dataclass(frozen=True, slots=True)
class ChannelQueues:
    keys: Keys

    def streams(self, channel: str) -> dict[Lane, str]:
        """The queue of each lane the channel serves (email: bulk only)."""
        k = self.keys
        match channel:
            case "sms":
                return {Lane.PRIORITY: k.sms_queue, Lane.BULK: k.sms_bulk_queue}
            case "voice":
                return {Lane.PRIORITY: k.voice_queue, Lane.BULK: k.voice_bulk_queue}
            case "email":
                return {Lane.BULK: k.email_queue}
        raise KeyError(channel)

    def queue(self, channel: str, lane: Lane = Lane.PRIORITY) -> str:
        """Where a notice for ``channel`` goes on ``lane`` (a channel with one lane: that)."""
        streams = self.streams(channel)
        return streams.get(lane) or next(iter(streams.values()))
