"""The AMI link: asterisk-ami's reader thread bridged into asyncio, with reconnects.

asterisk-ami reads in its own thread and calls listeners there; everything it reports is
handed to the event loop with ``call_soon_threadsafe``. A lost link is noticed through the
library's disconnect callback; callers learn it through ``on_state(False)`` so calls in flight
can be resolved rather than forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from asterisk.ami import AMIClient, SimpleAction

from gateway.settings import AmiSettings

log = logging.getLogger(__name__)


class AmiError(Exception):
    """AMI answered ``Response: Error`` (or did not answer)."""


class _Client(AMIClient):  # type: ignore[misc]
    """asterisk-ami's client, with a reader that waits as long as the link is quiet.

    The library leaves its connect timeout on the socket, and its reader thread is already
    blocked in recv() with it when the timeout could be lifted after login: ten quiet seconds
    on an idle Asterisk read as a lost link. Here the timeout covers the TCP connect only; a
    dead peer is found by TCP keepalive (about a minute) or by the next action's timeout.
    """

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self._port), timeout=self._timeout)
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
        self._socket = sock
        self.finished = threading.Event()
        self._thread = threading.Thread(target=self.listen, daemon=True)
        self._thread.start()


class AmiLink:
    def __init__(
        self,
        settings: AmiSettings,
        on_event: Callable[[str, dict[str, str]], None],
        on_state: Callable[[bool], None] = lambda up: None,
        login_timeout: float = 10.0,
    ) -> None:
        self.settings = settings
        self.on_event = on_event
        self.on_state = on_state
        self.login_timeout = login_timeout
        self.up = False
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lost = asyncio.Event()
        self._booted = asyncio.Event()
        self._closing = False

    # -- thread side (called by asterisk-ami's reader) --------------------------------------
    def _thread_event(self, event: Any, source: Any) -> None:
        if self._loop is not None and source is self._client:
            self._loop.call_soon_threadsafe(self._dispatch, event.name, dict(event.keys))

    def _thread_disconnect(self, source: Any, error: Any = None) -> None:
        if self._loop is not None and source is self._client:
            self._loop.call_soon_threadsafe(self._lost.set)

    # -- loop side ----------------------------------------------------------------------------
    def _dispatch(self, name: str, keys: dict[str, str]) -> None:
        if name == "FullyBooted":
            self._booted.set()
        try:
            self.on_event(name, keys)
        except Exception:
            log.exception("AMI event handler failed on %s", name)

    async def run(self) -> None:
        """Keep the link up until ``close``; back off between attempts."""
        self._loop = asyncio.get_running_loop()
        delay = 0.5
        while not self._closing:
            try:
                await self._connect()
                delay = 0.5
                log.info("AMI logged in to %s:%d", self.settings.ami_host, self.settings.ami_port)
                self.up = True
                self.on_state(True)
                await self._lost.wait()
                if self._closing:
                    log.info("AMI link closed")
                else:
                    log.warning("AMI link lost")
            except (OSError, AmiError, TimeoutError) as exc:
                log.warning("AMI connect failed: %s", exc or type(exc).__name__)
            finally:
                if self.up:
                    self.up = False
                    self.on_state(False)
                await self._drop()
            if self._closing:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _connect(self) -> None:
        assert self._loop is not None
        self._lost.clear()
        self._booted.clear()
        client = _Client(
            address=self.settings.ami_host, port=self.settings.ami_port, timeout=self.login_timeout
        )
        client.add_event_listener(self._thread_event)
        client.add_listener(on_disconnect=self._thread_disconnect)
        self._client = client
        # connect() is a TCP connect plus starting the reader thread.
        await self._loop.run_in_executor(None, client.connect)
        try:
            await self.action(
                "Login",
                _client=client,
                Username=self.settings.ami_username,
                Secret=self.settings.ami_secret.get_secret_value(),
            )
        except AmiError as exc:
            raise AmiError(f"login refused: {exc}") from None
        # Originates sent while Asterisk is still loading fail; wait for FullyBooted.
        async with asyncio.timeout(30):
            await self._booted.wait()

    async def _drop(self) -> None:
        """Close the link. asterisk-ami's disconnect() joins its reader thread, which sits in
        a blocking recv: shut the socket down first to wake it, and join off the loop."""
        client, self._client = self._client, None
        if client is None:
            return
        sock = getattr(client, "_socket", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        try:
            await asyncio.get_running_loop().run_in_executor(None, client.disconnect)
        except Exception:  # the socket may already be gone
            log.debug("AMI disconnect raised", exc_info=True)

    async def action(
        self, name: str, variables: dict[str, str] | None = None, _client: Any = None, **fields: str
    ) -> dict[str, str]:
        """Send an action; its response keys, or ``AmiError`` for ``Response: Error``."""
        client = _client or self._client
        if client is None or (_client is None and not self.up):
            raise AmiError("AMI link is down")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()

        def resolve(response: Any) -> None:
            if not fut.done():
                fut.set_result(response)

        def done(response: Any) -> None:
            loop.call_soon_threadsafe(resolve, response)

        act = SimpleAction(name, **fields)
        for k, v in (variables or {}).items():
            act.variables[k] = v
        try:
            client.send_action(act, callback=done)
        except OSError as exc:
            self._lost.set()
            raise AmiError(f"AMI send failed: {exc}") from exc
        try:
            async with asyncio.timeout(10):
                response = await fut
        except TimeoutError:
            raise AmiError(f"no response to {name}") from None
        keys = dict(response.keys)
        if response.status.lower() != "success":
            raise AmiError(keys.get("Message", response.status))
        return keys

    def close(self) -> None:
        self._closing = True
        self._lost.set()
