"""The Lua scripts in ``gateway/store/lua/``: parsed, rendered and called by name.

Every script file starts with a header comment naming what it takes::

    -- What the script does.
    -- KEYS: notice, history, webhooks, events
    -- KEYS+: per event, ...   (only where a variable tail of keys follows the named ones)
    -- ARGV: id, status, at, detail_json

A key name ending in ``?`` is optional (passed as ``''``; sent to Redis as the other keys'
hash tag alone, ``{...}``, so that Redis Cluster sees one slot, and bound as ``''`` again in
the script). The loader turns the header into
``local K = {notice = KEYS[1], ...}`` and ``local A = {id = ARGV[1], ...}``, so a script indexes
``KEYS`` by position only in its declared variable tail and ``ARGV`` never, and
``Script.__call__`` refuses a call whose keys or arguments are not exactly the header's names
in its order. Directives, one per line, resolved at load time:

- ``--!include name.lua``: a shared fragment (once per script). A fragment's ``-- NEEDS: a, b``
  names the keys of the including script it uses (checked).
- ``--!table RANK`` (``HARD``, ``JOB_FINAL``, ``VOICE_FINAL``): a status table rendered from
  ``gateway.core.statuses.NoticeStatus``.
- ``--!keys notice history``: builders ``key_notice(id)`` ... rendered from ``Keys``' methods,
  for the keys a script can find only inside Redis (below).

Keys a script touches that its caller could not declare (input for Redis Cluster):

- ``sms_events``: a receipt names only its carrier message id; the notice (hash, history,
  per-part receipts) is found through the carrier-id mapping inside the script. Declaring
  them would cost the bulk receipt path a read per batch before the write.
- ``set_status``, ``outcome``, ``sms_events``, ``begin_call``, ``expire_unreceipted``: the
  notice's job's part in the notice's lane (``done``, counts; ``job`` is a field of the
  notice, read inside the script).
- ``move_voice_retries``: the notices named by the retry set (their ``kind`` picks the queue).
- ``verify_binding_request``, ``close_binding_request``: the plate's binding and audit trail;
  the plate is a field of the request, which the caller knows only by reference.
- every script that counts figures (``figures.lua``: ``create_notice``, ``set_status``,
  ``outcome``, ``sms_events``, ``job_admit``, ``follow_up``, ``follow_ups_missing``,
  ``accident_reply``, ``record_suspected_clone``): the hour bucket is the notice's
  ``stats_hour``, a field read inside the script; and the all-time total.
- ``follow_ups_missing``: the notices named by the due set.
- ``accident_reply``: the alert (hash, history) named by the reporter's latest-alert mark.

Scripts whose declared keys are several entities' (one hash tag per entity is not possible
there, so they share their lane's): ``create_notice`` (idempotency key, notice, queue stream,
plate's reminders), ``outcome`` (the fallback notice, queue, retry set), ``job_admit`` (the
job's part in the lane, a notice, cap and dedup key per row), ``sms_events`` (the keys of
every event in the batch), ``job_cancel`` and ``job_finish`` (the job, the active set, the
outbox),
``record_suspected_clone``, ``follow_up`` (notice, plate's warnings, due set),
``accident_reply``, the binding-request scripts (the request and
the audit lists), and every script that writes a shared stream (the webhook outbox, the
queues) or set (active jobs, cancelled jobs, retries).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Any

import redis.asyncio as aioredis

from gateway.core.statuses import (
    HARD_STATUSES,
    JOB_FINAL_STATUSES,
    VOICE_JOB_FINAL_STATUSES,
    NoticeStatus,
)
from gateway.store.keys import Keys

_DIRECTIVE = re.compile(r"^--!(\w+)\s*(.*)$")
_SAFE_LITERAL = re.compile(r"^[^'\\\n]*$")
_TAG = re.compile(r"\{[^}]+\}")


class ScriptCallError(TypeError):
    """A call's keys or arguments are not the ones the script's header names."""


@dataclass(frozen=True, slots=True)
class Header:
    keys: tuple[str, ...]  # names without the optional mark
    optional: frozenset[str]
    argv: tuple[str, ...]
    more_keys: str  # what follows the named keys, when the script takes a variable tail
    needs: tuple[str, ...]  # a fragment: the including script's keys it uses


def _names(text: str) -> tuple[str, ...]:
    text = text.strip()
    if text in ("", "none"):
        return ()
    return tuple(n.strip() for n in text.split(","))


def parse_header(source: str) -> Header:
    """The KEYS/ARGV/NEEDS lines of the comment block a file starts with."""
    fields: dict[str, str] = {}
    for line in source.splitlines():
        if not line.startswith("--") or line.startswith("--!"):
            break
        m = re.match(r"^-- (KEYS|KEYS\+|ARGV|NEEDS): (.*)$", line)
        if m:
            fields[m.group(1)] = m.group(2)
    keys = _names(fields.get("KEYS", ""))
    return Header(
        tuple(k.rstrip("?") for k in keys),
        frozenset(k.rstrip("?") for k in keys if k.endswith("?")),
        _names(fields.get("ARGV", "")),
        fields.get("KEYS+", ""),
        _names(fields.get("NEEDS", "")),
    )


def source_of(filename: str) -> str:
    return (resources.files("gateway.store") / "lua" / filename).read_text(encoding="utf-8")


def script_names() -> list[str]:
    """Every script (not fragment) in the package: files with a ``KEYS`` line."""
    names = []
    for entry in resources.files("gateway.store").joinpath("lua").iterdir():
        if entry.name.endswith(".lua") and re.search(r"^-- KEYS: ", entry.read_text(), re.M):
            names.append(entry.name.removesuffix(".lua"))
    return sorted(names)


def status_tables() -> dict[str, dict[str, int]]:
    """The tables ``--!table`` renders: status -> rank, and the sets as status -> 1."""
    return {
        "RANK": {s.value: s.rank for s in NoticeStatus},
        "HARD": {s.value: 1 for s in sorted(HARD_STATUSES)},
        "JOB_FINAL": {s.value: 1 for s in sorted(JOB_FINAL_STATUSES)},
        "VOICE_FINAL": {s.value: 1 for s in sorted(VOICE_JOB_FINAL_STATUSES)},
    }


def _lua_table(name: str) -> str:
    items = ", ".join(f"{k}={v}" for k, v in status_tables()[name].items())
    return f"local {name} = {{{items}}}"


def _key_builder(keys: Keys, name: str) -> str:
    """``local key_<name> = function(a1, ...)``, the same name ``Keys.<name>`` makes. A key in
    a lane is built in the lane of the script's first key (``LANE``): the one the script runs
    in, so that what it finds inside Redis is in the slot of what it was given."""
    keys = replace(keys, lanes=1)  # every lane-0 key stands for one in LANE
    method = getattr(keys, name)
    required = [p for p in inspect.signature(method).parameters.values() if p.default is p.empty]
    params = [f"a{i}" for i in range(len(required))]
    marks = [chr(i + 1) for i in range(len(params))]
    built = method(*marks)
    pieces = []
    if built.startswith(keys.in_lane(0)):
        pieces.append("LANE")
        built = built.removeprefix(keys.in_lane(0))
    parts = re.split("([\x01-\x09])", built)
    for part in parts:
        if part in marks:
            pieces.append(params[marks.index(part)])
        elif part:
            if not _SAFE_LITERAL.match(part):
                raise ValueError(f"key prefix {keys.prefix!r} cannot be rendered into Lua")
            pieces.append(f"'{part}'")
    return f"local function key_{name}({', '.join(params)}) return {' .. '.join(pieces)} end"


def _lane_of_first_key(keys: Keys) -> str:
    """``LANE``: the start of the keys in the lane of ``KEYS[1]`` (its hash tag, which is a
    lane's: every script that finds keys inside Redis is given a key of its lane first; a
    first key with no tag, in a probe, stands for lane 0)."""
    if not _SAFE_LITERAL.match(keys.prefix):
        raise ValueError(f"key prefix {keys.prefix!r} cannot be rendered into Lua")
    return (
        f"local LANE = '{keys.prefix}:' .. (string.match(KEYS[1] or '', '%b{{}}') or "
        f"'{keys.lane_tag(0)}') .. ':'"
    )


def _bindings(header: Header) -> str:
    keys = ", ".join(
        f"{n}=absent(KEYS[{i}])" if n in header.optional else f"{n}=KEYS[{i}]"
        for i, n in enumerate(header.keys, 1)
    )
    if header.optional:
        keys = (
            "local function absent(k) if string.match(k, '^%b{}$') then return '' end "
            "return k end\n" + "local K = {" + keys
        )
        return f"{keys}}}\nlocal A = {{{_argv(header)}}}\n"
    return f"local K = {{{keys}}}\nlocal A = {{{_argv(header)}}}\n"


def _argv(header: Header) -> str:
    return ", ".join(f"{n}=ARGV[{i}]" for i, n in enumerate(header.argv, 1))


def hash_tag(key: str) -> str:
    """The part of ``key`` Redis Cluster hashes, braces included; ``''`` when it has none."""
    m = _TAG.search(key)
    return m.group(0) if m else ""


@cache
def render(name: str, prefix: str) -> str:
    """The script ``name`` as Redis runs it, for keys under ``prefix``."""
    return render_text(source_of(f"{name}.lua"), prefix, name)


def render_text(source: str, prefix: str, name: str = "script") -> str:
    """A script's text with its bindings prepended and its directives resolved."""
    header = parse_header(source)
    declared = set(header.keys)
    included: set[str] = set()
    keys = Keys(prefix)
    built: set[str] = set()

    def expand(text: str) -> list[str]:
        out: list[str] = []
        for line in text.splitlines():
            m = _DIRECTIVE.match(line)
            if m is None:
                out.append(line)
                continue
            what, rest = m.group(1), m.group(2).split()
            if what == "include":
                (fragment,) = rest
                if fragment in included:
                    continue
                included.add(fragment)
                text = source_of(fragment)
                missing = set(parse_header(text).needs) - declared
                if missing:
                    raise ValueError(f"{name}.lua lacks KEYS {sorted(missing)} for {fragment}")
                out += expand(text)
            elif what == "table":
                out += [_lua_table(t) for t in rest]
            elif what == "keys":
                if not built:
                    out.append(_lane_of_first_key(keys))
                out += [_key_builder(keys, k) for k in rest if k not in built]
                built.update(rest)
            else:
                raise ValueError(f"{name}.lua: unknown directive --!{what}")
        return out

    return _bindings(header) + "\n".join(expand(source)) + "\n"


