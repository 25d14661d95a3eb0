"""``appmixer-audit run``: the sidecar (forever) and the backfill (``--once``).

Before any work: pre-flight checks (``agent.preflight``), the state directory's lock (one
agent per state dir, ``agent.statelock``), and the metrics address bound; each failure is
one line and exit 2. Then a warning for each ``--path`` that names a directory or matches
nothing yet.

Forever: tail, normalize and ship until SIGTERM, SIGINT or SIGHUP; then stop reading, drain
within ``shutdown_grace``, save the checkpoint and exit 0. A second signal stops waiting for
the drain. Elasticsearch being down is never a reason to exit: the agent retries and waits.

``--once``: ship everything present now, wait for every acknowledgement, print a summary
on stdout and exit 0, or 3 when any line (or change document) went to the dead-letter file.
Stopped by a signal before it finished, it drains what it read, says in the summary how
many lines are left for the next run, and exits 128 + the signal's number (143 for SIGTERM,
130 for SIGINT, 129 for SIGHUP). A progress line is drawn on stderr only when stderr is a
terminal.
"""

from __future__ import annotations

import gc
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from agent.config import Settings
from cli import EXIT_FAILURE, EXIT_OK, EXIT_REJECTED, EXIT_USAGE
from cli.options import build_settings, client_for, es_options
from common.log import get_logger

if TYPE_CHECKING:  # imported where used at run time, so --help stays fast
    from elasticsearch import ApiError, Elasticsearch, TransportError

    from agent.metrics import Health, Metrics, MetricsServer
    from agent.pipeline import Pipeline
    from agent.statelock import StateLock
    from indexer.access import AccessReport

log = get_logger(__name__)


@click.command()
@click.option(
    "--path",
    "paths",
    multiple=True,
    help="Glob of audit log files to tail (repeatable; '**' spans directories).",
)
@click.option("--once", is_flag=True, help="Ship what is there now, wait for every ack, exit.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where checkpoints (the registry) live.",
)
@click.option(
    "--dlq-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where dead-letter files go (default: STATE_DIR/dlq).",
)
@click.option("--metrics-address", help="HOST:PORT for /metrics, /healthz and /readyz.")
@click.option("--no-setup", is_flag=True, help="Do not install index templates at start.")
@es_options
def run(
    *,
    paths: tuple[str, ...],
    once: bool,
    state_dir: Path | None,
    dlq_dir: Path | None,
    metrics_address: str | None,
    no_setup: bool,
    config_file: Path | None,
    **flags: object,
) -> None:
    """Tail audit logs and ship them to Elasticsearch."""
    settings = build_settings(
        config_file,
        paths=list(paths) or None,
        state_dir=state_dir,
        dlq_dir=dlq_dir,
        metrics_address=metrics_address,
        **flags,
    )
    if not settings.paths:
        click.echo("appmixer-audit: give at least one --path (or APPMIXER_AUDIT_PATHS)", err=True)
        sys.exit(EXIT_USAGE)
    sys.exit(_run(settings, once=once, setup=not no_setup))


class _Refused(Exception):
    """A start-up check failed: the message is the one line shown, with its exit status."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


GC_THRESHOLDS = (100_000, 20, 20)  # net new containers between collections, then older ones


def _tune_collector() -> None:
    """Set the cyclic garbage collector for a long-running shipper, once everything is
    imported and wired.

    A profile of the agent put the collector at 12 % of its CPU: every full collection walked
    the hundreds of thousands of objects that start-up made (modules, classes, the client's
    tables), which never become garbage; frozen, they are left alone. And a line's documents
    make hundreds of dicts and lists that reference counting frees (they hold no cycles), so
    looking for cycles every 700 net new containers mostly finds none. At 20,000 the
    collector still ran every few hundred lines (the buffered lines themselves are net new
    containers until the settler frees them), walking the buffer to free about 1,200 objects
    in 50,000 events (5 % of the CPU); at 100,000, more objects than the default buffer and a batch
    in flight hold, it runs only when something does accumulate, and cyclic garbage stays
    below that bound.
    Measured on 50,000 events: 176 young collections to none, the same peak RSS.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    gc.enable()


