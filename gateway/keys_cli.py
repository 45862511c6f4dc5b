"""``gateway keys``: add, list, update, revoke API keys and rotate their callback secrets
(straight in Redis; callback secrets sealed with GATEWAY_SECRET_KEY)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gateway.core.secret_box import SecretBox
from gateway.core.status_events import SELECTABLE, StatusEventsError, parse_option
from gateway.receipts.callbacks import CallbackRejected, check_callback_url
from gateway.settings import ApiSettings, RedisSettings, SecuritySettings
from gateway.store.apikeys import ROLES, ApiKey, ApiKeyStore
from gateway.store.redis_conn import connect

_STATUS_EVENTS_HELP = (
    "the statuses whose webhooks the key's notices get when a request does not say "
    f"(comma separated: {','.join(SELECTABLE)}; all: every one, the default)"
)


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    k = sub.add_parser("keys", help="manage API keys", parents=[common])
    ks = k.add_subparsers(dest="keys_cmd", required=True)
    add = ks.add_parser(
        "add", help="create a key; prints it and its callback secret once", parents=[common]
    )
    add.add_argument("--name", required=True)
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument(
        "--callback-host",
        action="append",
        default=[],
        help="host allowed in callback_url (repeat; *.example.com for subdomains; "
        "host:port for a port other than 80 and 443; a private address only exactly)",
    )
    add.add_argument(
        "--events-url",
        default="",
        help="command-centre keys: where suspected cloned plates are POSTed "
        "(its host must be on --callback-host)",
    )
    add.add_argument("--status-events", default="", help=_STATUS_EVENTS_HELP)
    add.add_argument("--rate", type=float, help="requests per second (default from settings)")
    add.add_argument("--burst", type=int)
    add.add_argument("--json", action="store_true")
    ls = ks.add_parser("list", parents=[common])
    ls.add_argument("--json", action="store_true")
    up = ks.add_parser(
        "update", help="change a key's callback hosts, rate limit or events URL", parents=[common]
    )
    up.add_argument("key_id")
    up.add_argument(
        "--callback-host",
        action="append",
        help="the whole new allow-list (repeat); --add-callback-host keeps the old one",
    )
    up.add_argument("--add-callback-host", action="append", default=[])
    up.add_argument("--rate", type=float, help="requests per second")
    up.add_argument("--burst", type=int)
    up.add_argument("--events-url")
    up.add_argument("--status-events", help=_STATUS_EVENTS_HELP)
    up.add_argument("--json", action="store_true")
    rv = ks.add_parser("revoke", parents=[common])
    rv.add_argument("key_id")
    rs = ks.add_parser(
        "rotate-secret",
        help="a new callback-signing secret for the key; prints it once (the old one stops "
        "signing at once)",
        parents=[common],
    )
    rs.add_argument("key_id")
    rs.add_argument("--json", action="store_true")
    ks.add_parser(
        "seal-secrets",
        help="seal callback secrets still stored in plain text, and re-seal the rest under "
        "the first GATEWAY_SECRET_KEY",
        parents=[common],
    )


def _status_events(text: str | None) -> str | None:
    """The option as stored, or None (printed why) when it names an unknown status."""
    if text is None:
        return None
    try:
        return parse_option(text)
    except StatusEventsError as exc:
        print(f"gateway: --status-events: {exc}", file=sys.stderr)
        return None


def _events_url_ok(url: str, hosts: list[str] | tuple[str, ...]) -> bool:
    try:
        check_callback_url(url, hosts)
    except CallbackRejected as exc:
        print(f"gateway: --events-url: {exc}", file=sys.stderr)
        return False
    return True


def _view(k: ApiKey) -> dict[str, Any]:
    return {
        "id": k.id,
        "name": k.name,
        "role": k.role,
        "revoked": k.revoked,
        "callback_hosts": list(k.callback_hosts),
        "rate": k.rate,
        "burst": k.burst,
        "events_url": k.events_url,
        "status_events": k.status_events.split(",") if k.status_events else "all",
        "created_at": k.created_at,
    }


async def run(
    args: argparse.Namespace,
    redis_settings: RedisSettings,
    api: ApiSettings,
    security: SecuritySettings,
) -> int:
    redis = connect(redis_settings)
    try:
        box = SecretBox(security.secret_key.get_secret_value())
        store = ApiKeyStore(redis, redis_settings.keys(), box)
        if args.keys_cmd == "add":
            if args.events_url and not _events_url_ok(args.events_url, args.callback_host):
                return 2
            status_events = _status_events(args.status_events)
            if status_events is None:
                return 2
            new = await store.add(
                args.name,
                args.role,
                args.callback_host,
                args.rate or api.default_rate,
                args.burst or api.default_burst,
                args.events_url,
                status_events,
            )
            out = {
                "id": new.key.id,
                "key": new.token,
                "role": new.key.role,
                "name": new.key.name,
                "callback_secret": new.callback_secret,
                "callback_hosts": list(new.key.callback_hosts),
                "status_events": _view(new.key)["status_events"],
            }
            if args.json:
                print(json.dumps(out))
            else:
                for k, v in out.items():
                    print(f"{k}: {v}")
                print("Store the key and the callback secret now; they are not shown again.")
        elif args.keys_cmd == "list":
            rows = [_view(k) for k in await store.list()]
            if args.json:
                print(json.dumps(rows))
            else:
                for r in rows:
                    print(
                        f"{r['id']}  {r['role']:<15} {r['name']}"
                        f"{'  (revoked)' if r['revoked'] else ''}"
                    )
        elif args.keys_cmd == "update":
            return await _update(store, args)
        elif args.keys_cmd == "rotate-secret":
            rotated = await store.rotate_secret(args.key_id)
            if rotated is None:
                print(f"no key {args.key_id}", file=sys.stderr)
                return 1
            out = {"id": args.key_id, "callback_secret": rotated[1]}
            if args.json:
                print(json.dumps(out))
            else:
                print(f"callback_secret: {rotated[1]}")
                print("Give it to the receiver now; webhooks are signed with it from now on.")
        elif args.keys_cmd == "seal-secrets":
            print(f"sealed {await store.seal_all()} callback secret(s)")
        elif args.keys_cmd == "revoke":
            if not await store.revoke(args.key_id):
                print(f"no key {args.key_id}", file=sys.stderr)
                return 1
            print(f"revoked {args.key_id}")
        return 0
    finally:
        await redis.aclose()


async def _update(store: ApiKeyStore, args: argparse.Namespace) -> int:
    old = await store.by_id(args.key_id)
    if old is None:
        print(f"no key {args.key_id}", file=sys.stderr)
        return 1
    hosts = list(old.callback_hosts if args.callback_host is None else args.callback_host)
    hosts += args.add_callback_host
    if args.events_url and not _events_url_ok(args.events_url, hosts):
        return 2
    status_events = _status_events(args.status_events)
    if args.status_events is not None and status_events is None:
        return 2
    key = await store.update(
        args.key_id,
        callback_hosts=args.callback_host,
        add_callback_hosts=args.add_callback_host,
        rate=args.rate,
        burst=args.burst,
        events_url=args.events_url,
        status_events=status_events,
    )
    assert key is not None
    view = _view(key)
    if args.json:
        print(json.dumps(view))
    else:
        print(
            f"updated {key.id}: callback hosts {', '.join(key.callback_hosts) or '(none)'}; "
            f"rate {key.rate:g}/s, burst {key.burst}"
            + (f"; events URL {key.events_url}" if key.events_url else "")
            + f"; status events {key.status_events or 'all'}"
        )
    return 0
