"""``replay run`` as a library call: clone, migrate, replay, classify, blame, report.

:func:`run_replay` takes :class:`RunOptions` and returns :class:`RunResult`; the CLI
only parses options into it and prints the result. The order keeps the promises of
docs/design.md: the capture is read (and split per session) first, so every target is
checked against the capture's source before anything is sent to it; the clones are
dropped on the way out whatever happens; the reports are rendered from the saved
outcomes alone.

Whatever ends a run, its ``--out`` folder says so: ``run.json`` holds ``state``
"running" from the start, "finished" once the reports are written, and "interrupted"
(a signal, Ctrl-C) or "failed" (an error) otherwise, with the reason; a folder this run
created and wrote nothing else into is removed. :func:`check_finished` is what
``replay report`` asks before it renders a verdict from a folder's outcomes: partial
outcomes must never read as "safe to deploy".
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from replay.blame import attach, blame, save
from replay.capture.format import capture_meta
from replay.capture.split import SplitCapture, read_session, split_capture
from replay.compare import FAIL_ON_LEVELS, Accumulator, Findings, Thresholds, classify, exit_code
from replay.engine import DEPTH, EngineOptions, ReplayCounts, Timeouts, replay
from replay.engine.startup import check_logins
from replay.errors import BadInput, SetupError
from replay.model.selection import Selection
from replay.report import write_reports
from replay.targets import migrate
from replay.targets.clone import Clones
from replay.targets.conninfo import strip_password
from replay.targets.recorded_command import run_recorded
from replay.targets.roles import missing_roles
from replay.targets.safety import check_safe
from replay.targets.schema import snapshot
from replay.targets.target import Target

RUN_FILE = "run.json"
SCHEMA_FILE = "schema.json"
RUNNING, FINISHED, INTERRUPTED, FAILED = "running", "finished", "interrupted", "failed"
MIGRATION_TIMEOUT = 600.0
Notify = Callable[[str], None]
Progress = Callable[[int, int], None]


@dataclass
class RunOptions:
    """Everything ``replay run`` accepts; see ``replay run --help`` for each."""

    capture: Path
    out: Path
    source: str | None = None
    scratch: str | None = None
    baseline: str | None = None
    candidate: str | None = None
    baseline2: str | None = None
    migrations: Path | None = None
    migrate_cmd: str | None = None
    schema_only: bool = False
    keep: bool = False
    noise: bool = True
    jobs: int = 4
    speed: float = 0.0
    pipeline_depth: int = DEPTH
    statement_timeout: float = 30.0
    lock_timeout: float = 5.0
    migration_timeout: float = MIGRATION_TIMEOUT
    applied_versions: str | None = None
    since: float | None = None
    until: float | None = None
    classes: tuple[str, ...] = ()
    applications: tuple[str, ...] = ()
    fail_on: str = "fails"
    slower_factor: float = 2.0
    blame: bool = True
    replay_role: str | None = None  # every session as this role, not its captured one
    as_connected_user: bool = False  # every session as the target URL's user


@dataclass
class RunResult:
    """What a run did and found; ``exit_code`` is 0 or 1 per ``fail_on``."""

    report_folder: Path
    targets: dict[str, str]
    migrations: list[migrate.Migration]
    counts: ReplayCounts
    findings: Findings
    reports: dict[str, Path] = field(default_factory=dict)
    exit_code: int = 0


def validate(options: RunOptions) -> None:
    """Raise BadInput for options that do not make one coherent run."""
    made = options.baseline or options.candidate or options.baseline2
    if options.source and made:
        raise BadInput("give either --source (targets are cloned) or --baseline/--candidate")
    if not options.source and not (options.baseline and options.candidate):
        raise BadInput("give --source URL, or both --baseline URL and --candidate URL")
    if not options.source and (options.migrations or options.migrate_cmd or options.scratch):
        raise BadInput("--migrations, --migrate-cmd and --scratch need --source (clones)")
    if options.migrations and options.migrate_cmd:
        raise BadInput("give --migrations or --migrate-cmd, not both")
    if options.source and options.migrations is None and not options.migrate_cmd:
        # Without migrations the candidate is the baseline: nothing would be tested. An
        # empty folder, given on purpose, is a replay of noise alone (the acceptance run).
        raise BadInput(
            "give --migrations DIR or --migrate-cmd CMD: without them the candidate is the "
            "baseline and nothing is tested (an empty folder replays with no change)"
        )
    if options.applied_versions and not options.migrations:
        raise BadInput("--applied-versions goes with --migrations (a folder of .sql files)")
    if options.jobs < 1:
        raise BadInput("--jobs must be at least 1")
    timeouts = (options.statement_timeout, options.lock_timeout, options.migration_timeout)
    if options.speed < 0 or min(timeouts) < 0:
        raise BadInput("--speed and the timeouts cannot be negative")
    if options.since is not None and options.until is not None and options.since > options.until:
        raise BadInput("--since is after --until")
    if options.fail_on not in FAIL_ON_LEVELS:
        raise BadInput(
            f"unknown --fail-on {options.fail_on!r} (one of {', '.join(FAIL_ON_LEVELS)})"
        )
    if options.replay_role is not None and options.as_connected_user:
        raise BadInput("give --replay-role or --as-connected-user, not both")
    if options.replay_role == "":
        raise BadInput("--replay-role needs a role name")
    if options.slower_factor <= 1:
        raise BadInput("--slower-factor must be above 1")
    if options.migrations is not None:
        migrate.discover(options.migrations)  # read before anything is dumped or cloned


def _has_migrations(options: RunOptions) -> bool:
    """Whether there is anything to blame, so that blame's template is worth making."""
    if options.migrate_cmd:
        return True
    return options.migrations is not None and bool(migrate.discover(options.migrations))