def _run(settings: Settings, *, once: bool, setup: bool) -> int:
    """Start, run and stop; the cyclic collector is off until :func:`_tune_collector`.

    Start-up (the client's, the pipeline's and the metrics' imports, then the wiring) makes
    objects that live as long as the process: the 168 collections it used to trigger freed
    under a thousand objects and took 100-180 ms of an empty ``run --once``.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _start(settings, once=once, setup=setup)
    finally:
        if collecting:
            gc.enable()


def _start(settings: Settings, *, once: bool, setup: bool) -> int:
    from agent.metrics import Health, Metrics
    from agent.preflight import input_warnings
    from indexer.access import AccessReport

    signals = _Signals()  # from here on a signal is a request to stop, never a sudden death
    try:
        lock = _preflight(settings)
    except _Refused as exc:
        signals.restore()
        click.echo(f"appmixer-audit: {exc}", err=True)
        return exc.status
    es = client_for(settings)
    metrics, health = Metrics(), Health(probe=_probe(es))
    server = None
    try:
        # Bound before the node is asked anything: /metrics answers even while a frozen
        # node keeps the write check waiting.
        server = _metrics_server(settings, metrics, health)
        access = AccessReport()
        unanswered = _identify(es, settings)
        if unanswered is None:
            _require_write(es, settings, access)
        else:  # said once if a setting can fix it; the sender asks again before writing
            access.failed(unanswered)
        for event, fields in input_warnings(settings.paths):
            log.warning(event, **fields)
        pipeline = _pipeline(
            settings, es, once=once, setup=setup, metrics=metrics, health=health, access=access
        )
    except _Refused as exc:
        click.echo(f"appmixer-audit: {exc}", err=True)
        if server is not None:
            server.stop()
        es.close()
        signals.restore()
        return exc.status
    progress = _Progress(enabled=sys.stderr.isatty())
    pipeline.start(wake=signals.wake)
    try:
        _until_stopped_or_done(pipeline, signals, progress)
        if signals.stop.is_set():
            signals.on_second = pipeline.interrupt.set
            pipeline.stop()
        else:
            pipeline.wait()
            pipeline.close()
            if once:
                _make_visible(es, settings)
    finally:
        signals.restore()
        if server is not None:
            server.stop()
        es.close()
    status = _finish(pipeline, settings, once=once, signum=signals.signum)
    lock.release()
    return status


def _until_stopped_or_done(pipeline: Pipeline, signals: _Signals, progress: _Progress) -> None:
    """Woken by a signal or by the pipeline's end (a --once run is over the moment it is,
    not at the next quarter second), else every 0.25 s for the progress line."""
    while not signals.stop.is_set() and not pipeline.finished.is_set():
        progress.draw(pipeline)
        signals.wake.wait(0.25)
    progress.clear()


def _preflight(settings: Settings) -> StateLock:
    """Checks, then the state dir's lock (before the registry is even read)."""
    from agent.preflight import PreflightError, check
    from agent.statelock import StateLock, StateLockError

    lock = StateLock(settings.state_dir)
    try:
        check(settings)
        lock.acquire()
    except (PreflightError, StateLockError) as exc:
        raise _Refused(str(exc)) from None
    return lock


