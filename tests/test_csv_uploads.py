"""CSV files as back offices save them: GBK from Chinese Excel, UTF-16, UTF-8 with a BOM and
CRLF; an upload with nothing to send is refused; curl's newline stripping is named."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from gateway.sms.simulator import SmscSimulator
from tests.conftest import Gateway
from tests.test_reminder_jobs import NOW, wait_job, window

HEADER = "to,road,period,detour"
ROWS = [f"1391000{i:04d},人民路,明天8时至18时,北京路" for i in range(5)]


def text(rows: list[str] = ROWS, newline: str = "\n") -> str:
    return newline.join([HEADER, *rows]) + newline


async def upload(
    gw: Gateway, key: object, body: bytes, content_type: str = "text/csv"
) -> tuple[int, dict[str, object]]:
    code, resp, _ = await gw.request(
        "POST",
        f"/v1/reminder-jobs?template=traffic_conditions&send_window={window(NOW)}",
        key,  # type: ignore[arg-type]
        data=body,
        headers={"Content-Type": content_type},
    )
    return code, resp


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (text().encode("gb18030"), "text/csv"),  # Chinese Excel's "CSV", nothing declared
        (text().encode("gbk"), "text/csv; charset=gbk"),
        (text().encode("gb18030"), "text/csv; charset=GB18030"),
        (text().encode("utf-16"), "text/csv"),  # a BOM says which byte order
        (text(newline="\r\n").encode("utf-16-le"), "text/csv; charset=utf-16le"),
        (text(newline="\r\n").encode("utf-8-sig"), "text/csv"),  # Excel's "CSV UTF-8"
    ],
    ids=["gb18030-sniffed", "gbk-declared", "gb18030-declared", "utf16-bom", "utf16le", "excel"],
)
async def test_csv_in_the_encodings_excel_saves_is_read_and_sent_as_written(
    gateway: Gateway, smsc: SmscSimulator, body: bytes, content_type: str
) -> None:
    office = await gateway.add_key("back_office")
    code, resp = await upload(gateway, office, body, content_type)
    assert code == 202, resp
    assert (resp["total"], resp["bad_rows"]) == (5, 0), resp
    await wait_job(gateway, office, str(resp["job_id"]), "finished")
    sent = smsc.to([f"1391000{i:04d}" for i in range(5)])
    assert len(sent) == 5
    assert all("人民路将于明天8时至18时实施交通管制，请提前绕行北京路" in m.text for m in sent)


async def test_a_job_whose_rows_are_all_bad_is_refused_with_how_to_save_it(
    gateway: Gateway, smsc: SmscSimulator
) -> None:
    office = await gateway.add_key("back_office")
    # GBK declared as UTF-8: the (ASCII) header reads, no row does.
    code, resp = await upload(gateway, office, text().encode("gbk"), "text/csv; charset=utf-8")
    assert code == 422, resp
    error = resp["error"]
    assert error["code"] == "no_valid_rows"  # type: ignore[index]
    assert "CSV UTF-8" in error["message"]  # type: ignore[index]
    assert error["details"][0] == {"line": 2, "error": "not UTF-8 text"}  # type: ignore[index]
    params = {"road": "人民路", "period": "明天", "detour": "北京路"}
    code, resp, _ = await gateway.request(
        "POST",
        "/v1/reminder-jobs",
        office,
        {"template": "traffic_conditions", "recipients": [{"to": "12", "params": params}]},
    )
    assert (code, resp["error"]["code"]) == (422, "no_valid_rows"), resp
    assert resp["error"]["details"][0]["index"] == 0
    code, resp = await upload(gateway, office, f"{HEADER}\n".encode())
    assert (code, resp["error"]["code"]) == (422, "no_recipients")  # type: ignore[index]
    code, resp = await upload(gateway, office, text().encode(), "text/csv; charset=klingon")
    assert (code, resp["error"]["code"]) == (415, "unsupported_charset")  # type: ignore[index]
    assert await gateway.redis.zcard(gateway.keys.jobs_active(0)) == 0
    await asyncio.sleep(0.3)
    assert smsc.submits == 0


async def test_a_file_sent_with_curl_d_is_named_for_its_stripped_newlines(
    gateway: Gateway,
) -> None:
    office = await gateway.add_key("back_office")
    stripped = text().replace("\n", "").encode()  # what curl -d @file.csv sends
    code, resp = await upload(gateway, office, stripped)
    assert (code, resp["error"]["code"]) == (422, "csv_newlines_stripped"), resp  # type: ignore[index]
    assert "--data-binary" in resp["error"]["message"]  # type: ignore[index]
    # curl -d without a Content-Type sends a form.
    code, resp = await upload(gateway, office, stripped, "application/x-www-form-urlencoded")
    assert (code, resp["error"]["code"]) == (415, "unsupported_media_type")  # type: ignore[index]
    assert "--data-binary" in resp["error"]["message"]  # type: ignore[index]


async def _cli(gw: Gateway, *argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "jobs",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_jobs_cli_takes_its_options_after_the_subcommand_and_fails_when_nothing_is_sent(
    gateway: Gateway, smsc: SmscSimulator, tmp_path: Path
) -> None:
    office = await gateway.add_key("back_office")
    good = tmp_path / "good.csv"
    good.write_bytes(text().encode("gb18030"))
    common = ("--template", "traffic_conditions", "--window", window(NOW))
    rc, out, err = await _cli(
        gateway, "submit", str(good), *common, "--key", office.token, "--url", gateway.base
    )
    assert rc == 0, err
    assert "5 recipients, 0 bad row(s)" in out
    # Everyone on the list opted out: the job finishes, but nothing went out.
    for i in range(5):
        code, _, _ = await gateway.request(
            "POST", "/v1/admin/opt-outs", gateway._admin, {"phone": f"1391000{i:04d}"}
        )
        assert code == 201
    rc, out, err = await _cli(
        gateway, "submit", str(good), *common, "--url", gateway.base, "--key", office.token
    )
    assert rc == 1, (out, err)
    assert "(opted_out 5)" in out
    assert "nothing sent" in err
    bad = tmp_path / "bad.csv"
    bad.write_bytes(text().encode("gbk").replace(b"1391", b"1x91"))
    rc, out, err = await _cli(
        gateway, "--key", office.token, "--url", gateway.base, "submit", str(bad), *common
    )
    assert rc == 1
    assert "422" in err
    assert "line 2: to:" in err