def _nothing_selected(options: RunOptions) -> str:
    narrowed = [
        name
        for name, given in (
            ("--since", options.since is not None),
            ("--until", options.until is not None),
            ("--class", bool(options.classes)),
            ("--app", bool(options.applications)),
        )
        if given
    ]
    if narrowed:
        return f"no statement of {options.capture} matches {' '.join(narrowed)}"
    return f"{options.capture} holds no statement"


def _check_reachable(targets: list[Target]) -> None:
    for target in targets:
        try:
            psycopg.connect(target.conninfo, connect_timeout=10).close()
        except psycopg.Error as exc:
            detail = str(exc).strip().splitlines()
            raise SetupError(
                f"cannot connect to the {target.name} {target.display}: "
                f"{detail[-1] if detail else 'unreachable'}"
            ) from None


@contextlib.contextmanager
def _targets(
    options: RunOptions, upstream: str | None, databases: frozenset[str], notify: Notify
) -> Iterator[tuple[list[Target], list[migrate.Migration], Clones | None]]:
    """The run's targets (cloned and migrated, or the user's), checked safe, and the
    clones when they were cloned (with the pristine template blame's probes need)."""
    if not options.source:
        given = [("baseline", options.baseline), ("candidate", options.candidate)]
        if options.noise and options.baseline2:
            given.append(("baseline2", options.baseline2))
        targets = [Target(name, url) for name, url in given if url]
        check_safe(targets, upstream=upstream, captured_databases=databases)
        _check_reachable(targets)
        yield targets, [], None
        return
    with Clones(
        options.source,
        scratch=options.scratch,
        schema_only=options.schema_only,
        noise=options.noise,
        keep=options.keep,
        upstream=upstream,
        captured_databases=databases,
        notify=notify,
        pristine=options.blame and _has_migrations(options),
    ) as clones:
        candidate = clones.targets["candidate"].conninfo
        applied: list[migrate.Migration] = []
        if options.migrations:
            notify(f"applying the migrations of {options.migrations}")
            applied = migrate.apply_folder(
                candidate,
                options.migrations,
                timeout=options.migration_timeout or None,
                applied_versions=options.applied_versions,
            )
            if options.applied_versions:
                notify(
                    f"applied {len(applied)} pending migrations (not in {options.applied_versions})"
                )
        elif options.migrate_cmd:
            notify(f"running {options.migrate_cmd!r}")
            applied = [
                run_recorded(
                    candidate, options.migrate_cmd, timeout=options.migration_timeout or None
                )
            ]
        yield list(clones.targets.values()), applied, clones


