"""The Kannel benchmark's parts: its kannel.conf, the sendsms URL, the receipt counter and the
receiver both sides call back."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import aiohttp
from aiohttp import web

from bench.sms_path import free_port
from bench.vs_kannel import receiver
from bench.vs_kannel_parts import (
    KannelAccount,
    KannelPorts,
    LegResult,
    ReceiptCounter,
    destination,
    render_config,
    sendsms_url,
    table,
    undeliverable,
)

PORTS = KannelPorts(admin=41000, smsbox=41001, sendsms=41002, smsc=41003)


def _groups(conf: str) -> dict[str, dict[str, str]]:
    groups: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in conf.splitlines():
        if not line.strip():
            continue
        key, _, value = (part.strip() for part in line.partition("="))
        if key == "group":
            current = groups.setdefault(value, {})
        else:
            assert key not in current, f"{key} twice in one group"
            current[key] = value.strip('"')
    return groups


def test_config_has_the_groups_and_ports_kannel_needs() -> None:
    g = _groups(render_config(PORTS, window=128))
    assert set(g) == {"core", "smsc", "smsbox", "sendsms-user"}
    core, smsc, box, user = g["core"], g["smsc"], g["smsbox"], g["sendsms-user"]
    assert (core["admin-port"], core["smsbox-port"]) == ("41000", "41001")
    assert core["dlr-storage"] == "internal"
    assert (smsc["smsc"], smsc["host"], smsc["port"]) == ("smpp", "127.0.0.1", "41003")
    assert smsc["transceiver-mode"] == "true"
    assert smsc["max-pending-submits"] == "128"
    assert smsc["system-type"]  # Kannel's smpp refuses to start without one
    assert (smsc["smsc-username"], smsc["smsc-password"]) == ("kannel", "kannel")
    assert (box["bearerbox-port"], box["sendsms-port"]) == ("41001", "41002")
    assert (user["username"], user["password"]) == ("bench", "bench")
    # loopback only: every listener bound to 127.0.0.1, boxes and admin allowed from it alone
    for group, key in (("core", "admin-interface"), ("core", "smsbox-interface")):
        assert g[group][key] == "127.0.0.1"
    assert box["sendsms-interface"] == "127.0.0.1"
    assert core["box-allow-ip"] == core["admin-allow-ip"] == "127.0.0.1"


def test_sendsms_url_asks_for_ucs2_and_both_final_receipts() -> None:
    text = "【交警提示】您的车辆年检即将到期。"
    dlr = "http://127.0.0.1:9/dlr/kannel-1?id=7&type=%d"
    url = urlsplit(sendsms_url(41002, KannelAccount(), "13900000007", text, dlr))
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", 41002, "/cgi-bin/sendsms")
    assert "%25d" in url.query  # the placeholder reaches Kannel url-encoded, whole
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert (q["text"], q["charset"], q["coding"]) == (text, "UTF-8", "2")
    assert (q["dlr-mask"], q["dlr-url"]) == ("3", dlr)
    assert (q["username"], q["password"], q["to"]) == ("bench", "bench", "13900000007")


def test_undeliverable_destinations_are_every_nth() -> None:
    assert undeliverable(30, 10) == [destination(9), destination(19), destination(29)]
    assert undeliverable(30, 0) == []
    assert len(destination(12345)) == 11


def test_receipts_counted_once_per_message_and_by_kind() -> None:
    c = ReceiptCounter()
    k = c.leg("kannel-1", "kannel")
    k.expected |= {"0", "1", "2"}
    c.kannel("kannel-1", "0", "1")
    c.kannel("kannel-1", "1", "2")  # undeliverable is a final receipt too
    c.kannel("kannel-1", "1", "2")
    c.kannel("kannel-1", "2", "8")  # "delivered to SMSC": not asked for, not final
    c.kannel("kannel-1", "2", "x")
    c.kannel("kannel-9", "0", "1")
    assert k.statuses == {"delivered": 1, "undeliverable": 1}
    assert (k.duplicates, k.other, k.lost(), k.missing(), c.unknown) == (1, 2, 1, {"2"}, 1)

    g = c.leg("gateway-1", "gateway")
    g.expected |= {"a", "b"}
    c.gateway("gateway-1", {"id": "a", "status": "submitted"})
    c.gateway("gateway-1", {"id": "a", "status": "delivered"})
    c.gateway("gateway-1", {"id": "b", "status": "undeliverable"})
    c.gateway("gateway-1", {"id": "z", "status": "delivered"})  # before its 202 was read
    assert (g.other, g.lost(), g.statuses["delivered"]) == (1, 0, 2)
    last = g.last()
    assert last is not None
    assert last >= g.finals["a"]


def _leg(side: str, receipts: int, seconds: float) -> LegResult:
    cpu = {"smsc-sim": 0.5, side: 1.25}
    return LegResult(side, 1, receipts, receipts, seconds / 2, seconds, receipts, 0, cpu)


def test_rates_and_the_ratio_in_the_table() -> None:
    k, g = _leg("kannel", 1000, 2.0), _leg("gateway", 1000, 1.0)
    assert (k.receipts_per_s, k.accepted_per_s, g.receipts_per_s) == (500, 1000, 1000)
    rows = table([k, g]).splitlines()
    assert len(rows) == 4
    kannel = "| 1 | kannel | 1,000 | 500 | 0 | smsc-sim 0.50, kannel 1.25 | 1.75 |"
    assert rows[2].startswith(kannel)
    assert rows[3].endswith("| 2.00 |")
    assert _leg("gateway", 0, 0.0).receipts_per_s == 0


async def test_the_receiver_counts_what_kannel_and_the_gateway_send() -> None:
    counter = ReceiptCounter()
    k, g = counter.leg("kannel-1", "kannel"), counter.leg("gateway-1", "gateway")
    k.expected.add("5")
    g.expected.add("n1")
    runner = web.AppRunner(receiver(counter), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/dlr/kannel-1", params={"id": "5", "type": "2"}) as r:
                assert r.status == 200
            body = {"id": "n1", "status": "submitted"}
            async with http.post(f"{base}/hook/gateway-1", json=body) as r:
                assert r.status == 204
            async with http.post(f"{base}/hook/gateway-1", json={**body, "status": "delivered"}):
                pass
    finally:
        await runner.cleanup()
    assert (k.statuses, k.lost()) == ({"undeliverable": 1}, 0)
    assert (g.statuses, g.other, g.lost()) == ({"delivered": 1}, 1, 0)
