"""A real Docker engine for the container tests, and the containers they run on it.

The engine is ../shared/container/engine.sh beside the repository (or OPTIMIZERD_ENGINE_SCRIPT):
`engine.sh start` installs and starts it and prints the `DOCKER_HOST` to use. Containers share the
host's network (`--network host`; the engine has no bridge), each on its own free port.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import requests

REPO = Path(__file__).resolve().parents[2]
try:
    import optimizerd  # noqa: F401
except ImportError:  # not pip-installed: use the checkout's client
    sys.path.insert(0, str(REPO / "clients" / "python" / "src"))

from optimizerd.testing import free_port  # noqa: E402

ENGINE_SCRIPT = Path(
    os.environ.get("OPTIMIZERD_ENGINE_SCRIPT", REPO.parent / "shared" / "container" / "engine.sh")
)
# Where engine.sh keeps its socket (its default root, or OPTIMIZERD_ENGINE_ROOT as it reads it).
ENGINE_SOCKET = Path(os.environ.get("OPTIMIZERD_ENGINE_ROOT", "/var/lib/optimizerd-engine")) / "docker.sock"
# The user the image runs as.
IMAGE_UID = 10001


class EngineUnavailable(RuntimeError):
    """No Docker engine could be started here (not root, no engine.sh, no apt, ...)."""


class Engine:
    """A Docker engine: the `docker` command with its `DOCKER_HOST`, and what the tests made on it."""

    def __init__(self, environment: dict, started_here: bool) -> None:
        self.environment = environment
        self.started_here = started_here
        self.containers: list[str] = []
        self.volumes: list[str] = []

    @classmethod
    def start(cls) -> Engine:
        """The engine engine.sh runs, started (and installed) if it is not running yet."""
        if not ENGINE_SCRIPT.is_file():
            raise EngineUnavailable(f"no engine script at {ENGINE_SCRIPT}")
        running_before = _answers({**os.environ, "DOCKER_HOST": f"unix://{ENGINE_SOCKET}"})
        started = subprocess.run(
            [str(ENGINE_SCRIPT), "start"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=1800,
        )
        if started.returncode != 0:
            raise EngineUnavailable(f"{ENGINE_SCRIPT} start failed:\n{started.stderr[-3000:]}")
        environment = dict(os.environ)
        for line in started.stdout.splitlines():
            if line.startswith("export "):
                for assignment in line[len("export ") :].split():
                    key, _, value = assignment.partition("=")
                    environment[key] = value
        if not _answers(environment):
            raise EngineUnavailable(
                f"{ENGINE_SCRIPT} start printed {started.stdout!r}, but docker does not answer"
            )
        return cls(environment, started_here=not running_before)

    def stop_if_started_here(self) -> None:
        if self.started_here:
            subprocess.run([str(ENGINE_SCRIPT), "stop"], check=True, stdin=subprocess.DEVNULL, timeout=120)

    def docker(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        """Runs `docker ARGS`; with `check`, a failure raises with docker's own message."""
        result = subprocess.run(
            ["docker", *args], env=self.environment, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}"
            )
        return result

    def build(self, context: Path, tag: str, *options: str) -> None:
        """`docker build -t TAG .` in `context`, as docs/deploy.md says, plus `--network host` (the
        engine has no bridge); a failure raises with the end of the build's output."""
        built = subprocess.run(
            ["docker", "build", "--network", "host", "-t", tag, *options, "."],
            cwd=context,
            env=self.environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=3600,
        )
        if built.returncode != 0:
            raise AssertionError(
                f"docker build {' '.join(options)} failed ({built.returncode}):\n{built.stdout[-4000:]}"
            )

    def inspect(self, kind: str, name: str) -> dict:
        return json.loads(self.docker(kind, "inspect", name).stdout)[0]

    def volume(self) -> str:
        """A new named volume, removed by `clean_up`."""
        name = f"optimizerd-test-{secrets.token_hex(4)}"
        self.docker("volume", "create", name)
        self.volumes.append(name)
        return name

    def run(
        self,
        image: str,
        *,
        environment: Optional[dict] = None,
        mounts: tuple = (),
        options: tuple = (),
        tls: bool = False,
    ) -> Container:
        """`docker run -d` of the image on the host network, on a free loopback port.

        `mounts` are `-v` values and `options` further `docker run` options (`-m 1g`, ...).
        """
        name = f"optimizerd-test-{secrets.token_hex(4)}"
        port = free_port()
        arguments = ["run", "-d", "--name", name, "--network", "host"]
        # On the host's network: loopback only, so the test daemons are not reachable from outside.
        settings = {"OPTIMIZERD_HOST": "127.0.0.1", "OPTIMIZERD_PORT": str(port), **(environment or {})}
        for key, value in settings.items():
            arguments += ["-e", f"{key}={value}"]
        for mount in mounts:
            arguments += ["-v", mount]
        self.containers.append(name)
        self.docker(*arguments, *options, image)
        return Container(self, name, f"{'https' if tls else 'http'}://127.0.0.1:{port}")

    def clean_up(self) -> None:
        """Removes the containers (with their anonymous volumes) and the volumes the tests made."""
        for name in self.containers:
            self.docker("rm", "-f", "-v", name, check=False)
        for name in self.volumes:
            self.docker("volume", "rm", "-f", name, check=False)
        self.containers.clear()
        self.volumes.clear()


class Container:
    """One running container of the image: its name, its daemon's URL, and docker's view of it."""

    def __init__(self, engine: Engine, name: str, url: str) -> None:
        self.engine = engine
        self.name = name
        self.url = url

    def state(self) -> dict:
        return self.engine.inspect("container", self.name)["State"]

    def logs(self) -> str:
        result = self.engine.docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def wait_healthy(self, timeout: float = 120) -> None:
        """Waits until docker's own HEALTHCHECK reports `healthy` (the image's probe, not ours)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if not state["Running"]:
                raise AssertionError(f"{self.name} exited ({state['ExitCode']}):\n{self.logs()}")
            if state.get("Health", {}).get("Status") == "healthy":
                return
            time.sleep(0.5)
        raise AssertionError(f"{self.name} not healthy after {timeout} s: {self.state()}\n{self.logs()}")

    def wait_answering(self, timeout: float = 60, **kwargs: object) -> None:
        """Waits until the daemon answers /healthz (before docker's first health check)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/healthz", timeout=5, **kwargs).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            if not self.state()["Running"]:
                raise AssertionError(f"{self.name} exited:\n{self.logs()}")
            time.sleep(0.2)
        raise AssertionError(f"{self.name} does not answer /healthz after {timeout} s:\n{self.logs()}")

    def stop(self) -> None:
        """`docker stop`: SIGTERM, then docker's default 10 s before SIGKILL."""
        self.engine.docker("stop", self.name, timeout=120)

    def start(self) -> None:
        self.engine.docker("start", self.name)

    def wait_exited(self, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if not state["Running"]:
                return state
            time.sleep(0.2)
        raise AssertionError(f"{self.name} still running after {timeout} s")

    def main_process_uids(self) -> list:
        """Real, effective, saved and filesystem uid of the container's PID 1, as the host sees it."""
        pid = self.state()["Pid"]
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return [int(uid) for uid in line.split()[1:]]
        raise AssertionError(f"no Uid line for pid {pid}")


def _answers(environment: dict) -> bool:
    try:
        return (
            subprocess.run(
                ["docker", "info"], env=environment, capture_output=True, stdin=subprocess.DEVNULL, timeout=30
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
