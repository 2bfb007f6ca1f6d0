"""The production image itself: what its own layers hold and weigh, the binary's symbols, the user."""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
from container_harness import IMAGE_UID, REPO, Engine

BACKTRACER = "usr/libexec/swift/linux/swift-backtrace-static"


def runtime_base_image() -> str:
    return re.search(r"^ARG RUNTIME_IMAGE=(\S+)$", (REPO / "Dockerfile").read_text(), re.M).group(1)


@pytest.fixture(scope="module")
def added_layers(engine: Engine, image: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The files of each layer the runtime stage adds to its base image: {path: TarInfo}, and the
    binary extracted (`optimizerd`)."""
    base = engine.inspect("image", runtime_base_image())["RootFS"]["Layers"]
    layers = engine.inspect("image", image)["RootFS"]["Layers"]
    assert layers[: len(base)] == base, "the image is not built on its runtime base image"
    directory = tmp_path_factory.mktemp("image")
    engine.docker("save", "-o", str(directory / "image.tar"), image, timeout=600)
    files: dict = {}
    with tarfile.open(directory / "image.tar") as saved:
        manifest = json.load(saved.extractfile("manifest.json"))
        for layer in manifest[0]["Layers"][len(base) :]:
            with tarfile.open(fileobj=saved.extractfile(layer)) as contents:
                for member in contents.getmembers():
                    files[member.name] = member
                    if member.name == "usr/local/bin/optimizerd":
                        (directory / "optimizerd").write_bytes(contents.extractfile(member).read())
    (directory / "image.tar").unlink()
    return {"files": files, "binary": directory / "optimizerd"}


def test_the_runtime_stage_adds_at_most_100_mb_and_no_apt_caches(
    engine: Engine, image: str, added_layers: dict
) -> None:
    added = engine.inspect("image", image)["Size"] - engine.inspect("image", runtime_base_image())["Size"]
    assert 0 < added <= 100_000_000, f"the runtime stage adds {added / 1e6:.1f} MB"
    names = added_layers["files"]
    assert "usr/local/bin/optimizerd" in names and BACKTRACER in names
    # Whiteouts (`.wh.NAME`) are deletions: this stage removing what its base left is fine.
    kept = [name for name in names if not Path(name).name.startswith(".wh.")]
    caches = [
        name
        for name in kept
        if (name.startswith("var/lib/apt/lists/") and not name.endswith(("/lock", "/partial")))
        or (name.startswith("var/cache/apt/") and name.endswith((".bin", ".deb")))
    ]
    assert caches == [], f"apt caches in the image's layers: {caches}"


def sections(binary: Path) -> set:
    listing = subprocess.run(
        ["readelf", "-S", "-W", str(binary)], capture_output=True, text=True, check=True
    ).stdout
    return set(re.findall(r"\]\s+(\.\S+)", listing))


def build_id(binary: Path) -> str:
    notes = subprocess.run(["readelf", "-n", str(binary)], capture_output=True, text=True, check=True).stdout
    return re.search(r"Build ID: ([0-9a-f]+)", notes).group(1)


def test_the_binary_ships_without_debug_information_which_the_symbols_stage_has(
    engine: Engine, image: str, build_context: Path, added_layers: dict, tmp_path: Path
) -> None:
    binary = added_layers["binary"]
    shipped = sections(binary)
    assert not {name for name in shipped if name.startswith(".debug_")} and ".symtab" not in shipped, shipped
    assert ".gnu_debuglink" in shipped  # names the file with the rest

    # docs/deploy.md: how a user gets the debug information of the image's binary.
    tag = f"{image}-symbols"
    engine.build(build_context, tag, "--target", "symbols")
    try:
        engine.docker("create", "--name", tag.replace(":", "-"), tag, "none")
        engine.docker("cp", f"{tag.replace(':', '-')}:/optimizerd.debug", str(tmp_path / "optimizerd.debug"))
        engine.docker("rm", tag.replace(":", "-"))
    finally:
        engine.docker("rmi", "-f", tag, check=False)
    debug = tmp_path / "optimizerd.debug"
    assert {".symtab", ".debug_info", ".debug_line"} <= sections(debug)
    assert build_id(debug) == build_id(binary)


def test_the_image_runs_as_uid_10001_with_a_health_check_and_backtraces_on(
    engine: Engine, image: str
) -> None:
    config = engine.inspect("image", image)["Config"]
    assert config["User"] == "optimizerd:optimizerd"
    assert engine.docker("run", "--rm", "--entrypoint", "id", image, "-u").stdout.strip() == str(IMAGE_UID)
    assert config["Healthcheck"]["Test"] == ["CMD", "/usr/local/bin/optimizerd", "probe"]
    backtrace = dict(line.split("=", 1) for line in config["Env"])["SWIFT_BACKTRACE"]
    assert "enable=yes" in backtrace and f"swift-backtrace=/{BACKTRACER}" in backtrace
