"""What a newcomer reads to find their way: templates, enums in the spec, readable JSON."""

from __future__ import annotations

import re
from urllib.parse import quote

from gateway.core.statuses import NOTICE_STATUSES
from gateway.core.templates import ACCIDENT_TYPES, Catalogue
from gateway.store import scripts
from gateway.store.apikeys import ROLES
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


async def test_templates_are_listed_with_params_channels_text_and_sms_parts(
    gateway: Gateway,
) -> None:
    office = await gateway.add_key("back_office")
    code, body, _ = await gateway.request("GET", "/v1/templates", office)
    assert code == 200
    by_name = {t["name"]: t for t in body["templates"]}
    assert set(by_name) == set(Catalogue.load().templates)
    review = by_name["licence_review_due"]
    assert (review["version"], review["channels"], review["params"]) == (
        1,
        ["sms", "email", "voice"],
        ["name", "due_date"],
    )
    assert review["subject"] == "驾驶证到期换证提醒"
    assert "{name}您好" in review["text"]
    assert review["sample"]["text"].startswith("【交警提示】张三您好")
    assert review["sample"]["sms_parts"] == 2  # 70 UCS-2 characters at most in one part
    assert by_name["accident_injury"]["sample"]["sms_parts"] == 3
    code, body, _ = await gateway.request("GET", "/v1/templates?channel=email", office)
    assert "accident_injury" not in {t["name"] for t in body["templates"]}
    code, one, _ = await gateway.request("GET", "/v1/templates/traffic_conditions", office)
    assert (code, one["params"]) == (200, ["road", "period", "detour"])
    code, err, _ = await gateway.request("GET", "/v1/templates/nope", office)
    assert (code, err["error"]["code"]) == (404, "unknown_template")
    assert "plain_notice" in err["error"]["details"]["allowed"]
    code, err, _ = await gateway.request("GET", "/v1/templates?channel=fax", office)
    assert (code, err["error"]["details"]["allowed"]) == (422, ["sms", "email", "voice"])
    assert (await gateway.request("GET", "/v1/templates"))[0] == 401


async def test_openapi_names_the_allowed_values(gateway: Gateway) -> None:
    code, spec, _ = await gateway.request("GET", "/openapi.json")
    assert code == 200
    schemas = spec["components"]["schemas"]
    assert schemas["AccidentAlert"]["properties"]["accident_type"]["enum"] == list(ACCIDENT_TYPES)
    assert schemas["Message"]["properties"]["channel"]["enum"] == ["sms", "email", "voice"]
    assert "licence_review_due" in schemas["Message"]["properties"]["template"]["enum"]
    assert "licence_review_due" in schemas["ReminderJobIn"]["properties"]["template"]["enum"]
    assert schemas["Role"]["enum"] == list(ROLES)
    assert {"queued", "delivered", "acknowledged", "listened", "sent"} <= set(
        schemas["NoticeStatus"]["enum"]
    )
    assert schemas["JobStatus"]["enum"][-1] == "aborted"
    assert "/v1/templates" in spec["paths"]
    [plate] = spec["paths"]["/v1/bindings/{plate}"]["get"]["parameters"]
    assert (plate["name"], plate["in"], plate["required"]) == ("plate", "path", True)
    assert plate["schema"]["pattern"].startswith("^[京津沪")  # the rule, in the schema


def test_every_status_the_scripts_rank_is_a_documented_status() -> None:
    rendered = scripts.render("set_status", "gw")
    ranked = re.search(r"local RANK = \{(.*?)\}", rendered, re.S)
    assert ranked is not None
    names = set(re.findall(r"(\w+)=\d", ranked.group(1)))
    assert names == set(NOTICE_STATUSES)
