"""examples/c: the plain C client (libcurl, its own safetensors writer and reader). `make -C
examples/c run` trains against a daemon it starts and checks itself against a float64 Adam; the
other tests show that the checks can fail: too few steps, a server whose Adam takes another path,
a refused step (the problem detail is printed) and a broken data file."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load, save

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "c"
try:
    from optimizerd.testing import LocalDaemon, find_binary
except ImportError:  # not pip-installed: use the checkout's client
    sys.path.insert(0, str(REPO / "clients" / "python" / "src"))
    from optimizerd.testing import LocalDaemon, find_binary


@pytest.fixture(scope="module")
def program() -> Path:
    """build/logreg, built with the example's Makefile (-Wall -Wextra -Werror)."""
    if shutil.which("make") is None or shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("make and a C compiler are needed (apt-get install build-essential)")
    built = subprocess.run(["make", "-C", str(EXAMPLE)], capture_output=True, text=True)
    if built.returncode != 0 and "curl/curl.h" in built.stderr:
        pytest.skip("libcurl's headers are missing (apt-get install libcurl4-openssl-dev)")
    assert built.returncode == 0, built.stdout + built.stderr
    return EXAMPLE / "build" / "logreg"


def binary() -> Path:
    return find_binary(hints=[REPO / ".build" / "debug" / "optimizerd"])


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300)


def test_make_run_trains_and_matches_the_float64_reference(program):
    result = subprocess.run(
        ["make", "-C", str(EXAMPLE), "run"],
        env={**os.environ, "OPTIMIZERD_BIN": str(binary())},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "RESULT: trained, and matches the float64 reference" in result.stdout
    assert "   300 " in result.stdout  # the last step printed: every step went through the daemon


def test_too_few_steps_do_not_reach_the_loss_target(program):
    with LocalDaemon(binary()) as daemon:
        result = run(program, daemon.url, EXAMPLE / "data.csv", "3")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "RESULT: FAILED" in result.stdout


class FakeDaemon(BaseHTTPRequestHandler):
    """Speaks the daemon's API but runs Adam with lr 0.06 where the client asked for 0.05
    (``mode = "adam"``: it converges, to the same optimum, on another path), or refuses every
    step with a 422 problem (``mode = "refuse"``)."""

    mode = "adam"
    parameters: dict[str, np.ndarray] = {}
    moments: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass

    def answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/sessions":
            self.answer(
                201, json.dumps({"id": "fake", "token": "secret", "step": 0}).encode(), "application/json"
            )
        elif self.mode == "refuse":
            problem = {
                "type": "about:blank",
                "status": 422,
                "title": "Unprocessable",
                "detail": "gradient weight: NaN",
            }
            self.answer(422, json.dumps(problem).encode(), "application/problem+json")
        else:
            step = json.loads(body[8 : 8 + int.from_bytes(body[:8], "little")])["__metadata__"]["step"]
            for name, grad in load(body).items():
                m, v = self.moments.get(name, (0.0, 0.0))
                m, v = 0.9 * m + 0.1 * grad, 0.999 * v + 0.001 * grad * grad
                self.moments[name] = (m, v)
                t = int(step)
                update = 0.06 / (1 - 0.9**t) * m / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
                self.parameters[name] = (self.parameters[name] - update).astype(np.float32)
            self.answer(200, save(self.parameters, metadata={"step": step}), "application/octet-stream")

    def do_PUT(self) -> None:  # noqa: N802
        FakeDaemon.parameters = dict(load(self.rfile.read(int(self.headers["Content-Length"]))))
        FakeDaemon.moments = {}
        self.answer(200, b"{}", "application/json")

    def do_DELETE(self) -> None:  # noqa: N802
        self.answer(204, b"", "application/json")


@pytest.fixture
def fake_daemon():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeDaemon)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    FakeDaemon.mode = "adam"


def test_a_server_off_the_reference_is_caught(program, fake_daemon):
    """The loss reaches the target, but the trajectory is not Adam's at lr 0.05: exit 1."""
    result = run(program, fake_daemon, EXAMPLE / "data.csv")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "session fake" in result.stdout  # it trained against the fake, through safetensors' own files
    final = re.search(r"final loss: optimizerd (\S+),", result.stdout)
    assert float(final.group(1)) < 0.40
    gap = re.search(r"largest loss gap over the run: (\S+) ", result.stdout)
    assert float(gap.group(1)) > 1e-6
    assert "RESULT: FAILED" in result.stdout


def test_a_refused_step_prints_the_problem_detail(program, fake_daemon):
    FakeDaemon.mode = "refuse"
    result = run(program, fake_daemon, EXAMPLE / "data.csv")
    assert result.returncode == 1
    assert "422 gradient weight: NaN" in result.stderr


def test_a_broken_data_file_is_named_by_line(program, tmp_path):
    broken = tmp_path / "broken.csv"
    broken.write_text("x0,x1,y\n0.5,1.0,1\n0.25,oops,0\n")
    result = run(program, "http://127.0.0.1:9", broken)
    assert result.returncode == 1
    assert "line 3, column 2: expected a number" in result.stderr
