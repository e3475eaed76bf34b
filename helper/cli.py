"""`podnat`: the command line. Exit codes are a contract: `helper.errors.ExitCode`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from helper import engine, report
from helper.errors import ExitCode, PodnatError, exit_codes_help
from helper.host.base import Target
from helper.host.kernel import KernelHost
from helper.log import Logger
from helper.plan.model import RedirectPlan
from helper.plan.parse import InvalidPlanError
from helper.sources.base import EventSink, SourceError
from helper.sources.select import Selected, add_source_arguments, select_source
from helper.system import StrPath
from helper.system.netns_lock import DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from helper.admission.inject import InjectConfig


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the `podnat` command itself (argv given: a caller in this process)
        _exit_now(main(sys.argv[1:]))
    argv = list(argv)
    args = _parser(argv).parse_args(argv)
    if args.command in ("agent", "webhook"):  # long-lived: the standard logging module
        report.setup_logging(args.log_format, args.log_level)
        return _command(args, Logger())
    with report.log_to_stderr(args.log_format, args.log_level):
        return _command(args, Logger())


def _command(args: argparse.Namespace, log: Logger) -> int:
    termination_log = report.termination_log_path(args.termination_log)
    events: EventSink | None = None
    try:
        if args.command == "cleanup":
            outcome = _engine().cleanup(_target(args))
        elif args.command == "inject":
            outcome = _inject(args, log)
        elif args.command == "agent":
            from helper.agent.main import run  # noqa: PLC0415 - only this command runs the agent

            return run(args)
        elif args.command == "webhook":
            from pathlib import Path  # noqa: PLC0415 - not on the apply path (helper.system)

            from helper.admission.server import Limits, serve  # noqa: PLC0415 - only this command serves

            limits = Limits(args.header_timeout, args.body_timeout, args.idle_timeout)
            cert, key = Path(args.cert), Path(args.key)
            serve(_inject_config(args), args.host, args.port, cert, key, limits=limits)
            outcome = engine.Outcome("webhook stopped")
        else:
            selected = select_source(args)
            events = selected.source if isinstance(selected.source, EventSink) else None
            outcome = _run(args, selected, log)
            applied = args.command == "apply" and not args.dry_run
            if events is not None and applied and outcome.exit_code == ExitCode.OK:
                events.event("RedirectsApplied", outcome.summary, warning=outcome.warning)
    except PodnatError as err:
        if isinstance(err, InvalidPlanError):
            for line in err.lines():
                log.error("%s", line)
            log.error("invalid annotations: nothing changed")
            message = "invalid annotations, nothing changed:\n" + "\n".join(err.lines())
            if events is not None:
                events.event("RedirectsInvalid", message, warning=True)
        else:
            message = str(err)
            log.error("%s", message)
        report.write_termination_log(termination_log, message)
        return err.exit_code
    return _finish(outcome, log, termination_log)


def _finish(outcome: engine.Outcome, log: Logger, termination_log: StrPath | None) -> int:
    if outcome.output:
        print(outcome.output, end="")  # noqa: T201 - the dry-run's ruleset, verify's diff
    if outcome.exit_code == ExitCode.OK:
        # How long the pod waited for podnat, in JSON logs (`make bench` reads it).
        log.info("%s", outcome.summary, extra={"since_start_ms": report.since_process_start_ms()})
    else:
        log.error("%s", outcome.summary)
    report.write_termination_log(termination_log, outcome.summary)
    return outcome.exit_code


def _run(args: argparse.Namespace, selected: Selected, log: Logger) -> engine.Outcome:
    # Annotations are read, and Events posted, from the namespace podnat started in;
    # only the rules are made inside --netns.
    where = f"{selected.source.describe()} ({selected.why})"
    plan = engine.read_plan(selected.source)
    if plan.is_empty and args.command == "apply":
        return engine.Outcome(f"no podnat.io/redirect annotation in {where}: nothing to do")
    log.info("annotations read from %s", where)
    if args.command == "plan":
        return _print_plan(plan, args.format)
    if args.command == "verify":
        return _engine().verify(plan, _target(args))
    return _engine().apply(plan, _target(args), dry_run=args.dry_run)


def _engine() -> engine.Engine:
    # One operation, then exit: the named choice that leaves the nft context to the
    # kernel and serves the first iptables family in-process (see KernelHost).
    return engine.Engine(KernelHost(one_shot=True))


def _target(args: argparse.Namespace) -> Target:
    return Target(args.netns, args.backend, args.lock_file, args.lock_timeout)


def _inject(args: argparse.Namespace, log: Logger) -> engine.Outcome:
    # ruamel.yaml (tens of ms to import) comes with these: never on the apply path.
    from helper.admission.inject_stream import Refused, inject_stream  # noqa: PLC0415

    where = "stdin" if args.filename == "-" else args.filename
    try:
        if args.filename == "-":
            raw = sys.stdin.buffer.read()
        else:
            with open(args.filename, "rb") as file:
                raw = file.read()
        text = raw.decode("utf-8")
    except OSError as err:
        raise SourceError(f"{where}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        from helper.errors import ManifestError  # noqa: PLC0415

        raise ManifestError(f"{where}: not UTF-8 text: {err.reason}") from err
    try:
        injected = inject_stream(text, where, _inject_config(args))
    except Refused as refused:
        for line in refused.lines:
            log.error("%s", line)
        refused.args = (f"{where}: refused, nothing written (each reason above)",)
        raise
    for warning in injected.warnings:
        log.warning("%s", warning)
    print(injected.text, end="")  # noqa: T201 - inject's output
    return engine.Outcome(injected.summary(where))


def _inject_config(args: argparse.Namespace) -> InjectConfig:
    from helper.admission.inject import InjectConfig  # noqa: PLC0415 - not on the apply path

    return InjectConfig(args.image, args.pull_policy, args.backend, args.run_as_user, args.mode)


def _print_plan(plan: RedirectPlan, fmt: str) -> engine.Outcome:
    from helper.render import iptables, nft  # noqa: PLC0415 - only this command renders both

    resolved = engine.resolve_offline(plan, fmt)
    if fmt == "json":
        from helper.plan_json import dump_plan  # noqa: PLC0415 - pydantic only on this path

        print(dump_plan(plan))  # noqa: T201
    elif fmt == "nft":
        print(nft.render_listing(resolved), end="")  # noqa: T201
    else:
        print(iptables.render_text(resolved), end="")  # noqa: T201
    return engine.Outcome(f"planned: {plan.summary()}")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to 3600")
    return value


class _Formatter(argparse.HelpFormatter):
    """argparse sizes a formatter from the terminal through shutil, which imports lzma,
    bz2 and zlib (~4 ms of every init container's start), even just to check each
    argument as it is added. The same width, as shutil.get_terminal_size finds it."""

    def __init__(self, prog: str) -> None:
        try:
            columns = int(os.environ.get("COLUMNS", "0"))
        except ValueError:
            columns = 0
        if columns <= 0:
            try:
                columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
            except (AttributeError, ValueError, OSError):
                columns = 0
        super().__init__(prog, width=(columns or 80) - 2)


class _Parser(argparse.ArgumentParser):
    """Every parser of podnat's, subcommands included (add_subparsers takes its type)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(**kwargs)


_COMMANDS = ("apply", "plan", "verify", "cleanup", "inject", "webhook", "agent")


def _parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--log-format", choices=("text", "json"), default="text")
    common.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="info"
    )
    common.add_argument(
        "--termination-log",
        default=None,
        help="also write the final message here (default: /dev/termination-log if writable)",
    )
    source = _Parser(add_help=False)
    add_source_arguments(source)
    kernel = _Parser(add_help=False)
    kernel.add_argument("--backend", choices=engine.BACKEND_CHOICES, default="auto")
    kernel.add_argument(
        "--netns",
        default=None,
        help="enter this network namespace first (default: the current one)",
    )
    kernel.add_argument(
        "--lock-file",
        default=None,
        help="xtables lock (default $XTABLES_LOCKFILE or /run/xtables.lock)",
    )
    kernel.add_argument(
        "--lock-timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        help="wait at most this long for another podnat in the namespace (default %(default)gs)",
    )

    parser = _Parser(
        prog="podnat",
        parents=[common],
        description="Install a pod's port redirects (podnat.io/* annotations) as NAT rules.",
        epilog=exit_codes_help(),
    )
    sub = parser.add_subparsers(dest="command", required=True)
    # Building every subcommand costs ~6 ms of an init container's start; when argv
    # names one (and asks no help), only that one is built.
    named = next((arg for arg in argv if not arg.startswith("-")), None)
    only = named if named in _COMMANDS and not {"-h", "--help"} & set(argv) else None
    if only in (None, "apply"):
        apply = sub.add_parser(
            "apply",
            parents=[common, source, kernel],
            help="read annotations, plan, replace podnat's rules atomically",
        )
        apply.add_argument(
            "--dry-run", action="store_true", help="print the exact ruleset and change nothing"
        )
    if only in (None, "plan"):
        plan = sub.add_parser(
            "plan", parents=[common, source], help="print the rules as text; touches no kernel"
        )
        plan.add_argument("--format", choices=("nft", "iptables", "json"), default="nft")
    if only in (None, "verify"):
        sub.add_parser(
            "verify",
            parents=[common, source, kernel],
            help="exit 0 if the live rules equal the plan, else 1 and a diff",
        )
    if only in (None, "inject", "webhook"):
        from helper.admission.inject import InjectConfig  # noqa: PLC0415 - not on the apply path
        from helper.admission.podnat_init import MODES  # noqa: PLC0415

        injected = _Parser(add_help=False)
        injected.add_argument("--image", default=InjectConfig.image, help="the podnat image")
        injected.add_argument("--pull-policy", default=InjectConfig.pull_policy)
        injected.add_argument(
            "--backend",
            choices=engine.BACKEND_CHOICES,
            default="auto",
            help="--backend for the injected podnat apply",
        )
        injected.add_argument("--run-as-user", type=int, default=None)
        injected.add_argument(
            "--mode",
            choices=MODES,
            default="init",
            help="init: add the podnat-init init container (NET_ADMIN); agent: only the "
            "readiness gate podnat.io/redirects-applied (the node agent applies the rules)",
        )
    if only in (None, "inject"):
        inject = sub.add_parser(
            "inject",
            parents=[common, injected],
            help="add podnat (init container, or agent mode's readiness gate) to manifests",
        )
        inject.add_argument("-f", "--filename", default="-", help="YAML file, or - for stdin")
    if only in (None, "webhook"):
        webhook = sub.add_parser(
            "webhook", parents=[common, injected], help="serve the mutating admission webhook"
        )
        webhook.add_argument("--cert", required=True, help="TLS certificate (PEM)")
        webhook.add_argument("--key", required=True, help="TLS private key (PEM)")
        webhook.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a pod's server
        webhook.add_argument("--port", type=int, default=8443)
        for name, default, what in (
            ("header", 10, "for the TLS handshake and a request's headers"),
            ("body", 10, "for a request's body, once its headers are in"),
            ("idle", 30, "a kept-alive connection may idle between requests"),
        ):
            webhook.add_argument(
                f"--{name}-timeout",
                type=_whole_seconds,
                default=default,
                metavar="SECONDS",
                help=f"seconds {what}, then the connection is closed (default {default})",
            )
    if only in (None, "agent"):
        from helper.agent.flags import add_arguments  # noqa: PLC0415 - not on the apply path

        agent = sub.add_parser(
            "agent", parents=[common], help="node agent: keep every managed pod's redirects live"
        )
        add_arguments(agent, _seconds)
        agent.add_argument(
            "--lock-timeout",
            type=_seconds,
            default=DEFAULT_TIMEOUT,
            help="wait at most this long for another podnat in a namespace (default %(default)gs)",
        )
    if only in (None, "cleanup"):
        sub.add_parser(
            "cleanup", parents=[common, kernel], help="remove everything podnat owns, nothing else"
        )
    return parser


def _whole_seconds(text: str) -> int:
    """A webhook timeout: whole seconds, at least one (uvicorn's keep-alive takes ints)."""
    value = _seconds(text)
    if value < 1 or not value.is_integer():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds, 1-3600")
    return int(value)


def _exit_now(code: int) -> NoReturn:
    """Exit without the interpreter's teardown.

    Freeing every module and object at exit is ~10 ms of CPU, a tenth of an init
    container's start (measured on the dev VM); the kernel frees it all anyway.
    What teardown would still do here is flush stdout and stderr; with another
    thread still running (or a flush failing) the interpreter exits as usual.
    """
    # Threads are started through `threading`: not imported, no other thread (and
    # the apply path spares its import, ~2 ms).
    threading = sys.modules.get("threading")
    if threading is None or threading.active_count() == 1:
        try:
            for stream in (sys.stdout, sys.stderr):
                if stream is not None:  # None: started with that descriptor closed
                    stream.flush()
        except (OSError, ValueError):
            sys.exit(code)  # the interpreter reports it, as it always did
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    sys.exit(main())
