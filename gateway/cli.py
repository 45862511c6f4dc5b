"""The ``gateway`` command: serve, keys, jobs, migrate-keys, smsc-sim, smtp-sink."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from gateway import keys_cli, logs
from gateway.gc_tuning import tune_for_service
from gateway.jobs import cli as jobs_cli
from gateway.settings import Settings, SimulatorSettings, UnsafeSettings


def common_options() -> argparse.ArgumentParser:
    """Options every subcommand takes, before or after its name: ``gateway keys list
    --log-level WARNING`` works as ``gateway --log-level WARNING keys list`` does."""
    c = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: an option not given after the subcommand leaves the one given before it.
    c.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    c.add_argument("--log-level", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return c


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gateway", description="Notice gateway")
    p.add_argument("--config", help="settings file (GATEWAY_*=value lines); env wins")
    p.add_argument("--log-level", default="INFO")
    common = common_options()
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve", help="run the API and/or the workers", parents=[common])
    s.add_argument("--role", choices=["all", "api", "worker"], default="all")

    keys_cli.add_parser(sub, common)

    ac = sub.add_parser(
        "asterisk-config", help="render dialplan/ into DIR for a private Asterisk", parents=[common]
    )
    ac.add_argument("dir")

    tts = sub.add_parser("tts", help="speech", parents=[common])
    tts_sub = tts.add_subparsers(dest="tts_cmd", required=True)
    tts_sub.add_parser(
        "render-prompts", help="render the fixed menu prompts into AUDIO_DIR", parents=[common]
    )

    jobs_cli.add_parser(sub, common)
    mk = sub.add_parser(
        "migrate-keys",
        help="rename the keys of a store written before lanes (once, gateway stopped)",
        parents=[common],
    )
    mk.add_argument("--dry-run", action="store_true", help="count, rename nothing")
    sink = sub.add_parser(
        "smtp-sink", help="a local SMTP server that prints what it receives", parents=[common]
    )
    sink.add_argument("--host", default="127.0.0.1")
    sink.add_argument("--port", type=int, help="default GATEWAY_SMTP_PORT")
    sim = sub.add_parser("smsc-sim", help="run the SMSC simulator", parents=[common])
    sim.add_argument("--host")
    sim.add_argument("--port", type=int)
    sim.add_argument("--receipt-delay", type=float)
    sim.add_argument("--undeliverable", action="append", default=[], metavar="NUMBER")
    sim.add_argument("--reject", action="append", default=[], metavar="NUMBER")
    sim.add_argument("--throttle-every", type=int, default=0)
    sim.add_argument("--quiet", action="store_true", help="do not print received messages")
    sim.add_argument(
        "--state-file", help="keep the receipts still owed here, and send them after a restart"
    )
    sim.add_argument("--accept-log", help="append a line per accepted submit_sm to this file")
    sim.add_argument(
        "--mo-inbox",
        metavar="DIR",
        help="send each DIR/*.sms file (line 1: sender, then the text) as an MO, then remove it",
    )
    return p


async def _sim(args: argparse.Namespace, settings: SimulatorSettings) -> int:
    from gateway.sms.simulator import Script, SmscSimulator

    script = Script(
        receipt_delay=args.receipt_delay
        if args.receipt_delay is not None
        else settings.sim_receipt_delay,
        undeliverable={n[-11:] for n in args.undeliverable},
        reject={n[-11:] for n in args.reject},
        throttle_every=args.throttle_every,
    )
    sim = SmscSimulator(
        args.host or settings.sim_host,
        args.port or settings.sim_port,
        script,
        echo=not args.quiet,
        state_file=args.state_file,
        accept_log=args.accept_log,
    )
    await sim.start()
    tune_for_service(throughput=True)
    task = asyncio.create_task(sim.serve())
    inbox: asyncio.Task[None] | None = None
    if args.mo_inbox:
        from gateway.sms.mo_inbox import watch

        inbox = asyncio.create_task(watch(sim, Path(args.mo_inbox), "12122"))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if inbox is not None:
        inbox.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await inbox
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.setup(args.log_level.upper())
    try:
        settings = Settings(args.config)
    except ValidationError as exc:
        for e in exc.errors(include_url=False, include_input=False):
            # A field's error has its field as loc; a link's names its variables itself.
            name = "GATEWAY_" + "_".join(str(p) for p in e["loc"]).upper() + ": "
            print(f"gateway: bad setting {name if e['loc'] else ''}{e['msg']}", file=sys.stderr)
        return 2
    except UnsafeSettings as exc:
        for problem in exc.problems:
            print(f"gateway: refused in production: {problem}", file=sys.stderr)
        return 2
    if args.cmd == "serve":
        import uvloop

        from gateway.runner import serve

        bulk_only = args.role == "worker" and settings.worker.worker_lanes == "bulk"
        return uvloop.run(
            serve(settings, args.role, ready=lambda: tune_for_service(throughput=bulk_only))
        )
    if args.cmd == "keys":
        return asyncio.run(keys_cli.run(args, settings.redis, settings.api, settings.security))
    if args.cmd == "asterisk-config":
        from gateway.voice.asterisk_config import render

        conf = render(settings, args.dir)
        print(f"asterisk -C {conf} -f")
        return 0
    if args.cmd == "tts":
        from gateway.voice.caller import MENU_TEXT, THANKS_TEXT
        from gateway.voice.tts import Tts

        engine = Tts(settings.voice.audio_dir, settings.voice.tts_engine, settings.voice.gtts_url)
        for name, text in (("menu", MENU_TEXT), ("thanks", THANKS_TEXT)):
            print(f"{name}: {asyncio.run(engine.render(text))}.wav")
        return 0
    if args.cmd == "jobs":
        base = f"http://{settings.http.http_host}:{settings.http.http_port}"
        return asyncio.run(jobs_cli.run(args, base))
    if args.cmd == "migrate-keys":
        return asyncio.run(_migrate_keys(settings, dry_run=args.dry_run))
    if args.cmd == "smtp-sink":
        from gateway.mail.sink import run_sink

        return asyncio.run(run_sink(args.host, args.port or settings.smtp.smtp_port))
    if args.cmd == "smsc-sim":
        import uvloop

        return uvloop.run(_sim(args, settings.simulator))
    return 2


async def _migrate_keys(settings: Settings, *, dry_run: bool) -> int:
    from gateway.store.key_migration import migrate
    from gateway.store.redis_conn import connect

    keys = settings.redis.keys()
    if keys.lanes > 1:
        # The old names are all one lane's; a notice's keys are now in the lane its id names.
        print(
            "migrate-keys renames into lane 0 only: run it with GATEWAY_REDIS_LANES=1 "
            "(a store from before lanes has one)",
            file=sys.stderr,
        )
        return 2
    redis = connect(settings.redis)
    try:
        report = await migrate(redis, keys, dry_run=dry_run)
    finally:
        await redis.aclose()
    verb = "would rename" if dry_run else "renamed"
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(report.renamed.items())) or "none"
    print(f"{verb} {sum(report.renamed.values())} keys ({kinds}); dropped {report.dropped}")
    for key in report.conflicts:  # key names hold phone numbers (caps, binding requests)
        print(f"left (its new name exists): {logs.mask_numbers(key)}", file=sys.stderr)
    return 1 if report.conflicts else 0


if __name__ == "__main__":
    sys.exit(main())
