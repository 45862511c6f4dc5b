"""What a newcomer reads to find their way: templates, enums in the spec, readable JSON."""

from __future__ import annotations

from urllib.parse import quote

from tests.conftest import Gateway


async def test_json_answers_carry_chinese_text_as_utf8_not_escapes(gateway: Gateway) -> None:
    assert gateway.http is not None
    async with gateway.http.get(
        f"{gateway.base}/v1/admin/binding-audit?plate={quote('云X不是一个车牌')}",
        headers={"Authorization": f"Bearer {gateway._admin.token}"},
    ) as resp:
        raw = await resp.read()
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert resp.status == 422
    assert "云X不是一个车牌".encode() in raw
    assert b"\\u" not in raw
