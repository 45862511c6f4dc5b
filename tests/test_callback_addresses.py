"""Callbacks checked by address at connect time, pinned, and ports limited (issue 15, 2).

Each attack is replayed against the real dispatcher: a name that resolves to loopback (via a
test resolver standing in for DNS), a wildcard entry resolving to a private address, a
callback into Redis's port. Each is refused without a connection; nothing accepted is lost
(it is in the dead-letter list with the reason). A name pinned to an address that the key
does name is delivered to that address, with the name in the Host header.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from gateway.core.webhooks import OutboxEntry, webhook_envelope
from gateway.store.apikeys import NewKey
from gateway.store.notices import now_iso
from tests.conftest import Gateway, Receiver, free_port

ALERT = {
    "accident_type": "injury",
    "reporter_phone": "13800138000",
    "location": "北京路",
    "case_id": "A-15",
}


class MapResolver(AbstractResolver):
    """DNS for the test: each name answers the addresses given; every lookup is counted."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        if host not in self.names:
            raise OSError(f"{host}: no such name")
        return [
            ResolveResult(
                hostname=host, host=ip, port=port, family=socket.AF_INET, proto=0, flags=0
            )
            for ip in self.names[host]
        ]

    async def close(self) -> None:
        return None


def resolver_for(gw: Gateway, names: dict[str, list[str]]) -> MapResolver:
    assert gw.workers is not None
    assert gw.workers.webhooks is not None
    resolver = MapResolver(names)
    gw.workers.webhooks.resolver = resolver
    return resolver


async def outbox(gw: Gateway, key: NewKey, url: str, n: int = 1, tag: str = "t") -> list[str]:
    """Webhooks put on the outbox as a status change would (already accepted at intake)."""
    ids = []
    for i in range(n):
        envelope = webhook_envelope(id=f"ntc_{tag}{i}", kind="test", at=now_iso(), detail={"n": i})
        entry = OutboxEntry.of(envelope, key_id=key.key.id, url=url)
        await gw.redis.xadd(gw.keys.webhook_queue(0), entry.fields())  # type: ignore[arg-type]
        ids.append(entry.id)
    return ids


async def dead_letters(gw: Gateway, n: int, within: float = 10) -> list[dict[str, Any]]:
    async with asyncio.timeout(within):
        while True:
            items = await gw.redis.lrange(gw.keys.webhook_dead(0), 0, -1)
            if len(items) >= n:
                return [json.loads(i) for i in items]
            await asyncio.sleep(0.05)


async def test_a_name_resolving_to_loopback_is_refused_unless_that_address_is_allowed(
    gateway: Gateway, receiver: Receiver
) -> None:
    port = receiver.allow.split(":")[1]
    resolver = resolver_for(gateway, {"vm": ["127.0.0.1"]})
    # The name passes at intake (it is on the list): only its address says where it goes.
    named_only = await gateway.add_key("command_center", [f"vm:{port}"])
    url = f"http://vm:{port}/hook"
    code, body, _ = await gateway.request(
        "POST", "/v1/accident-alerts", named_only, {**ALERT, "callback_url": url}
    )
    assert code == 202, body
    [dead] = await dead_letters(gateway, 1)
    assert dead["id"] == body["id"]
    assert dead["last_error"].startswith("refused: callback host vm resolves to 127.0.0.1")
    assert receiver.attempts == 0  # never connected
    # The exact address on the list opens it: delivered to the address that was checked,
    # looked up once per delivery, with the name kept in the Host header.
    both = await gateway.add_key("command_center", [f"vm:{port}", receiver.allow])
    code, body, _ = await gateway.request(
        "POST", "/v1/accident-alerts", both, {**ALERT, "callback_url": url}
    )
    assert code == 202, body
    call = await receiver.wait_for(body["id"], "submitted")
    assert call["headers"]["Host"] == f"vm:{port}"
    assert set(resolver.lookups) == {"vm"}


async def test_a_wildcard_entry_never_reaches_a_private_address(
    gateway: Gateway, receiver: Receiver
) -> None:
    """DNS rebinding: the name was public when it was checked, private when connected to."""
    resolver_for(gateway, {"hooks.partner.test": ["10.0.0.7"], "ok.partner.test": ["fe80::1"]})
    key = await gateway.add_key("command_center", ["*.partner.test"])
    await outbox(gateway, key, "https://hooks.partner.test/in", tag="a")
    await outbox(gateway, key, "https://ok.partner.test/in", tag="b")
    errors = sorted(d["last_error"] for d in await dead_letters(gateway, 2))
    assert "hooks.partner.test resolves to 10.0.0.7" in errors[0]
    assert "ok.partner.test resolves to fe80::1" in errors[1]


