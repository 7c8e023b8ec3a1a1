"""``replay capture``: a lean mitmproxy in reverse TCP mode with the capture addon.

``mitmdump`` loads some forty addons; a PostgreSQL relay needs four: the proxy server,
the layer decision, error checking and ours. Fewer addons means less work for every
event mitmproxy dispatches, which is most of what the capture costs (see
docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mitmproxy import options
from mitmproxy.addons import next_layer, proxyserver
from mitmproxy.master import Master

from replay.capture.addon import PostgresCapture, parse_sample
from replay.capture.recorder import RecorderStats
from replay.errors import BadInput, SetupError
from replay.targets.conninfo import join_address, split_address


@dataclass(frozen=True)
class CaptureSettings:
    upstream: str
    listen: str
    out: Path
    sample: float = 1.0
    digest_rows: bool = True
    copy_cap: int = 1 << 20
    segment_mb: int = 64


def mode_spec(settings: CaptureSettings) -> str:
    up_host, up_port = split_address(settings.upstream, "--upstream")
    listen_host, listen_port = split_address(settings.listen, "--listen")
    return (
        f"reverse:tcp://{join_address(up_host, up_port)}@{join_address(listen_host, listen_port)}"
    )


class _StartupErrors(logging.Handler):
    """Collects what mitmproxy logs as errors while it starts (e.g. port in use)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []
        self.started = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.started:
            self.messages.append(record.getMessage())


class _FailFast:
    """Stops the proxy at once if starting it logged an error."""

    def __init__(self, errors: _StartupErrors, master: Master) -> None:
        self.errors = errors
        self.master = master

    def running(self) -> None:
        if self.errors.messages:
            self.master.shutdown()


def _quiet_cancellation(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


async def _serve(
    settings: CaptureSettings, on_ready: Callable[[], None] | None, errors: _StartupErrors
) -> RecorderStats | None:
    opts = options.Options()
    master = Master(opts)
    capture = PostgresCapture()
    # Ours before NextLayer: the first addon to set a layer wins.
    master.addons.add(
        proxyserver.Proxyserver(), capture, next_layer.NextLayer(), _FailFast(errors, master)
    )
    opts.update(
        mode=[mode_spec(settings)],
        connection_strategy="lazy",
        pg_capture=str(settings.out),
        pg_capture_sample=str(settings.sample),
        pg_capture_digest=settings.digest_rows,
        pg_capture_copy_cap=settings.copy_cap,
        pg_capture_segment_mb=settings.segment_mb,
    )
    loop = asyncio.get_running_loop()
    # SIGHUP as SIGTERM: a closed terminal or a supervisor ends the capture, flushed.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, master.shutdown)
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGUSR1, capture.stop_recording)
    stats: list[RecorderStats] = []

    async def announce() -> None:
        while capture.recorder is None and not master.should_exit.is_set():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)
        if capture.recorder is not None and not errors.messages:
            errors.started = True
            stats.append(capture.recorder.stats)
            if on_ready is not None:
                on_ready()

    ready = asyncio.create_task(announce())
    await master.run()
    ready.cancel()
    # Connections still open at shutdown: end their handlers here, quietly, rather than
    # leave asyncio.run to cancel them and print each CancelledError.
    loop.set_exception_handler(_quiet_cancellation)
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return stats[0] if stats else None


def run_capture(
    settings: CaptureSettings, on_ready: Callable[[], None] | None = None
) -> RecorderStats:
    """Serve until SIGINT/SIGTERM/SIGHUP; returns what was recorded. SIGUSR1 closes the capture
    and keeps forwarding every connection (recording stops, the application does not)."""
    try:
        parse_sample(str(settings.sample))
    except ValueError as exc:
        raise BadInput(f"--sample: {exc}") from exc
    mode_spec(settings)  # validates both addresses before anything starts
    errors = _StartupErrors()
    mitm_log = logging.getLogger("mitmproxy")
    own_log = logging.getLogger("replay")
    # What an operator must hear (an upstream refusing clients, recording stopped) goes
    # to stderr: mitmproxy's own log handler prints nothing without its terminal addon.
    said = logging.StreamHandler()
    said.setLevel(logging.WARNING)
    said.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    mitm_log.addHandler(errors)
    own_log.addHandler(errors)
    own_log.addHandler(said)
    try:
        stats = asyncio.run(_serve(settings, on_ready, errors))
    finally:
        mitm_log.removeHandler(errors)
        own_log.removeHandler(errors)
        own_log.removeHandler(said)
    if stats is None:
        reason = errors.messages[0] if errors.messages else "it stopped before serving"
        raise SetupError(f"the capture proxy could not start on {settings.listen}: {reason}")
    return stats
