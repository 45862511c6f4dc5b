"""Health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from gateway.api.route_table import ROUTES
from tests.conftest import Gateway


async def test_health_and_readiness_report_redis_and_smpp(gateway: Gateway) -> None:
    assert (await gateway.request("GET", "/healthz"))[0] == 200
    status, body, _ = await gateway.request("GET", "/readyz")
    assert status == 200, body
    assert body["checks"] == {"redis": True, "smpp": True}


async def test_readiness_fails_without_an_smpp_bind(gateway: Gateway) -> None:
    await gateway.stop_workers()
    await gateway.redis.delete(gateway.keys.smpp_bound)
    status, body, _ = await gateway.request("GET", "/readyz")
    assert status == 503
    assert body["checks"]["smpp"] is False


async def test_metrics_are_prometheus_text(gateway: Gateway) -> None:
    await gateway.request("GET", "/healthz")
    status, body, headers = await gateway.request("GET", "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert 'gateway_http_requests_total{route="/healthz",status="200"}' in body
    assert "gateway_smpp_bound 1.0" in body


async def test_openapi_describes_every_route(gateway: Gateway) -> None:
    status, spec, _ = await gateway.request("GET", "/openapi.json")
    assert status == 200
    for route in ROUTES:
        assert route.method.lower() in spec["paths"][route.path]
    alert = spec["components"]["schemas"]["AccidentAlert"]
    assert set(alert["required"]) == {"accident_type", "reporter_phone", "location", "case_id"}
    assert spec["paths"]["/v1/accident-alerts"]["post"]["security"] == [{"bearer": []}]
