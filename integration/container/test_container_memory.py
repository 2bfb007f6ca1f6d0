"""A container with a memory limit (`docker run -m 1g`, as Compose and Kubernetes run it): the
daemon takes its memory budget from the cgroup's limit and refuses sessions beyond it with 507,
while the sessions it admitted keep stepping, and the kernel never OOM-kills it."""

from __future__ import annotations

import re
import secrets

import numpy as np
from container_harness import Engine
from training import Session

# 25M parameters: 100 MB as float32, about 300 MB with Adam's two state slots. In 1 GiB, only a
# few such sessions fit.
SHAPE = (5000, 5000)


def test_sessions_beyond_the_memory_budget_are_refused_and_the_container_is_never_oom_killed(
    docker: Engine, image: str
) -> None:
    admin = secrets.token_urlsafe(32)
    container = docker.run(image, environment={"OPTIMIZERD_ADMIN_TOKEN": admin}, options=("-m", "1g"))
    container.wait_healthy()
    # The default budget comes from the container's limit (cgroup v1 or v2, whichever the host has).
    assert re.search(r"limits\.max_memory\.source=.*the cgroup v[12] limit 1\.0 GiB", container.logs()), (
        container.logs()
    )
    admitted: list = []
    refused = None
    for seed in range(6):
        session = Session.create(container.url, admin)
        initial = {"w": np.full(SHAPE, seed, np.float32)}
        answer = session.upload(initial)
        if answer.status_code == 507:
            refused = answer
            break
        assert answer.status_code == 200, answer.text
        admitted.append(session)
        # Each admitted session steps at once: its state is created now, inside the budget.
        stepped = session.step(1, {"w": np.full(SHAPE, 0.5, np.float32)})
        assert stepped.status_code == 200, stepped.text
    assert refused is not None, f"{len(admitted)} sessions of 300 MB each admitted in a 1 GiB container"
    assert admitted, "not even one session of 300 MB admitted in a 1 GiB container"
    problem = refused.json()
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert problem["type"] == "urn:optimizerd:problem:memory-budget-exceeded", problem
    assert "--max-memory" in problem["detail"], problem

    # The admitted sessions keep stepping (and each step moves its parameters).
    for step in (2, 3):
        for session in admitted:
            answer = session.step(step, {"w": np.full(SHAPE, 0.5, np.float32)})
            assert answer.status_code == 200, answer.text
    for seed, session in enumerate(admitted):
        assert session.summary()["step"] == 3
        parameters = session.parameters()["w"]
        assert np.all(parameters < seed) and np.all(parameters == parameters.flat[0])

    state = container.state()
    assert state["Running"] and not state["OOMKilled"] and state["Health"]["Status"] == "healthy", state