def _check_roles(
    options: RunOptions, split: SplitCapture, targets: list[Target], timeouts: Timeouts
) -> None:
    """Every role the sessions will run as exists on every target and takes the
    replay's login: a one-line error listing what is missing, before anything is sent."""
    if options.as_connected_user:
        return
    if options.replay_role:
        roles = {options.replay_role}
    else:
        roles = {read_session(f.path).user for f in split.sessions} - {""}
    for target in targets:
        missing = missing_roles(target.conninfo, roles)
        if missing:
            error = SetupError if target.created else BadInput
            raise error(
                f"roles missing on the {target.name} {target.display}: {', '.join(missing)} "
                "(each session runs as its captured role; or give --as-connected-user)"
            )
    check_logins(targets, roles, timeouts)


def _save_schema(folder: Path, targets: list[Target]) -> None:
    by_name = {t.name: t for t in targets}
    schema = {name: snapshot(by_name[name].conninfo) for name in ("baseline", "candidate")}
    (folder / SCHEMA_FILE).write_text(json.dumps(schema, indent=1, default=str), encoding="utf-8")


def _options_json(options: RunOptions) -> dict[str, Any]:
    skip = {"source", "scratch", "baseline", "candidate", "baseline2"}
    return {
        k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items() if k not in skip
    }


def _write_run(folder: Path, run: dict[str, Any]) -> None:
    (folder / RUN_FILE).write_text(json.dumps(run, indent=1), encoding="utf-8")


def _read_run(folder: Path) -> dict[str, Any]:
    try:
        loaded = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _set_state(folder: Path, state: str, reason: str | None = None) -> None:
    run = _read_run(folder)
    run["state"] = state
    if reason is not None:
        run["reason"] = reason
    _write_run(folder, run)


def _why(exc: BaseException) -> tuple[str, str]:
    """The state and reason ``run.json`` records for a run that ``exc`` ended."""
    signum = getattr(exc, "signum", None)  # replay.cli.Interrupted: SIGTERM, SIGHUP
    if isinstance(signum, int):
        return INTERRUPTED, f"stopped by {signal.Signals(signum).name}"
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED, "stopped by Ctrl-C (SIGINT)"
    return FAILED, str(exc) or type(exc).__name__


def _ended_early(out: Path, created: bool, exc: BaseException) -> None:
    """Mark ``out`` as not finished, or remove it if this run made it and wrote nothing.
    At best: a folder that cannot be written keeps saying "running", which is refused too,
    and the error that ended the run is the one to report."""
    with contextlib.suppress(OSError):
        if created and {p.name for p in out.iterdir()} <= {RUN_FILE}:
            shutil.rmtree(out, ignore_errors=True)
            return
        _set_state(out, *_why(exc))


def check_finished(folder: Path | str) -> None:
    """BadInput unless the run that wrote ``folder`` finished (or predates ``state``)."""
    run = _read_run(Path(folder))
    state = run.get("state", FINISHED)
    if state == FINISHED:
        return
    why = (
        "still running, or killed"
        if state == RUNNING
        else f"{state}, {run.get('reason') or 'no reason recorded'}"
    )
    raise BadInput(
        f"{folder} holds the partial outcomes of a run that did not finish ({why}); run it again"
    )


