"""FastAGI server: asyncio accepts, each session runs pyst2's blocking AGI in a worker thread.

Budgets per session: header size and line length, a socket timeout on every read, and a
session deadline. Garbage, a hang-up or a silent peer ends that session cleanly; the flow's
outcome (or its failure) is handed back to the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any

from asterisk.agi import AGI, AGIException, AGIUnknownError

from gateway.ivr_flows.agi_env import MAX_HEADER_LINES, MAX_LINE, AgiRequest, BadAgiHeader
from gateway.ivr_flows.agi_env import parse_header as parse_agi_header

log = logging.getLogger(__name__)

# Asterisk sends the whole header at once; a peer still typing it after this is not Asterisk.
HEADER_SECONDS = 5.0


class SessionEnded(ConnectionError):
    """The peer went away, went silent past the budget, or sent an oversized line."""


class OversizedLine(SessionEnded):
    """A line past the budget: garbage, not a peer that left."""


class _LineReader(io.TextIOBase):
    """What pyst2 reads from: bounded lines, EOF and timeouts raised instead of ''.

    Every ``recv`` waits only until the deadline in force (the header's, then the session's),
    so a peer that trickles a byte at a time cannot stretch a line past it."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._buf = bytearray()
        self.deadline = deadline

    def close_file(self) -> None:
        self._buf.clear()

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        while True:
            end = self._buf.find(b"\n")
            if end >= 0:
                raw = bytes(self._buf[: end + 1])
                del self._buf[: end + 1]
                if len(raw) > MAX_LINE:
                    raise OversizedLine("line too long")
                return raw.decode("utf-8", errors="replace")
            if len(self._buf) > MAX_LINE:
                raise OversizedLine("line too long")
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise SessionEnded("time budget spent")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(4096)
            except (TimeoutError, OSError) as exc:
                raise SessionEnded(f"read failed: {exc}") from exc
            if not chunk:
                raise SessionEnded("peer closed the connection")
            self._buf += chunk


class _Writer(io.TextIOBase):
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def write(self, s: str) -> int:
        try:
            self._sock.sendall(s.encode("utf-8"))
        except OSError as exc:
            raise SessionEnded(f"write failed: {exc}") from exc
        return len(s)

    def flush(self) -> None:
        return None


class FastAgi(AGI):  # type: ignore[misc]
    """pyst2's AGI over one socket; its __init__ would install signal handlers (main thread
    only) and write every line to stderr, so it is replaced."""

    def __init__(self, reader: _LineReader, writer: _Writer, env: dict[str, str]) -> None:
        self.stdin = reader
        self.stdout = writer
        self.stderr = io.StringIO()
        self._got_sighup = False
        self.env = env
        # The call's notice and token, from the header's arguments (the dialplan passes
        # them) or once a flow has read them: a flow that breaks off still names its call.
        self.identity: dict[str, str] = {}
        if env.get("agi_arg_1") and env.get("agi_arg_2"):
            self.identity = {"notice_id": env["agi_arg_1"], "token": env["agi_arg_2"]}

    def get_result(self, stdin: Any = None) -> dict[str, Any]:
        try:
            return dict(super().get_result())
        except ValueError as exc:
            # pyst2 reads a reply without a numeric code as int(''): garbage on the socket.
            raise AGIUnknownError(0, f"not an AGI reply: {exc}") from exc

    def send_command(self, command: str, *args: Any) -> None:
        self.stderr.seek(0)
        self.stderr.truncate()  # pyst2 logs every line here; keep the buffer from growing
        super().send_command(command, *args)


@dataclass(frozen=True, slots=True)
class FlowResult:
    request: AgiRequest
    outcome: dict[str, Any]


Flow = Callable[[FastAgi, AgiRequest], dict[str, Any]]
OnResult = Callable[[FlowResult], Awaitable[None]]


def _read_header(reader: _LineReader) -> AgiRequest:
    lines: list[str] = []
    while True:
        line = reader.readline().rstrip("\r\n")
        if not line:
            return parse_agi_header(lines)
        lines.append(line)
        if len(lines) > MAX_HEADER_LINES:
            raise BadAgiHeader("too many header lines")


