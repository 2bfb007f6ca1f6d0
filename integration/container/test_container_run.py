"""The image run as docs/deploy.md tells users to: a volume, an admin token (as a variable and as a
file), docker's own health check, the README's curl session, `docker stop`/`docker start` in the
middle of training, TLS with a mounted certificate, and a crash that leaves a backtrace."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time
from pathlib import Path

import numpy as np
import requests
from container_harness import IMAGE_UID, REPO, Engine
from safetensors.numpy import load_file
from training import Session, Trainer, assert_bit_identical, model, steps


def readme_curl_session(port: int) -> str:
    """The README's "A first session with curl", as a user runs it against the container: on the
    container's port, with the admin token on the create call (docs/deploy.md says so)."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## A first session with curl", 1)[1]
    script = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    create = "curl -s -X POST localhost:8080/v1/sessions"
    assert script.count(create) == 1, "the README's session no longer creates its session with this command"
    script = script.replace(create, f'{create} -H "Authorization: Bearer $(cat admin-token)"')
    assert "localhost:8080" in script
    return script.replace("localhost:8080", f"localhost:{port}")


def test_volume_admin_token_readme_session_then_token_file(
    docker: Engine, image: str, tmp_path: Path
) -> None:
    volume = docker.volume()
    admin = secrets.token_urlsafe(32)
    (tmp_path / "admin-token").write_text(admin + "\n")

    first = docker.run(
        image, environment={"OPTIMIZERD_ADMIN_TOKEN": admin}, mounts=(f"{volume}:/var/lib/optimizerd",)
    )
    first.wait_healthy()
    assert first.main_process_uids() == [IMAGE_UID] * 4
    whoami = docker.docker("exec", first.name, "id", "-u").stdout.strip()
    assert whoami == str(IMAGE_UID)
    assert (
        requests.post(f"{first.url}/v1/sessions", json={"optimizer": "adam"}, timeout=30).status_code == 401
    )

    port = first.url.rsplit(":", 1)[1]
    ran = subprocess.run(
        ["bash", "-e", "-c", readme_curl_session(int(port))],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    updated = load_file(tmp_path / "updated.safetensors")
    # One AdamW step of lr 1e-3: each parameter moves by lr against its gradient's sign, and the
    # weight (weight_decay 0.01; the bias group has 0) decays by lr * 0.01 first.
    assert np.allclose(updated["layer.weight"], 1 - 1e-3 * 0.01 - 1e-3, rtol=0, atol=1e-7)
    assert np.allclose(updated["layer.bias"], -1e-3, rtol=0, atol=1e-7)
    assert '"durable_step"' in ran.stdout and '"step":1' in ran.stdout  # the summary and the history
    session_id = json.loads((tmp_path / "session.json").read_text())["id"]
    listed = requests.get(
        f"{first.url}/v1/sessions", headers={"Authorization": f"Bearer {admin}"}, timeout=30
    )
    assert listed.status_code == 200 and session_id in listed.text

    first.stop()
    assert first.state()["ExitCode"] == 0, first.logs()
    # Files in the volume belong to the image's user.
    owners = docker.docker(
        "run",
        "--rm",
        "--entrypoint",
        "find",
        "-v",
        f"{volume}:/data",
        image,
        "/data",
        "!",
        "-uid",
        str(IMAGE_UID),
    ).stdout.split()
    assert owners == [], f"not owned by uid {IMAGE_UID}: {owners}"

    # The token-file variant, on the same volume: the README's session is there, at its step.
    os.chmod(tmp_path / "admin-token", 0o444)
    second = docker.run(
        image,
        environment={"OPTIMIZERD_ADMIN_TOKEN_FILE": "/run/secrets/optimizerd-admin-token"},
        mounts=(
            f"{volume}:/var/lib/optimizerd",
            f"{tmp_path / 'admin-token'}:/run/secrets/optimizerd-admin-token:ro",
        ),
    )
    second.wait_healthy()
    assert admin not in docker.docker("inspect", second.name).stdout
    assert requests.get(f"{second.url}/v1/sessions", timeout=30).status_code == 401
    listed = requests.get(
        f"{second.url}/v1/sessions", headers={"Authorization": f"Bearer {admin}"}, timeout=30
    )
    assert listed.status_code == 200 and session_id in listed.text
    admin_session = Session(second.url, session_id, admin)
    assert admin_session.summary()["durable_step"] == 1
    assert_bit_identical(admin_session.parameters(), updated)


def test_docker_stop_while_training_keeps_every_acknowledged_step(docker: Engine, image: str) -> None:
    admin = secrets.token_urlsafe(32)
    volume = docker.volume()
    container = docker.run(
        image, environment={"OPTIMIZERD_ADMIN_TOKEN": admin}, mounts=(f"{volume}:/var/lib/optimizerd",)
    )
    container.wait_healthy()
    initial = model()
    session = Session.create(container.url, admin)
    assert session.upload(initial).status_code == 200
    trainer = Trainer(session, initial)
    trainer.start()
    trainer.wait_for(20)
    container.stop()  # the trainer is still stepping: its requests meet the shutdown
    trainer.join(timeout=120)
    assert not trainer.is_alive() and trainer.ended_by, "the trainer never noticed the stop"
    acknowledged = trainer.acknowledged
    stopped = container.state()
    assert stopped["ExitCode"] == 0 and not stopped["OOMKilled"], container.logs()
    assert "optimizerd stopped" in container.logs()

    container.start()
    container.wait_healthy()
    summary = session.summary()
    # Every acknowledged step is there; a step whose answer the stop cut off may be too.
    assert summary["step"] in (acknowledged, acknowledged + 1), (summary, acknowledged, trainer.ended_by)
    assert summary["durable_step"] == summary["step"]

    # The same steps on a session that never stopped give the same bits, before and after the
    # trainer resumes (resending the step after its last acknowledged one, as a client retries).
    reference = Session.create(container.url, admin)
    assert reference.upload(initial).status_code == 200
    steps(reference, initial, 1, summary["step"])
    assert_bit_identical(session.parameters(), reference.parameters())
    steps(session, initial, acknowledged + 1, acknowledged + 5)
    steps(reference, initial, summary["step"] + 1, acknowledged + 5)
    assert_bit_identical(session.parameters(), reference.parameters())


def test_tls_with_a_mounted_certificate_is_healthy_over_https(
    docker: Engine, image: str, tmp_path: Path
) -> None:
    certificates = tmp_path / "tls"
    certificates.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(certificates / "key.pem"), "-out", str(certificates / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    for pem in certificates.iterdir():
        os.chmod(pem, 0o444)  # readable by the image's user (uid 10001)
    admin = secrets.token_urlsafe(32)
    container = docker.run(
        image,
        environment={
            "OPTIMIZERD_ADMIN_TOKEN": admin,
            "OPTIMIZERD_TLS_CERT": "/run/secrets/tls/cert.pem",
            "OPTIMIZERD_TLS_KEY": "/run/secrets/tls/key.pem",
        },
        mounts=(f"{certificates}:/run/secrets/tls:ro",),
        tls=True,
    )
    container.wait_healthy()  # docker's health check probes https
    certificate = str(certificates / "cert.pem")
    assert requests.get(f"{container.url}/healthz", verify=certificate, timeout=30).status_code == 200
    session = Session.create(container.url, admin, verify=certificate)
    initial = model()
    assert session.upload(initial).status_code == 200
    steps(session, initial, 1, 2)
    assert session.summary()["step"] == 2
    plain = container.url.replace("https://", "http://")
    try:
        answer = requests.get(f"{plain}/healthz", timeout=30)
        assert answer.status_code != 200, "plain http answered on the TLS port"
    except requests.ConnectionError:
        pass


def test_a_crash_leaves_a_backtrace_in_the_container_log(docker: Engine, image: str) -> None:
    container = docker.run(image)
    container.wait_answering()
    # SIGSEGV from outside: the Swift runtime's handler runs the backtracer as for a real fault. (The
    # daemon, PID 1 of its container, then ignores the re-raised signal; a real fault kills it.)
    docker.docker("kill", "--signal", "SEGV", container.name)
    deadline = time.monotonic() + 120
    while "*** Program crashed" not in container.logs() and time.monotonic() < deadline:
        time.sleep(0.5)
    log = container.logs()
    assert "*** Program crashed" in log, log
    # Every thread's frames: addresses in the stripped binary (the `symbols` stage names them).
    assert re.search(r"Thread 0 .* crashed", log) and re.search(r"0x[0-9a-f]{16} .* in optimizerd", log), log
