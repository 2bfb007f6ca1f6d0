"""Start a throw-away daemon on this machine: for tests, examples and notebooks.

Example::

    from optimizerd.testing import LocalDaemon

    with LocalDaemon() as daemon:
        client = daemon.client()
        ...

The binary is found, in this order: the ``binary`` argument, ``$OPTIMIZERD_BIN``, the ``hints``
given, ``.build/{debug,release}/optimizerd`` in the current directory or any parent of it (a
checkout of the daemon's repository), then ``optimizerd`` on ``$PATH``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional, Union

import requests

__all__ = ["LocalDaemon", "DaemonNotFound", "find_binary", "free_port", "daemon_url"]

PathLike = Union[str, "os.PathLike[str]"]


class DaemonNotFound(FileNotFoundError):
    """No optimizerd binary could be found."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _candidates(hints: Iterable[PathLike]) -> list[Path]:
    found = [Path(h) for h in hints]
    for base in [Path.cwd(), *Path.cwd().parents]:
        for config in ("debug", "release"):
            found.append(base / ".build" / config / "optimizerd")
    return found


def find_binary(binary: Optional[PathLike] = None, hints: Iterable[PathLike] = ()) -> Path:
    """The optimizerd executable to run (see the module docstring for the search order).

    Raises:
        DaemonNotFound: with the places that were searched and how to fix it.
    """
    if binary is not None:
        path = Path(binary)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise DaemonNotFound(f"optimizerd binary {path} does not exist or is not executable")
        return path
    env = os.environ.get("OPTIMIZERD_BIN")
    if env:
        path = Path(env)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise DaemonNotFound(f"OPTIMIZERD_BIN={env} does not exist or is not executable")
        return path
    searched = _candidates(hints)
    for path in searched:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    on_path = shutil.which("optimizerd")
    if on_path:
        return Path(on_path)
    listing = "\n  ".join(str(p) for p in searched)
    raise DaemonNotFound(
        "optimizerd binary not found. Build it in the repository root with "
        "`swift build --product optimizerd`, or set OPTIMIZERD_BIN to its path. Searched:\n  "
        + listing
        + "\n  $PATH"
    )


