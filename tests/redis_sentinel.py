"""A real Sentinel set for tests: a primary, one replica and three ``redis-sentinel``s, each on
an ephemeral loopback port with its config and data in a temp folder.

Failure detection is tuned down (a primary silent for 1 s is down) so a failover takes a few
seconds, not the default's half a minute; everything else is Redis's own behaviour.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

SERVICE = "gateway"
DOWN_AFTER_MS = 1000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"{what} did not listen on {port}")


@dataclass
class Node:
    name: str
    port: int
    conf: Path
    sentinel: bool
    proc: subprocess.Popen[bytes] | None = None

    def start(self, replica_of: int | None = None) -> None:
        """``replica_of``: start as that port's replica, whatever the config file says."""
        exe = shutil.which("redis-sentinel" if self.sentinel else "redis-server")
        assert exe, "redis-sentinel is missing: run scripts/setup.sh, which installs it"
        extra = ["--replicaof", "127.0.0.1", str(replica_of)] if replica_of else []
        self.proc = subprocess.Popen(
            [exe, str(self.conf), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_listening(self.port, self.name)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last write; what the replica did not have is gone."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None


@dataclass(frozen=True)
class RedisBackend:
    """Where a gateway's Redis is: ``url`` (one server), plus ``env`` in Sentinel mode."""

    name: str
    url: str
    env: dict[str, str]


class SentinelSet:
    """Primary + replica + 3 sentinels. ``env`` points the gateway at it."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="gw-sentinel-"))
        self.primary = self._data_node("primary", None)
        self.replica = self._data_node("replica", self.primary.port)
        self.sentinels = [self._sentinel(i) for i in range(3)]

    @property
    def env(self) -> dict[str, str]:
        return {
            "GATEWAY_REDIS_SENTINELS": ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels),
            "GATEWAY_REDIS_SERVICE": SERVICE,
            # Only the database number of the URL is used in Sentinel mode.
            "GATEWAY_REDIS_URL": "redis://sentinel/0",
        }

    def _data_node(self, name: str, primary_port: int | None) -> Node:
        port = _free_port()
        folder = self.dir / name
        folder.mkdir()
        lines = [
            f"port {port}",
            "bind 127.0.0.1",
            f"dir {folder}",
            'save ""',
            "appendonly no",
            # A (re)joining replica is synced at once, not after the default 5 s.
            "repl-diskless-sync yes",
            "repl-diskless-sync-delay 0",
            "loglevel warning",
        ]
        if primary_port is not None:
            lines.append(f"replicaof 127.0.0.1 {primary_port}")
        conf = folder / "redis.conf"
        conf.write_text("\n".join(lines) + "\n")
        return Node(name, port, conf, sentinel=False)

    def _sentinel(self, i: int) -> Node:
        port = _free_port()
        folder = self.dir / f"sentinel{i}"
        folder.mkdir()
        conf = folder / "sentinel.conf"  # Sentinel rewrites it: its own copy
        conf.write_text(
            "\n".join(
                [
                    f"port {port}",
                    "bind 127.0.0.1",
                    f"dir {folder}",
                    "loglevel warning",
                    f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2",
                    f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {SERVICE} 10000",
                    f"sentinel parallel-syncs {SERVICE} 1",
                ]
            )
            + "\n"
        )
        return Node(f"sentinel{i}", port, conf, sentinel=True)

    def start(self) -> None:
        self.primary.start()
        self.replica.start()
        for s in self.sentinels:
            s.start()
        self.wait_replicated(self.primary)

    def wait_replicated(self, primary: Node, within: float = 10.0) -> None:
        """Until a replica confirms ``primary``'s writes. A replica synced without a disk
        reads "online" before its first acknowledgement, which it sends after up to a
        second: until then WAIT counts it out."""
        with redis.Redis(port=primary.port, decode_responses=True) as r:
            deadline = time.monotonic() + within
            while time.monotonic() < deadline:
                r.set("sentinel-set:ready", "1")
                if r.execute_command("WAIT", 1, 100) >= 1:
                    r.delete("sentinel-set:ready")
                    return
        raise TimeoutError(f"{primary.name} has no replica confirming writes")

    def wait_ready_for_failover(self, within: float = 15.0) -> None:
        """Until every sentinel knows the replica and the two other sentinels (they find each
        other through the primary, every 2 s): only then can they agree on a failover."""
        deadline = time.monotonic() + within
        for s in self.sentinels:
            with redis.Redis(port=s.port, decode_responses=True) as r:
                while True:
                    peers = r.execute_command("SENTINEL", "SENTINELS", SERVICE)
                    replicas = r.execute_command("SENTINEL", "REPLICAS", SERVICE)
                    if len(peers) >= 2 and replicas:
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{s.name}: {len(peers)} peers, {replicas}")
                    time.sleep(0.1)

    def primary_ports(self) -> set[int]:
        """The primaries the sentinels name now: two during a failover, until the new
        configuration has reached every sentinel (they pass it on every 2 s)."""
        ports = set()
        for s in self.sentinels:
            with redis.Redis(port=s.port, decode_responses=True) as r:
                _, port = r.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
                ports.add(int(port))
        return ports

    def node_on(self, port: int) -> Node:
        return next(n for n in (self.primary, self.replica) if n.port == port)

    def close(self) -> None:
        for node in (*self.sentinels, self.replica, self.primary):
            node.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def running_sentinel_set() -> Iterator[SentinelSet]:
    """A started ``SentinelSet``, closed again however the block ends."""
    stack = SentinelSet()
    try:
        stack.start()
        yield stack
    finally:
        stack.close()
