"""Numbers and keys never reach the logs unmasked: aiohttp's access and error loggers and
tracebacks included (issue 15, 8).

The real API server runs with aiohttp's access log on and the gateway's log handler on the
root logger; a bad request line carrying a full phone number and an API key, and a good
request with a number in its query and a key in its header, leave only masked forms. The
record aiohttp's stock error path writes for an unparsable request ("Error handling request"
with the parser's exception, whose text is the raw line) is masked as well, traceback and all.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_parser import HttpRequestParser

from gateway import logs
from gateway.api.app import create_app
from gateway.api.server import ApiRunner
from tests.conftest import Gateway, free_port

PHONE = "13812345678"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything logged at DEBUG and above, through the gateway's handler."""
    out = io.StringIO()
    handler = logs.handler(out)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield out
    root.removeHandler(handler)
    root.setLevel(level)


async def test_bad_request_lines_and_queries_are_masked_in_every_log(
    gateway: Gateway, captured: io.StringIO
) -> None:
    key = (await gateway.add_key("admin")).token
    app = create_app(gateway.settings, gateway.metrics)
    runner = ApiRunner(app)  # aiohttp's access log on, as a deployment may run it
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        for raw in (
            f"G\x01T /v1/admin/audit?phone={PHONE} HTTP/1.1\r\nAuthorization: Bearer {key}\r\n\r\n",
            f"GET /v1/admin/audit?phone={PHONE}&k={key} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {key}\r\nConnection: close\r\n\r\n",
            f"GET /v1/notices/{PHONE} {key} HTTP/1.1\r\n\r\n",
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(raw.encode("latin-1"))
            await writer.drain()
            async with asyncio.timeout(5):
                assert await reader.read()
            writer.close()
    finally:
        await runner.cleanup()
    # aiohttp's stock answer to an unparsable request logs the parser's exception.
    parser = HttpRequestParser(None, asyncio.get_running_loop(), 2**16)  # type: ignore[arg-type]
    with pytest.raises(HttpProcessingError) as bad:
        parser.feed_data(f"G\x01T /?p={PHONE}&k={key} HTTP/1.1\r\n\r\n".encode("latin-1"))
    assert PHONE in str(bad.value)  # the raw line is in the exception's text
    logging.getLogger("aiohttp.server").exception("Error handling request", exc_info=bad.value)
    text = captured.getvalue()
    assert "aiohttp.access" in text  # the access log was written ...
    assert "138****5678" in text  # ... with the number masked
    assert "Traceback" in text
    assert PHONE not in text
    assert key not in text
    assert key.split("_", 2)[2] not in text  # not even the secret part alone
