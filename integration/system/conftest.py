from pathlib import Path

import pytest
from harness import daemon_binary


@pytest.fixture(scope="session")
def binary() -> Path:
    return daemon_binary()