async def test_a_callback_into_redis_port_is_refused_at_intake_and_at_connect(
    gateway: Gateway, redis_server: str
) -> None:
    redis_port = int(redis_server.rsplit(":", 1)[1].split("/")[0])
    key = await gateway.add_key("command_center", ["127.0.0.1"])
    url = f"http://127.0.0.1:{redis_port}/"
    code, body, _ = await gateway.request(
        "POST", "/v1/accident-alerts", key, {**ALERT, "callback_url": url}
    )
    assert (code, body["error"]["code"]) == (422, "callback_host_not_allowed")
    assert f"127.0.0.1:{redis_port}" in body["error"]["message"]
    assert "only 80 and 443" in body["error"]["message"]
    # One that got onto the outbox anyway (the list changed since) is never sent to Redis.
    before = (await gateway.redis.info("stats"))["total_connections_received"]
    await outbox(gateway, key, url)
    [dead] = await dead_letters(gateway, 1)
    assert "only 80 and 443" in dead["last_error"]
    after = (await gateway.redis.info("stats"))["total_connections_received"]
    assert after == before


async def test_port_rules_at_intake(gateway: Gateway) -> None:
    key = await gateway.add_key(
        "command_center", ["hooks.example.cn", "*.partner.cn:8443", "[::1]:9000"]
    )

    async def post(url: str) -> int:
        code, _, _ = await gateway.request(
            "POST", "/v1/accident-alerts", key, {**ALERT, "callback_url": url}
        )
        return code

    assert await post("https://hooks.example.cn/x") == 202
    assert await post("http://hooks.example.cn:80/x") == 202
    assert await post("http://hooks.example.cn:8080/x") == 422
    assert await post("https://a.partner.cn:8443/x") == 202
    assert await post("https://a.partner.cn/x") == 422  # the entry names its port only
    assert await post("http://[::1]:9000/x") == 202
    assert await post("http://[::1]:9001/x") == 422


def _certificate(tmp: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A CA, and a server certificate it signed for ``name``: (server context, client
    context trusting the CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def subject(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(subject("test CA"))
        .issuer_name(subject("test CA"))
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject(name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


async def test_https_to_a_pinned_address_keeps_the_name_for_sni_host_and_the_certificate(
    gateway: Gateway, tmp_path: Path
) -> None:
    server_ctx, client_ctx = _certificate(tmp_path, "hooks.partner.test")
    seen: list[tuple[str | None, str]] = []
    sni: list[str | None] = []
    server_ctx.sni_callback = lambda _sock, name, _ctx: sni.append(name)  # type: ignore[assignment,misc,return-value]

    async def hook(request: web.Request) -> web.Response:
        seen.append((sni[-1] if sni else None, request.headers["Host"]))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/in", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_ctx).start()
    try:
        resolver_for(
            gateway, {"hooks.partner.test": ["127.0.0.1"], "evil.partner.test": ["127.0.0.1"]}
        )
        assert gateway.workers is not None
        assert gateway.workers.webhooks is not None
        gateway.workers.webhooks.ssl_context = client_ctx
        key = await gateway.add_key(
            "command_center",
            [f"*.partner.test:{port}", f"127.0.0.1:{port}"],
        )
        await outbox(gateway, key, f"https://hooks.partner.test:{port}/in", tag="tls")
        async with asyncio.timeout(10):
            while not seen:
                await asyncio.sleep(0.02)
        assert seen == [("hooks.partner.test", f"hooks.partner.test:{port}")]
        # Another name pinned to the same address: its certificate does not match; not sent.
        await outbox(gateway, key, f"https://evil.partner.test:{port}/in", tag="evil")
        async with asyncio.timeout(10):
            while not await gateway.redis.zcard(gateway.keys.webhook_retry(0)):
                await asyncio.sleep(0.02)
        [retry] = await gateway.redis.zrange(gateway.keys.webhook_retry(0), 0, -1)
        assert "Certificate" in json.loads(retry)["last_error"]
        assert len(seen) == 1
    finally:
        await runner.cleanup()
