"""Named SMPP links from settings: parsing, link main's fallbacks, the older bulk names, and
the errors a wrong configuration gets at load."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from gateway.settings import SmppLink, SmppSettings, base


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(base, "_warned", set())  # each test sees its own first warning


def _smpp(monkeypatch: pytest.MonkeyPatch, **env: str) -> SmppSettings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return SmppSettings()


def _refused(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    with pytest.raises(ValidationError) as caught:
        _smpp(monkeypatch, **env)
    return str(caught.value)


def test_without_links_one_link_main_carries_both_lanes_from_the_old_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    smpp = _smpp(
        monkeypatch,
        GATEWAY_SMPP_HOST="smsc.example",
        GATEWAY_SMPP_PORT="2776",
        GATEWAY_SMPP_SYSTEM_ID="police",
        GATEWAY_SMPP_PASSWORD="pw1",
        GATEWAY_SMPP_SYSTEM_TYPE="VMA",
        GATEWAY_SMPP_SOURCE_ADDR="12345",
        GATEWAY_SMPP_TPS="80",
        GATEWAY_SMPP_WINDOW="32",
        GATEWAY_SMPP_BULK_WINDOW="8",
    )
    (main,) = smpp.links()
    assert main == SmppLink(
        name="main",
        host="smsc.example",
        port=2776,
        system_id="police",
        password=SecretStr("pw1"),
        system_type="VMA",
        source_addr="12345",
        tps=80,
        window=32,
        bulk_window=8,
        receipt_id="auto",
        lanes=frozenset({"priority", "bulk"}),
    )
    assert smpp.links_for(frozenset({"priority", "bulk"})) == {"priority": main, "bulk": main}
    assert (
        smpp.link(bulk=True)
        == smpp.link(bulk=False)
        == (
            "smsc.example",
            2776,
            "police",
            "pw1",
            80.0,
        )
    )


def test_empty_and_zero_bulk_names_as_compose_passes_them_mean_no_bulk_link(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    smpp = _smpp(
        monkeypatch,
        GATEWAY_SMPP_BULK_HOST="",
        GATEWAY_SMPP_BULK_PORT="0",
        GATEWAY_SMPP_BULK_SYSTEM_ID="",
        GATEWAY_SMPP_BULK_PASSWORD="",
        GATEWAY_SMPP_BULK_TPS="0",
    )
    assert [link.name for link in smpp.links()] == ["main"]
    assert "deprecated" not in caplog.text


def test_old_bulk_names_mean_a_bulk_link_and_are_logged_as_deprecated_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env = {
        "GATEWAY_SMPP_PASSWORD": "mainpw",
        "GATEWAY_SMPP_BULK_HOST": "bulk.example",
        "GATEWAY_SMPP_BULK_SYSTEM_ID": "police-bulk",
        "GATEWAY_SMPP_BULK_TPS": "20",
    }
    with caplog.at_level(logging.WARNING, logger="gateway.settings.base"):
        smpp = _smpp(monkeypatch, **env)
        SmppSettings()  # a second load (another group, another process part) stays quiet
    main, bulk = smpp.links()
    assert (main.lanes, bulk.lanes) == (frozenset({"priority"}), frozenset({"bulk"}))
    assert (bulk.host, bulk.system_id, bulk.tps) == ("bulk.example", "police-bulk", 20)
    # What the bulk account leaves empty is the main account's, as before.
    assert (bulk.port, bulk.password.get_secret_value()) == (2775, "mainpw")
    assert smpp.link(bulk=True) == ("bulk.example", 2775, "police-bulk", "mainpw", 20.0)
    assert smpp.link(bulk=False)[0] == "127.0.0.1"
    warnings = [r for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(warnings) == 1
    assert "GATEWAY_SMPP_BULK_HOST" in warnings[0].getMessage()
    assert "GATEWAY_SMPP_LINKS=main,bulk" in warnings[0].getMessage()
    assert "mainpw" not in caplog.text


def test_each_link_matches_receipts_in_its_own_id_space_unless_binds_share_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {"GATEWAY_SMPP_LINKS": "main,bulk", "GATEWAY_SMPP_MAIN_ID_SPACE": "carrier-a"}
    main, bulk = _smpp(monkeypatch, **env).links()
    # Not inherited from link main: bulk is another carrier's until it says otherwise.
    assert (main.id_space, bulk.id_space) == ("carrier-a", "bulk")
    # Two binds to one SMSC (its receipts may come on either) share one.
    main, bulk = _smpp(monkeypatch, **env, GATEWAY_SMPP_BULK_ID_SPACE="carrier-a").links()
    assert (main.id_space, bulk.id_space) == ("carrier-a", "carrier-a")
    refused = _refused(monkeypatch, GATEWAY_SMPP_BULK_ID_SPACE="a/b")
    assert "GATEWAY_SMPP_BULK_ID_SPACE" in refused


def test_named_links_read_their_own_names_and_take_link_mains_for_the_rest(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    smpp = _smpp(
        monkeypatch,
        GATEWAY_SMPP_LINKS="main,bulk",
        GATEWAY_SMPP_HOST="old.example",
        GATEWAY_SMPP_MAIN_HOST="main.example",  # the link's own name wins over the old one
        GATEWAY_SMPP_MAIN_RECEIPT_ID="hex",
        GATEWAY_SMPP_BULK_SYSTEM_ID="police-bulk",
        GATEWAY_SMPP_BULK_PASSWORD="bulkpw",
        GATEWAY_SMPP_BULK_SOURCE_ADDR="TrafficPol",
        GATEWAY_SMPP_BULK_BULK_WINDOW="40",
        GATEWAY_SMPP_BULK_RECEIPT_ID="decimal",
    )
    main, bulk = smpp.links()
    assert (main.host, main.receipt_id, main.lanes) == ("main.example", "hex", {"priority"})
    assert bulk.host == "main.example"
    assert (bulk.system_id, bulk.password.get_secret_value()) == ("police-bulk", "bulkpw")
    assert (bulk.source_addr, bulk.bulk_window, bulk.receipt_id) == ("TrafficPol", 40, "decimal")
    assert bulk.lanes == {"bulk"}  # a link named after a lane carries it
    assert smpp.links_for(frozenset({"bulk"})) == {"bulk": bulk}
    assert "deprecated" not in caplog.text


def test_the_old_bulk_window_name_keeps_its_meaning_beside_a_bulk_link(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    smpp = _smpp(monkeypatch, GATEWAY_SMPP_LINKS="main,bulk", GATEWAY_SMPP_BULK_WINDOW="8")
    main, bulk = smpp.links()
    assert (main.window, main.bulk_window) == (64, 8)
    assert (bulk.window, bulk.bulk_window) == (64, 8)


def test_lanes_route_to_any_named_link(monkeypatch: pytest.MonkeyPatch) -> None:
    smpp = _smpp(
        monkeypatch,
        GATEWAY_SMPP_LINKS="main,carrier2",
        GATEWAY_SMPP_CARRIER2_HOST="smsc.carrier2.example",
        GATEWAY_SMPP_CARRIER2_LANES="bulk",
    )
    routes = smpp.links_for(frozenset({"priority", "bulk"}))
    assert {lane: link.name for lane, link in routes.items()} == {
        "priority": "main",
        "bulk": "carrier2",
    }
    assert routes["bulk"].host == "smsc.carrier2.example"


def test_link_main_need_not_be_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    smpp = _smpp(
        monkeypatch,
        GATEWAY_SMPP_LINKS="priority,bulk",
        GATEWAY_SMPP_HOST="shared.example",
        GATEWAY_SMPP_BULK_PORT="2800",
    )
    prio, bulk = smpp.links()
    assert (prio.host, prio.port, prio.lanes) == ("shared.example", 2775, {"priority"})
    assert (bulk.host, bulk.port, bulk.lanes) == ("shared.example", 2800, {"bulk"})


def test_links_for_refuses_an_unknown_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unknown lanes"):
        _smpp(monkeypatch).links_for(frozenset({"express"}))


def test_a_link_is_frozen_and_hides_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    (main,) = _smpp(monkeypatch, GATEWAY_SMPP_PASSWORD="pw1").links()
    assert "pw1" not in repr(main)
    with pytest.raises(ValidationError):
        main.host = "elsewhere"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GATEWAY_SMPP_LINKS": "main,Bulk-2"}, "link names are identifiers (a-z, 0-9, _): bulk-2"),
        ({"GATEWAY_SMPP_LINKS": "main,main"}, "a link is named twice"),
        ({"GATEWAY_SMPP_LINKS": "main,2nd"}, "identifiers"),
        ({"GATEWAY_SMPP_LINKS": "main,x"}, "GATEWAY_SMPP_X_LANES: say which lanes link x carries"),
        (
            {"GATEWAY_SMPP_LINKS": "main,bulk", "GATEWAY_SMPP_MAIN_LANES": "priority,bulk"},
            "lane bulk is on more than one link: main, bulk",
        ),
        ({"GATEWAY_SMPP_LINKS": "bulk"}, "lane priority is carried by no link"),
        (
            {"GATEWAY_SMPP_LINKS": "main,bulk", "GATEWAY_SMPP_BULK_LANES": "priority,bulk"},
            "link main carries no lane",
        ),
        (
            {"GATEWAY_SMPP_LINKS": "main,x", "GATEWAY_SMPP_X_LANES": "express"},
            "GATEWAY_SMPP_X_LANES: unknown lane 'express'",
        ),
        (
            {"GATEWAY_SMPP_LINKS": "main,bulk", "GATEWAY_SMPP_BULK_PORT": "99999"},
            "GATEWAY_SMPP_BULK_PORT: Input should be less than or equal to 65535",
        ),
        (
            {"GATEWAY_SMPP_LINKS": "main,bulk", "GATEWAY_SMPP_BULK_RECEIPT_ID": "base64"},
            "GATEWAY_SMPP_BULK_RECEIPT_ID: Input should be 'exact', 'auto', 'hex' or 'decimal'",
        ),
        (
            {"GATEWAY_SMPP_LINKS": "main,bulk", "GATEWAY_SMPP_BULK_TPS": "fast"},
            "GATEWAY_SMPP_BULK_TPS: Input should be a valid number",
        ),
        (
            {"GATEWAY_SMPP_LINKS": "main,a,a_bulk", "GATEWAY_SMPP_A_LANES": "bulk"},
            "links a and a_bulk would both read GATEWAY_SMPP_A_BULK_WINDOW",
        ),
    ],
    ids=[
        "not an identifier",
        "named twice",
        "leading digit",
        "no lanes for a custom link",
        "lane on two links",
        "lane on no link",
        "link with no lane",
        "unknown lane",
        "port out of range",
        "unknown receipt id form",
        "tps not a number",
        "names that collide",
    ],
)
def test_a_wrong_link_configuration_is_refused_at_load_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    assert message in _refused(monkeypatch, **env)


def test_a_too_long_link_password_is_refused_without_being_echoed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = _refused(
        monkeypatch, GATEWAY_SMPP_LINKS="main,bulk", GATEWAY_SMPP_BULK_PASSWORD="TooLongPw1"
    )
    assert "GATEWAY_SMPP_BULK_PASSWORD" in text
    assert "TooLongPw1" not in text


def test_old_bulk_names_are_ignored_with_a_warning_when_links_leave_bulk_out(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    smpp = _smpp(monkeypatch, GATEWAY_SMPP_LINKS="main", GATEWAY_SMPP_BULK_HOST="bulk.example")
    assert [link.name for link in smpp.links()] == ["main"]
    assert "GATEWAY_SMPP_BULK_HOST set, but link bulk is not in GATEWAY_SMPP_LINKS" in caplog.text


def test_link_names_come_from_the_config_file_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conf = tmp_path / "gateway.env"
    conf.write_text(
        "GATEWAY_SMPP_LINKS=main,bulk\n"
        "GATEWAY_SMPP_BULK_HOST=file.example\n"
        "GATEWAY_SMPP_BULK_TPS=30\n"
    )
    monkeypatch.setenv("GATEWAY_SMPP_BULK_TPS", "40")
    _, bulk = SmppSettings(_env_file=str(conf)).links()  # type: ignore[call-arg]
    assert (bulk.host, bulk.tps) == ("file.example", 40)