class FastAgiServer:
    def __init__(
        self,
        host: str,
        port: int,
        flows: dict[str, Flow],
        on_result: OnResult,
        max_sessions: int = 256,
        session_timeout: float = 120.0,
        allow: Sequence[IPv4Network | IPv6Network] = (),
    ) -> None:
        self.allow = tuple(allow)
        self.refused = 0
        self.host = host
        self.port = port
        self.flows = flows
        self.on_result = on_result
        self.session_timeout = session_timeout
        self._pool = ThreadPoolExecutor(max_sessions, thread_name_prefix="agi")
        self._slots = asyncio.Semaphore(max_sessions)
        self._sessions: set[asyncio.Task[None]] = set()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.sessions_done = 0
        self.sessions_failed = 0

    def bind(self) -> int:
        """Open the listening socket (port 0 picks one); returns the port."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(512)
        s.setblocking(False)
        self._listener = s
        self.port = s.getsockname()[1]
        return self.port

    async def serve(self) -> None:
        if self._listener is None:
            self.bind()
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        log.info("FastAGI listening on %s:%d", self.host, self.port)
        try:
            while True:
                await self._slots.acquire()
                try:
                    conn, peer = await loop.sock_accept(self._listener)
                except BaseException:
                    self._slots.release()
                    raise
                if not self._allowed(peer[0]):
                    self._refuse(conn, peer[0])
                    continue
                task = loop.create_task(self._session(conn))
                self._sessions.add(task)
                task.add_done_callback(self._sessions.discard)
        finally:
            self._listener.close()

    def _allowed(self, address: str) -> bool:
        if not self.allow:
            return True
        try:
            ip = ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        return any(ip in net for net in self.allow)

    def _refuse(self, conn: socket.socket, address: str) -> None:
        """Closed before a byte is read: only Asterisk may open flows."""
        self.refused += 1
        self._slots.release()
        conn.close()
        log.warning("FastAGI: refused a session from %s (not in GATEWAY_AGI_ALLOW)", address)
        request = AgiRequest({}, "")
        outcome = {"error": "address_not_allowed", "peer": address}
        task = asyncio.get_running_loop().create_task(self._report(FlowResult(request, outcome)))
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _report(self, result: FlowResult) -> None:
        await self.on_result(result)

    async def shutdown(self, grace: float = 5.0) -> None:
        """After ``serve`` is cancelled: let sessions finish, then cut the stragglers."""
        if self._sessions:
            await asyncio.wait(self._sessions, timeout=grace)
        for s in list(self._sockets):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        if self._sessions:
            await asyncio.wait(self._sessions, timeout=grace)
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _session(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self._sockets.add(conn)
        try:
            result = await loop.run_in_executor(self._pool, self._run_flow, conn)
            if result is not None:
                await self.on_result(result)
            self.sessions_done += 1
        except Exception:
            self.sessions_failed += 1
            log.exception("FastAGI session failed")
        finally:
            self._sockets.discard(conn)
            # makefile() keeps the descriptor alive after close(); shut the connection down.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
            self._slots.release()

    def _run_flow(self, conn: socket.socket) -> FlowResult | None:
        """In a worker thread: read the header, run the flow, always end cleanly."""
        start = time.monotonic()
        reader = _LineReader(conn, start + min(HEADER_SECONDS, self.session_timeout))
        try:
            return self._serve(reader, _Writer(conn), start + self.session_timeout)
        finally:
            reader.close_file()

    def _serve(self, reader: _LineReader, writer: _Writer, deadline: float) -> FlowResult | None:
        try:
            request = _read_header(reader)
            reader.deadline = deadline
        except (BadAgiHeader, OversizedLine) as exc:
            log.warning("FastAGI: refused a session: %s", exc)
            return FlowResult(AgiRequest({}, ""), {"error": "bad_header", "reason": str(exc)})
        except SessionEnded as exc:
            log.info("FastAGI: peer left before its header: %s", exc)
            return None
        flow = self.flows.get(request.flow)
        if flow is None:
            log.warning("FastAGI: no flow %r", request.flow)
            return FlowResult(request, {"error": f"unknown flow {request.flow}"})
        agi = FastAgi(reader, writer, request.env)
        try:
            return FlowResult(request, flow(agi, request))
        except (SessionEnded, AGIException) as exc:
            # The caller hung up, or Asterisk answered an error: the flow's partial state is
            # reported so the notice still gets an outcome.
            error = {"error": type(exc).__name__, "partial": True}
            return FlowResult(request, {**agi.identity, **error})
