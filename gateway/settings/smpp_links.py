"""Named SMPP links: the carrier accounts the gateway binds, and the lanes each one carries.

``GATEWAY_SMPP_LINKS=main,bulk`` names the links; link NAME reads ``GATEWAY_SMPP_<NAME>_*``.
A link's unset variable takes link main's value, and main's unset ones take the single-link
``GATEWAY_SMPP_*`` names, so a setup that never names links keeps working unchanged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from gateway.settings.base import deprecated

log = logging.getLogger(__name__)

LANES: frozenset[str] = frozenset({"priority", "bulk"})
Lane = Literal["priority", "bulk"]
# How a receipt's message id is matched to the submit_sm_resp id (carriers differ).
ReceiptId = Literal["exact", "auto", "hex", "decimal"]

# SMPP 3.4 field sizes, shared by the single-link settings and the links.
Port = Annotated[int, Field(ge=1, le=65535)]
SystemId = Annotated[str, Field(max_length=15)]
BindPassword = Annotated[SecretStr, Field(max_length=8)]
SystemType = Annotated[str, Field(max_length=12)]
# A short code or an alphanumeric sender id: printable ASCII, at most 20 octets.
SourceAddr = Annotated[str, Field(pattern=r"^[ -~]{1,20}$")]
Tps = Annotated[float, Field(gt=0)]
Window = Annotated[int, Field(ge=1, le=1000)]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class SmppLink(BaseModel):
    """One bind to one carrier account, and the lanes whose SMS it carries."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    host: Annotated[str, Field(min_length=1)]
    port: Port
    system_id: SystemId
    password: BindPassword
    system_type: SystemType
    source_addr: SourceAddr
    # Submits per second on this link, shared by every worker process through Redis.
    tps: Tps
    # Unacknowledged submit_sm at once, and how many of them bulk parts may hold.
    window: Window
    bulk_window: Window
    receipt_id: ReceiptId = "auto"
    # Links that are binds to one SMSC (its receipts may come on either) name one id space.
    id_space_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{0,40}$")] = ""
    lanes: frozenset[Lane]

    @property
    def id_space(self) -> str:
        """Where this link's carrier ids are unique: its SMSC. Receipts are matched within
        it, so two carriers handing out the same id never meet, while binds to one SMSC
        share theirs. By default a link's own: its name."""
        return self.id_space_name or self.name


# Variable suffix -> SmppLink field. Numbers given as 0 mean "unset", as they always have.
SUFFIXES: dict[str, str] = {
    "HOST": "host",
    "PORT": "port",
    "SYSTEM_ID": "system_id",
    "PASSWORD": "password",
    "SYSTEM_TYPE": "system_type",
    "SOURCE_ADDR": "source_addr",
    "TPS": "tps",
    "WINDOW": "window",
    "BULK_WINDOW": "bulk_window",
    "RECEIPT_ID": "receipt_id",
    "ID_SPACE": "id_space_name",
    "LANES": "lanes",
}
_NUMBERS = frozenset({"PORT", "TPS", "WINDOW", "BULK_WINDOW"})
# The single-link names that meant "the bulk account" before links had names.
LEGACY_BULK = ("HOST", "PORT", "SYSTEM_ID", "PASSWORD", "TPS")


def link_var(name: str, suffix: str) -> str:
    return f"GATEWAY_SMPP_{name.upper()}_{suffix}"


def _given(suffix: str, raw: str | None) -> bool:
    if raw is None or not raw.strip():
        return False
    if suffix in _NUMBERS:
        try:
            return float(raw) != 0
        except ValueError:
            return True  # let validation name the bad value
    return True


def _names(listed: str, env: Mapping[str, str]) -> list[str]:
    legacy = [link_var("bulk", s) for s in LEGACY_BULK if _given(s, env.get(link_var("bulk", s)))]
    if listed.strip():
        names = [n.strip().lower() for n in listed.split(",") if n.strip()]
        if legacy and "bulk" not in names:
            log.warning("%s set, but link bulk is not in GATEWAY_SMPP_LINKS: ignored", legacy[0])
        return names
    if not legacy:
        return ["main"]
    deprecated(
        ", ".join(legacy) + " without GATEWAY_SMPP_LINKS",
        "name the link: GATEWAY_SMPP_LINKS=main,bulk (link bulk carries the bulk lane)",
    )
    return ["main", "bulk"]


