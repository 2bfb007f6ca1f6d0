"""Fixtures of the container tests: a Docker engine and the image built from this checkout.

In CI (CI set) a missing engine fails the tests; elsewhere they skip when no engine can be started
(engine.sh needs root and apt). OPTIMIZERD_CONTAINER_IMAGE=TAG tests an image built beforehand
instead of building one (and leaves it in place).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from container_harness import REPO, Engine, EngineUnavailable


@pytest.fixture(scope="session")
def engine():
    try:
        started = Engine.start()
    except EngineUnavailable as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs a Docker engine for the container tests: {error}")
        pytest.skip(f"no Docker engine can be started here: {error}")
    yield started
    started.clean_up()
    started.stop_if_started_here()


@pytest.fixture(scope="session")
def build_context():
    """A fresh clone of this checkout (see `_fresh_clone`), the context every image is built from."""
    with tempfile.TemporaryDirectory(prefix="optimizerd-clone-") as clone:
        _fresh_clone(Path(clone))
        yield Path(clone)


@pytest.fixture(scope="session")
def image(engine: Engine, build_context: Path):
    given = os.environ.get("OPTIMIZERD_CONTAINER_IMAGE")
    if given:
        yield given
        return
    tag = f"optimizerd-test:{secrets.token_hex(4)}"
    engine.build(build_context, tag)
    # The build stage under a tag of its own (all cached by now), so that removing the tag removes
    # its intermediate images, gigabytes of compiler output the classic builder keeps otherwise.
    engine.build(build_context, f"{tag}-build", "--target", "build")
    yield tag
    engine.docker("rmi", "-f", tag, f"{tag}-build", check=False)


def _fresh_clone(destination: Path) -> None:
    """The checkout's files as a fresh clone has them: tracked and new files, nothing git ignores
    (so no Package.resolved and no .build), with their working-tree contents."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = REPO / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)


@pytest.fixture
def docker(engine: Engine):
    """The engine, with the containers and volumes a test made removed after it."""
    yield engine
    engine.clean_up()
