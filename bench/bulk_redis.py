"""The bulk benchmark's Redis: one private redis-server, or a Redis Cluster of three primaries
and three replicas (``tests/redis_cluster.py``), and what the benchmark reads from it: command
counts (INFO commandstats, summed over the primaries), keys and CPU per node."""

from __future__ import annotations

import contextlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil
import redis.asyncio as redis
from redis.crc import key_slot

from bench.sms_path import free_port, start_redis, wait_port
from gateway.settings import RedisSettings
from gateway.store.keys import Keys
from tests.redis_cluster import ClusterSet


@dataclass(frozen=True)
class NodeStats:
    port: int
    role: str  # "master" or "slave", as INFO replication says
    calls: dict[str, int]  # calls per command so far (scripts' inner calls included)
    keys: int


class BenchRedis:
    """``single``: one redis-server; ``cluster``: a 3 + 3 cluster. ``url`` is the gateway's
    ``GATEWAY_REDIS_URL``; ``stop`` may be called whatever ``start`` got to."""

    def __init__(self, mode: str, directory: Path) -> None:
        self.mode = mode
        self.directory = directory
        self.cluster: ClusterSet | None = None
        self.single: subprocess.Popen[bytes] | None = None
        self.single_port = free_port()
        if mode == "cluster":
            self.cluster = ClusterSet()

    @property
    def url(self) -> str:
        if self.cluster is not None:
            return self.cluster.url
        return f"redis://127.0.0.1:{self.single_port}/0"

    def ports(self) -> list[int]:
        if self.cluster is not None:
            return [n.port for n in self.cluster.nodes]
        return [self.single_port]

    def _procs(self) -> dict[int, subprocess.Popen[bytes] | None]:
        if self.cluster is not None:
            return {n.port: n.proc for n in self.cluster.nodes}
        return {self.single_port: self.single}

    async def start(self) -> None:
        if self.cluster is not None:
            self.cluster.start()  # blocking: nodes up, joined, every node agrees it is ok
        else:
            self.single = start_redis(self.single_port, self.directory)
            await wait_port(self.single_port)

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.close()
        elif self.single is not None:
            self.single.terminate()
            try:
                self.single.wait(15)
            except subprocess.TimeoutExpired:
                self.single.kill()

    def describe(self) -> str:
        # What the gateway's processes will make of GATEWAY_REDIS_WAIT_REPLICAS here.
        waits = RedisSettings(redis_url=self.url).replicas_to_wait()
        wait = f"acknowledgements wait for {waits} replica{'s' * (waits != 1)}"
        if self.cluster is None:
            return f"redis: single, one redis-server on :{self.single_port}; {wait}"
        return (
            f"redis: cluster, {self.cluster.primaries} primaries + "
            f"{len(self.cluster.nodes) - self.cluster.primaries} replicas on "
            + ", ".join(f":{p}" for p in self.ports())
            + f"; {wait}"
        )

    def cpu_seconds(self) -> dict[int, float]:
        """User + system CPU seconds of each redis-server so far, by port."""
        out = {}
        for port, proc in self._procs().items():
            if proc is None:
                continue
            with contextlib.suppress(psutil.NoSuchProcess):
                t = psutil.Process(proc.pid).cpu_times()
                out[port] = t.user + t.system
        return out

    async def stats(self) -> list[NodeStats]:
        """Every node's command counts, role and key count, asked of each node itself."""
        out = []
        for port in self.ports():
            client = redis.Redis(port=port)
            try:
                commands = await client.info("commandstats")
                role = (await client.info("replication"))["role"]
                keys = int(await client.dbsize())
            finally:
                await client.aclose()
            calls = {n.removeprefix("cmdstat_"): int(v["calls"]) for n, v in commands.items()}
            out.append(NodeStats(port, str(role), calls, keys))
        return out

    async def lane_owner(self) -> str:
        """Which node holds lane 0 (every key a gateway script touches): its slot's primary."""
        tag = Keys().lane_tag(0)
        slot = key_slot(tag.encode())
        if self.cluster is None:
            return f"lane 0 ({tag}) on :{self.single_port}, the only node"
        client = redis.Redis(port=self.cluster.nodes[0].port, decode_responses=True)
        try:
            ranges = await client.execute_command("CLUSTER", "SLOTS")
        finally:
            await client.aclose()
        for row in ranges:
            start, end, primary = int(row[0]), int(row[1]), row[2]
            if start <= slot <= end:
                return f"lane 0 ({tag}, slot {slot}) on :{int(primary[1])}"
        return f"lane 0 ({tag}, slot {slot}) on no node (slot map incomplete)"


def primaries_calls(stats: list[NodeStats]) -> dict[str, int]:
    """Calls per command over every primary: what the gateway sent (replicas replay the
    primaries' writes, which would count them twice)."""
    out: dict[str, int] = {}
    for node in stats:
        if node.role != "master":
            continue
        for name, calls in node.calls.items():
            out[name] = out.get(name, 0) + calls
    return out


def node_lines(
    start: list[NodeStats], end: list[NodeStats], cpu: dict[int, float], delivered: int
) -> list[str]:
    """One line per node: role, commands per delivered message over the window, keys at
    its end, CPU ms per message over the window (``cpu``: the window's seconds by port)."""
    before = {n.port: sum(n.calls.values()) for n in start}
    lines = []
    for node in end:
        calls = (sum(node.calls.values()) - before.get(node.port, 0)) / max(1, delivered)
        role = "primary" if node.role == "master" else "replica"
        lines.append(
            f"redis node :{node.port} {role}: {calls:.1f} calls per message, "
            f"{node.keys:,} keys, CPU {cpu.get(node.port, 0.0) * 1000 / max(1, delivered):.3f} "
            "ms per message"
        )
    return lines