def _metrics_server(settings: Settings, metrics: Metrics, health: Health) -> MetricsServer | None:
    """The /metrics server, bound and serving, or ``None``; a bind failure is refused."""
    from agent.metrics import MetricsServer

    if not settings.metrics_address:
        return None
    try:
        server = MetricsServer(settings.metrics_address, metrics, health)
    except (OSError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise _Refused(
            f"metrics address {settings.metrics_address} (--metrics-address) cannot be "
            f"bound: {reason}"
        ) from None
    server.start()
    return server


def _pipeline(
    settings: Settings,
    es: Elasticsearch,
    *,
    once: bool,
    setup: bool,
    metrics: Metrics,
    health: Health,
    access: AccessReport,
) -> Pipeline:
    from agent.files import RegistryError
    from agent.pipeline import wire

    try:
        starter = _starter(es, settings) if setup else None
        pipeline = wire(
            settings, es, once=once, setup=starter, metrics=metrics, health=health, access=access
        )
    except (RegistryError, ValueError) as exc:
        raise _Refused(str(exc), EXIT_FAILURE) from None
    _tune_collector()  # everything is imported and wired now
    return pipeline


def _finish(pipeline: Pipeline, settings: Settings, *, once: bool, signum: int | None) -> int:
    """Log and print the summary; the exit status says how the run ended."""
    from agent.leftover import lines_left
    from agent.pipeline import own_paths

    summary = pipeline.summary()
    if signum is not None:
        positions = pipeline.registry.positions()
        summary["lines_left"] = lines_left(settings.paths, positions, own_paths(settings))
    log.info("run_finished", **summary)
    if pipeline.failure is not None:
        return _failure_status(pipeline.failure)
    if not once:
        return EXIT_OK
    _print_summary(summary, settings)
    if summary.get("lines_left"):
        return 128 + int(signum or 0)
    if summary["dead_lettered"] or summary["changes_rejected"]:
        return EXIT_REJECTED
    return EXIT_OK


def _failure_status(failure: BaseException) -> int:
    """A refusal by the node is said in one line on stderr: 2 for a cluster the agent does
    not support, 1 for a request refused for good; any other failure is 1 (logged)."""
    from indexer.cluster import ClusterRefusal, UnsupportedCluster

    if isinstance(failure, ClusterRefusal):
        click.echo(f"appmixer-audit: {failure}", err=True)
    return EXIT_USAGE if isinstance(failure, UnsupportedCluster) else EXIT_FAILURE


def _require_write(es: Elasticsearch, settings: Settings, access: AccessReport) -> None:
    """Refused, in one line, when the node answers that this credential cannot write.

    A refused certificate or credential is logged once as an error, and the agent goes on
    retrying: nothing is read past what the node acknowledges, so nothing is lost.
    """
    from indexer.access import check_write_access

    answer = check_write_access(es, [settings.events_target, settings.changes_target])
    access.report(answer.problem)
    if answer.lacking:
        raise _Refused(
            f"this credential may not write to {', '.join(answer.lacking)} "
            "(it lacks create_doc): give the agent a key of the writer role "
            "(setup --create-api-key writer)",
            EXIT_FAILURE,
        )


def _probe(es: Elasticsearch) -> Callable[[], bool]:
    """Readiness: the node answers. The writer role has no cluster privilege, so a 403 to
    the health request still proves the node is up and the credential valid."""
    import contextlib

    from elasticsearch import AuthorizationException

    client = es.options(request_timeout=2.0)

    def probe() -> bool:
        with contextlib.suppress(AuthorizationException):
            client.cluster.health()
        return True

    return probe


def _make_visible(es: Elasticsearch, settings: Settings) -> None:
    """A finished backfill is searchable at once, not after the next refresh interval."""
    from elasticsearch import ApiError, AuthorizationException, TransportError

    try:
        es.indices.refresh(
            index=[settings.events_target, settings.changes_target], ignore_unavailable=True
        )
    except AuthorizationException:
        # The writer role may not refresh; the events are searchable within a second anyway.
        log.info("refresh_not_permitted")
    except (ApiError, TransportError) as exc:
        log.warning("refresh_failed", reason=str(exc))


def _identify(es: Elasticsearch, settings: Settings) -> ApiError | TransportError | None:
    """Who the node is, asked once before anything else; refused in one line when the
    agent does not support it (exit 2) or the node refuses the question for good (exit 1).

    A node that cannot be asked now (away, frozen, busy, a credential the agent is waiting
    for in its file) is asked again by the sender before its first write
    (:func:`_starter`); that error is returned, and the start goes on without waiting for
    another request to time out.
    """
    from elasticsearch import ApiError, TransportError

    from cli.options import identify_cluster
    from indexer.cluster import UnsupportedCluster, refusal

    try:
        identify_cluster(es, settings, level="info")
    except UnsupportedCluster as exc:
        raise _Refused(str(exc), EXIT_USAGE) from None
    except ApiError as exc:
        refused = refusal(exc, credential_renewable=_credential_renewable(settings))
        if refused is not None:
            raise _Refused(_refused_line(refused, settings), EXIT_FAILURE) from None
        return exc
    except TransportError as exc:
        return exc
    return None


def _credential_renewable(settings: Settings) -> bool:
    """Whether a refused credential can be fixed under the running agent (a followed file)."""
    return settings.es_api_key_file is not None or settings.es_password_file is not None


def _refused_line(refused: object, settings: Settings) -> str:
    from common.secrets import without_userinfo

    return f"Elasticsearch at {without_userinfo(', '.join(settings.es_url))}: {refused}"


def _starter(es: Elasticsearch, settings: Settings) -> Callable[[], object]:
    """What the sender does before its first write: learn who the node is (if the start
    could not), then install the templates, so the first write gets the managed mapping.

    Retried while the node is away or busy. A permanent refusal (400 or 404 on one of these
    requests, a template the node will not take, a credential refused that no file can
    renew) raises :class:`indexer.cluster.SetupRefused` and the agent ends with one line;
    an unsupported cluster raises ``UnsupportedCluster``. A credential that may not manage
    templates (the writer role) skips the install: an admin runs `setup` beforehand.
    """
    from cli.options import identify_cluster

    def start() -> object:
        from elasticsearch import ApiError

        from indexer.access import may_install_templates
        from indexer.cluster import SetupRefused, refusal
        from indexer.setup import install as install_templates

        try:
            compatibility = getattr(es, "compatibility", None)
            if compatibility is None or compatibility.cluster is None:
                identify_cluster(es, settings, level="info")
            if not may_install_templates(es):
                log.warning("setup_not_permitted", action="run `setup` with an admin credential")
                return None
            report = install_templates(es, settings.events_target, settings.changes_target)
        except ApiError as exc:
            refused = refusal(exc, credential_renewable=_credential_renewable(settings))
            if refused is not None:
                raise SetupRefused(_refused_line(refused, settings)) from None
            raise
        for step in report.steps:
            if step.status == "failed":
                log.warning("setup_step_failed", kind=step.kind, name=step.name, reason=step.detail)
        refused_templates = [
            step for step in report.steps if step.status == "failed" and "template" in step.kind
        ]
        if refused_templates:
            step = refused_templates[0]
            reason = f"installing the {step.kind} {step.name} failed: {step.detail}"
            raise SetupRefused(_refused_line(reason, settings))
        log.debug("setup_done", ok=report.ok)
        return report

    return start


def _print_summary(summary: Mapping[str, int], settings: Settings) -> None:
    rows = [
        ("lines read", summary["read"]),
        ("shipped", summary["shipped"]),
        ("duplicates", summary["duplicates"]),
        ("skipped", summary["skipped"]),
        ("dead-lettered", summary["dead_lettered"]),
        ("change docs dead-lettered", summary["changes_rejected"]),
        ("partial lines pending", summary["partial_lines"]),
    ]
    if summary["partial_lines"]:
        rows.append(("partial line bytes (no newline yet)", summary["partial_bytes"]))
    if "lines_left" in summary:
        rows.append(("interrupted: lines left for the next run", summary["lines_left"]))
    width = max(len(name) for name, _ in rows) + 1
    for name, value in rows:
        click.echo(f"{name + ':':<{width}} {value}")
    if summary["dead_letter_records"]:
        click.echo(f"dead letters are in {settings.dead_letter_dir}")


class _Signals:
    """SIGTERM, SIGINT and SIGHUP request a graceful stop; a second one stops the drain.

    SIGHUP is a stop too, not a reopen: the agent has no log file of its own to reopen, and
    a hang-up (a closed terminal, a supervisor's restart) must never kill it undrained.
    """

    HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.wake = threading.Event()  # set with stop, and by whatever else ends the wait
        self.signum: int | None = None
        self.on_second: Callable[[], None] | None = None
        self._previous = {sig: signal.signal(sig, self._handle) for sig in self.HANDLED}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.stop.is_set() and self.on_second is not None:
            log.warning("shutdown_hurried", signal=signal.Signals(signum).name)
            self.on_second()
            return
        log.info("shutdown_requested", signal=signal.Signals(signum).name)
        if self.signum is None:
            self.signum = signum
        self.stop.set()
        self.wake.set()

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


class _Progress:
    """One self-overwriting stderr line on a terminal; nothing at all otherwise."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._last = 0.0
        self._started = time.monotonic()
        self._drawn = False

    def draw(self, pipeline: Pipeline) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < 0.5:
            return
        self._last = now
        counts = pipeline.metrics.snapshot()
        behind = pipeline.behind
        rate = counts.shipped / max(now - self._started, 1e-6)
        text = (
            f"\r read {counts.read:,}  shipped {counts.shipped:,}  duplicates "
            f"{counts.duplicates:,}  skipped {counts.skipped:,}  dead-lettered "
            f"{counts.dead_lettered:,}  behind {behind / 1e6:.1f} MB  {rate:,.0f} ev/s "
        )
        click.echo(text, err=True, nl=False)
        self._drawn = True

    def clear(self) -> None:
        if self._drawn:
            click.echo("", err=True)