def run_replay(
    options: RunOptions,
    *,
    notify: Notify | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Run the whole replay; ReplayError subclasses for bad input or setup.

    However it ends, nothing is left behind (clones, servers, workers, temporary
    files) and ``run.json`` in ``options.out`` says whether the run finished."""
    validate(options)
    started = time.time()
    meta = capture_meta(options.capture)
    out = Path(options.out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    _write_run(out, {"state": RUNNING, "capture": str(options.capture), "started": started})
    try:
        result = _run(options, out, meta, started, notify or (lambda message: None), progress)
    except BaseException as exc:
        _ended_early(out, created, exc)
        raise
    _set_state(out, FINISHED)
    return result


def _run(
    options: RunOptions,
    out: Path,
    meta: dict[str, Any],
    started: float,
    say: Notify,
    progress: Progress | None,
) -> RunResult:
    upstream = meta.get("upstream")
    selection = Selection(
        options.since, options.until, frozenset(options.classes), frozenset(options.applications)
    )
    with tempfile.TemporaryDirectory(prefix="replay-sessions-") as workdir:
        say(f"splitting {options.capture} per session")
        split = split_capture(options.capture, workdir, selection=selection, warn=say)
        if not split.statements:
            # Checked before anything is cloned: "safe to deploy" about nothing is a lie.
            raise BadInput(f"nothing to replay: {_nothing_selected(options)}")
        with _targets(options, str(upstream) if upstream else None, split.databases, say) as (
            targets,
            applied,
            clones,
        ):
            timeouts = Timeouts(
                options.statement_timeout,
                options.lock_timeout,
                role=options.replay_role or "",
                captured_role=not options.as_connected_user,
            )
            _check_roles(options, split, targets, timeouts)
            say(f"replaying {split.statements} statements of {len(split.sessions)} sessions")
            engine = EngineOptions(
                jobs=options.jobs,
                speed=options.speed,
                timeouts=timeouts,
                depth=options.pipeline_depth,
            )
            # Every worker classifies its own rows as it writes them, in parallel.
            judge = functools.partial(
                Accumulator, Thresholds(slower_factor=options.slower_factor), max_examples=3
            )
            counts = replay(split, targets, out, engine, progress, sink=judge)
            if counts.failed_sessions:
                say(
                    f"warning: {counts.failed_sessions} sessions could not be replayed "
                    "(see the messages above); their statements are not judged"
                )
            if split.statements and not counts.statements:
                # "Safe to deploy" on an empty replay would be a lie.
                raise SetupError("no statement could be replayed; nothing was judged")
            _save_schema(out, targets)
            shown = {t.name: t.display for t in targets}
            run = {
                "state": RUNNING,
                "capture": str(options.capture),
                "started": started,
                "finished": time.time(),
                "source": strip_password(options.source) if options.source else None,
                "cloned": bool(options.source),
                "targets": shown,
                "migrations": [m.to_json() for m in applied],
                "options": _options_json(options),
                "capture_window": {"first": split.first, "last": split.last},
                "counts": counts.to_json(),
            }
            _write_run(out, run)
            # Classified once, here, while the clones live: blame needs the findings.
            findings = classify(out, slower_factor=options.slower_factor, accumulated=counts.sink)
            blaming = options.blame and findings.breaking and applied
            if blaming and clones and clones.scratch and clones.pristine:
                say("blaming the breaking query classes on migration statements")
                blamed = blame(
                    findings.classes,
                    applied,
                    split,
                    scratch=clones.scratch,
                    pristine=clones.pristine,
                    timeouts=engine.timeouts,
                    migration_timeout=options.migration_timeout or None,
                    notify=say,
                )
                save(out, blamed)
                attach(findings.classes, blamed)
    reports = write_reports(out, findings, fail_on=options.fail_on)
    return RunResult(
        report_folder=out,
        targets=shown,
        migrations=applied,
        counts=counts,
        findings=findings,
        reports=reports,
        exit_code=exit_code(findings, options.fail_on),
    )
