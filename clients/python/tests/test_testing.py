"""The launcher the tests and examples use."""

from __future__ import annotations

import os

import pytest
import requests
from client_support import daemon_binary
from optimizerd.testing import DaemonNotFound, LocalDaemon, daemon_url, find_binary


def test_local_daemon_lifecycle(tmp_path):
    daemon = LocalDaemon(daemon_binary(), data_dir=tmp_path / "data", args=["--log-level", "info"])
    with daemon:
        assert requests.get(daemon.url + "/healthz", timeout=5).json() == {"status": "ok"}
        port = daemon.port
        daemon.restart()
        assert daemon.port == port and daemon.client().health()["status"] == "ok"
        process = daemon.process
    assert process.poll() is not None  # stopped
    assert "listening" in daemon.log()
    assert (tmp_path / "data").is_dir()  # a given data dir is kept


def test_daemon_url_passes_a_url_through_or_starts_a_daemon(capsys):
    with daemon_url("http://example.invalid:1") as url:
        assert url == "http://example.invalid:1"
    with daemon_url(None, binary=daemon_binary()) as url:
        assert requests.get(url + "/healthz", timeout=5).status_code == 200
    assert "started" in capsys.readouterr().out


def test_find_binary_explains_what_is_missing(tmp_path, monkeypatch):
    binary = daemon_binary()
    monkeypatch.setenv("OPTIMIZERD_BIN", str(tmp_path / "nope"))
    with pytest.raises(DaemonNotFound, match="OPTIMIZERD_BIN"):
        find_binary()
    monkeypatch.delenv("OPTIMIZERD_BIN")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DaemonNotFound, match="swift build --product optimizerd"):
        find_binary()
    assert find_binary(hints=[binary]) == binary
    assert os.access(find_binary(binary), os.X_OK)


def test_a_daemon_that_exits_at_once_is_reported(tmp_path):
    with pytest.raises(RuntimeError, match="exited with status"):
        LocalDaemon(daemon_binary(), args=["--no-such-flag"], startup_timeout=10).start()