def _check_names(names: list[str], reserved: frozenset[str]) -> None:
    bad = [n for n in names if not _NAME.match(n)]
    if bad:
        raise ValueError(
            f"GATEWAY_SMPP_LINKS: link names are identifiers (a-z, 0-9, _): {', '.join(bad)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"GATEWAY_SMPP_LINKS: a link is named twice: {','.join(names)}")
    readers: dict[str, str] = {}
    for name in names:
        for suffix in SUFFIXES:
            var = link_var(name, suffix)
            if var in readers and var not in reserved:
                raise ValueError(f"links {readers[var]} and {name} would both read {var}")
            readers[var] = name


def _overrides(name: str, env: Mapping[str, str], reserved: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for suffix, field in SUFFIXES.items():
        var = link_var(name, suffix)
        # A single-link name that happens to look like a link's (GATEWAY_SMPP_BULK_WINDOW)
        # keeps its documented meaning.
        if var not in reserved and _given(suffix, env.get(var)):
            out[field] = env[var]  # as given, as the single-link names are
    if "lanes" in out:
        out["lanes"] = frozenset(p.strip() for p in out["lanes"].split(",") if p.strip())
    return out


def _assign_lanes(names: list[str], given: dict[str, dict[str, Any]]) -> dict[str, frozenset[str]]:
    lanes: dict[str, frozenset[str]] = {}
    for name in names:
        if "lanes" in given[name]:
            lanes[name] = given[name]["lanes"]
        elif name in LANES:
            lanes[name] = frozenset({name})  # a link named after a lane carries it
        elif name != "main":
            raise ValueError(f"{link_var(name, 'LANES')}: say which lanes link {name} carries")
    if "main" in names and "main" not in lanes:
        lanes["main"] = LANES - frozenset().union(*lanes.values())
    problems = [
        f"{link_var(n, 'LANES')}: unknown lane {lane!r}"
        for n in names
        for lane in sorted(lanes[n] - LANES)
    ]
    problems += [f"link {n} carries no lane" for n in names if not lanes[n]]
    for lane in sorted(LANES):
        on = [n for n in names if lane in lanes[n]]
        if not on:
            problems.append(
                f"lane {lane} is carried by no link (set {link_var('<name>', 'LANES')})"
            )
        elif len(on) > 1:
            problems.append(f"lane {lane} is on more than one link: {', '.join(on)}")
    if problems:
        raise ValueError("; ".join(problems))
    return lanes


def _build(name: str, values: dict[str, Any]) -> SmppLink:
    try:
        return SmppLink.model_validate({"name": name, **values})
    except ValidationError as exc:
        field_suffix = {field: suffix for suffix, field in SUFFIXES.items()}
        raise ValueError(
            "; ".join(
                f"{link_var(name, field_suffix.get(str(e['loc'][0]), '?'))}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)
            )
        ) from None


def parse_links(
    listed: str, main: Mapping[str, Any], env: Mapping[str, str], reserved: frozenset[str]
) -> tuple[SmppLink, ...]:
    """The links named by ``listed`` (GATEWAY_SMPP_LINKS), from ``env`` (upper-case names).

    ``main`` holds link main's values from the single-link names; ``reserved`` are those names,
    never read as a link's. Raises ValueError naming the variables at fault.
    """
    names = _names(listed, env)
    _check_names(names, reserved)
    given = {name: _overrides(name, env, reserved) for name in {*names, "main"}}
    lanes = _assign_lanes(names, given)
    # Not inherited: lanes are assigned, and another link's id space is its own carrier's.
    own = ("lanes", "id_space_name")
    base = {k: v for k, v in {**main, **given["main"]}.items() if k not in own}
    return tuple(_build(name, {**base, **given[name], "lanes": lanes[name]}) for name in names)