class LocalDaemon:
    """An ``optimizerd serve`` process on 127.0.0.1 with a free port and a temporary data directory.

    ``start()`` waits until ``/healthz`` answers; ``stop()`` terminates the process (SIGTERM, then
    SIGKILL after ``stop_timeout``) and removes the temporary directory. Both run from
    ``with LocalDaemon() as daemon:``.

    The daemon's output goes to :attr:`log_path`; :meth:`log` reads it. Inherited
    ``OPTIMIZERD_*`` environment variables are not passed on (the daemon reads its flags from
    them), so the daemon runs exactly with the arguments and ``environment`` given here.

    Args:
        binary: path of the executable (else :func:`find_binary`).
        hints: extra candidate paths for :func:`find_binary`.
        port: TCP port (default: a free one).
        data_dir: data directory (default: a temporary directory, removed on stop).
        admin_token: start the daemon with this admin token (``OPTIMIZERD_ADMIN_TOKEN``).
        args: extra command-line arguments for ``optimizerd serve``.
        environment: extra environment variables for the daemon (e.g. ``OPTIMIZERD_MAX_MEMORY``).
        startup_timeout: seconds to wait for ``/healthz``.
        stop_timeout: seconds to wait after SIGTERM before SIGKILL.
    """

    def __init__(
        self,
        binary: Optional[PathLike] = None,
        *,
        hints: Iterable[PathLike] = (),
        port: Optional[int] = None,
        data_dir: Optional[PathLike] = None,
        admin_token: Optional[str] = None,
        args: Sequence[str] = (),
        environment: Optional[Mapping[str, str]] = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.binary = find_binary(binary, hints)
        self.requested_port = port
        self.port: Optional[int] = None
        self.admin_token = admin_token
        self.args = list(args)
        self.environment = dict(environment or {})
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._own_dir: Optional[tempfile.TemporaryDirectory[str]] = None
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.log_path: Optional[Path] = None
        self._log_file: Any = None

    # MARK: lifecycle

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (after :meth:`start`)."""
        if self.port is None:
            raise RuntimeError("the daemon is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        """The data directory (after :meth:`start`)."""
        if self._data_dir is None:
            raise RuntimeError("the daemon is not started")
        return self._data_dir

    def __enter__(self) -> LocalDaemon:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def start(self) -> LocalDaemon:
        """Starts the process and waits until it answers ``/healthz``."""
        if self.process is not None:
            return self
        if self._data_dir is None:
            self._own_dir = tempfile.TemporaryDirectory(prefix="optimizerd-")
            self._data_dir = Path(self._own_dir.name) / "data"
        assert self._data_dir is not None
        self._data_dir.mkdir(parents=True, exist_ok=True)
        log_dir = Path(self._own_dir.name) if self._own_dir is not None else self._data_dir.parent
        self.log_path = log_dir / f"optimizerd-{os.getpid()}-{id(self)}.log"
        fixed_port = self.requested_port or self.port  # a restart keeps the port
        attempts = 1 if fixed_port is not None else 3
        last_error: Optional[Exception] = None
        for _ in range(attempts):
            try:
                self._launch(fixed_port or free_port())
                return self
            except RuntimeError as error:  # e.g. the free port was taken meanwhile
                last_error = error
                self._terminate()
        if fixed_port is None:
            self.port = None
            self._cleanup_dir()
        raise RuntimeError(f"optimizerd did not start: {last_error}")

    def _launch(self, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPTIMIZERD_")}
        if self.admin_token is not None:
            env["OPTIMIZERD_ADMIN_TOKEN"] = self.admin_token
        env.update(self.environment)
        command = [
            str(self.binary), "serve", "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(self.data_dir), *self.args,
        ]  # fmt: skip
        assert self.log_path is not None
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in _terminate
        self.port = port
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT, env=env
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(f"exited with status {code}; its output:\n{self.log()[-4000:]}")
            try:
                if requests.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError(
            f"no answer on {self.url}/healthz within {self.startup_timeout} s; output:\n{self.log()[-4000:]}"
        )

    def stop(self) -> None:
        """Terminates the process and removes the temporary data directory."""
        self._terminate()
        self._cleanup_dir()

    def terminate(self, kill: bool = False) -> None:
        """Stops the process only (SIGTERM: a graceful shutdown; ``kill=True``: SIGKILL, as a crash
        would), keeping the data directory and the port for :meth:`start`."""
        self._terminate(kill=kill)

    def _terminate(self, kill: bool = False) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            if kill:
                process.kill()
            else:
                process.terminate()
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _cleanup_dir(self) -> None:
        if self._own_dir is not None:
            self._own_dir.cleanup()
            self._own_dir = None
            self._data_dir = None

    def restart(self, kill: bool = False) -> LocalDaemon:
        """:meth:`terminate` (SIGTERM, or SIGKILL with ``kill``), then :meth:`start` on the same
        port and data directory."""
        self._terminate(kill=kill)
        return self.start()

    # MARK: helpers

    def log(self) -> str:
        """The daemon's output so far."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def client(self, **kwargs: Any) -> Any:
        """A :class:`~optimizerd.Client` for this daemon (with its admin token, if any)."""
        from .client import Client

        kwargs.setdefault("admin_token", self.admin_token)
        return Client(self.url, **kwargs)


@contextmanager
def daemon_url(url: Optional[str] = None, *, quiet: bool = False, **kwargs: Any) -> Iterator[str]:
    """``url`` itself, or the URL of a :class:`LocalDaemon` started for the ``with`` block.

    For scripts with an optional ``--url``: ``with daemon_url(args.url) as url: ...``.
    ``kwargs`` go to :class:`LocalDaemon` (e.g. ``hints=[path]``).
    """
    if url:
        yield url
        return
    with LocalDaemon(**kwargs) as daemon:
        if not quiet:
            print(f"started {daemon.binary} on {daemon.url} (stopped at exit)")
        yield daemon.url