def scripts(redis: aioredis.Redis, keys: Keys, *names: str) -> tuple[Script, ...]:
    """The scripts named, each registered with ``redis``."""
    return tuple(Script(redis, name, keys) for name in names)


class Script:
    """One script, registered with a client; called with its keys and arguments by name."""

    def __init__(self, redis: aioredis.Redis, name: str, keys: Keys) -> None:
        self.name = name
        self.header = parse_header(source_of(f"{name}.lua"))
        self._script = redis.register_script(render(name, keys.prefix))

    @property
    def sha(self) -> str:
        return str(self._script.sha)

    @property
    def source(self) -> str:
        return str(self._script.script)

    def operands(
        self, keys: Mapping[str, str], args: Mapping[str, Any], more_keys: Sequence[str] = ()
    ) -> tuple[list[str], list[Any]]:
        """The KEYS and ARGV a call sends, in the header's order; a call that does not match
        the header raises ``ScriptCallError``."""
        if tuple(keys) != self.header.keys or tuple(args) != self.header.argv:
            raise ScriptCallError(
                f"{self.name}: called with KEYS {tuple(keys)} ARGV {tuple(args)}; the script "
                f"takes KEYS {self.header.keys} ARGV {self.header.argv}"
            )
        if more_keys and not self.header.more_keys:
            raise ScriptCallError(f"{self.name} takes no keys beyond {self.header.keys}")
        names = list(keys.values())
        if "" in names:
            tag = next((t for t in map(hash_tag, names) if t), "")
            names = [k or tag for k in names]
        return [*names, *more_keys], list(args.values())

    async def __call__(
        self,
        keys: Mapping[str, str],
        args: Mapping[str, Any],
        *,
        more_keys: Sequence[str] = (),
        client: Any = None,
    ) -> Any:
        key_list, arg_list = self.operands(keys, args, more_keys)
        return await self._script(keys=key_list, args=arg_list, client=client)
