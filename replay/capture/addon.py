"""mitmproxy addon that records PostgreSQL sessions into a shadow-replay capture.

Put the proxy next to the application (a sidecar) and point the application at it::

    mitmdump --mode reverse:tcp://DB_HOST:5432@6432 \\
        -s "$(python -c 'import replay.capture.addon as m; print(m.__file__)')" \\
        --set pg_capture=captures/NAME --set connection_strategy=lazy

``replay capture --upstream DB_HOST:5432 --listen 127.0.0.1:6432 --out captures/NAME``
runs the same addon in a mitmproxy stripped to the few addons a TCP relay needs, which
is several times faster than a full ``mitmdump``; prefer it in production.

The addon takes over the connection's protocol layer (``next_layer``), so no mitmproxy
hook runs per message: bytes are forwarded unchanged and a copy goes, in batches, to a
decoder process, off the forwarding path (see :mod:`replay.capture.relay`,
:mod:`replay.capture.recorder` and :mod:`replay.capture.decoder`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from mitmproxy import ctx, exceptions
from mitmproxy.addonmanager import Loader
from mitmproxy.proxy import layer
from mitmproxy.proxy.mode_specs import ReverseMode

from replay.capture.recorder import Recorder
from replay.capture.relay import PostgresRelay
from replay.errors import ReplayError

log = logging.getLogger(__name__)


def parse_sample(value: str) -> float:
    try:
        fraction = float(value)
    except ValueError:
        fraction = -1.0
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"sample must be a fraction in (0, 1], not {value!r}")
    return fraction


class PostgresCapture:
    """Records every PostgreSQL connection the proxy relays (a fraction with sampling)."""

    def __init__(self) -> None:
        self.recorder: Recorder | None = None
        self._closing: threading.Thread | None = None
        self.upstream = ""

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "pg_capture", str, "", "Capture folder to record PostgreSQL sessions into."
        )
        loader.add_option(
            "pg_capture_sample",
            str,
            "1.0",
            "Fraction of connections to record (the rest are only forwarded).",
        )
        loader.add_option(
            "pg_capture_digest",
            bool,
            True,
            "Keep a digest of returned rows (turn off to save CPU).",
        )
        loader.add_option(
            "pg_capture_copy_cap", int, 1 << 20, "Bytes of COPY FROM STDIN data kept per statement."
        )
        loader.add_option("pg_capture_segment_mb", int, 64, "Rotate capture segments at this size.")

    def configure(self, updated: set[str]) -> None:
        if "pg_capture_sample" in updated:
            try:
                parse_sample(ctx.options.pg_capture_sample)
            except ValueError as exc:
                raise exceptions.OptionsError(str(exc)) from exc
        if "pg_capture_copy_cap" in updated and ctx.options.pg_capture_copy_cap < 0:
            raise exceptions.OptionsError("pg_capture_copy_cap must be >= 0")
        if "pg_capture_segment_mb" in updated and ctx.options.pg_capture_segment_mb < 1:
            raise exceptions.OptionsError("pg_capture_segment_mb must be >= 1")

    def running(self) -> None:
        folder = ctx.options.pg_capture
        if not folder or self.recorder is not None:
            return
        self.upstream = _upstream(ctx.options.mode)
        recorder = Recorder(
            folder,
            meta={"upstream": self.upstream, "source": "mitmproxy"},
            segment_bytes=ctx.options.pg_capture_segment_mb << 20,
            sample=parse_sample(ctx.options.pg_capture_sample),
            digest_rows=ctx.options.pg_capture_digest,
            copy_cap=ctx.options.pg_capture_copy_cap,
        )
        try:
            recorder.start()
        except ReplayError as exc:
            log.error("%s", exc)
            ctx.master.shutdown()
            return
        self.recorder = recorder
        log.info("recording PostgreSQL sessions to %s", folder)

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        if self.recorder is None or nextlayer.layer is not None:
            return
        context = nextlayer.context
        mode = context.client.proxy_mode
        if not isinstance(mode, ReverseMode) or mode.scheme != "tcp" or len(context.layers) > 2:
            return
        try:
            peer = context.client.peername
            client = f"{peer[0]}:{peer[1]}" if peer else ""
            tap = self.recorder.tap(client)
        except Exception:  # never let recording stop a connection from being relayed
            log.exception("cannot record a new connection; relaying it unrecorded")
            tap = None
        nextlayer.layer = PostgresRelay(context, tap, self.upstream)

    def stop_recording(self) -> None:
        """Close the capture and keep relaying every connection, open or new, unrecorded:
        a capture window ends without a restart of the proxy (``replay capture`` calls
        this on SIGUSR1). Closing waits for the decoder, so it runs off the event loop."""
        if self.recorder is not None and self._closing is None:
            self._closing = threading.Thread(
                target=self._close, args=(self.recorder,), name="replay-close", daemon=True
            )
            self._closing.start()

    @staticmethod
    def _close(recorder: Recorder) -> None:
        recorder.stop()
        stats = recorder.stats
        log.warning(
            "recording stopped, forwarding goes on: %d statements from %d sessions recorded",
            stats.statements,
            stats.sessions,
        )

    def done(self) -> None:
        if self._closing is not None:
            self._closing.join()
        if self.recorder is not None:
            self.recorder.stop()
            stats = self.recorder.stats
            log.info(
                "capture closed: %d connections, %d sessions, %d statements",
                stats.connections,
                stats.sessions,
                stats.statements,
            )
            self.recorder = None


def _upstream(modes: Any) -> str:
    for spec in modes or []:
        try:
            from mitmproxy.proxy.mode_specs import ProxyMode

            parsed = ProxyMode.parse(spec)
        except ValueError:
            continue
        if isinstance(parsed, ReverseMode):
            host, port = parsed.address
            return f"{host}:{port}"
    return ""


addons = [PostgresCapture()]
