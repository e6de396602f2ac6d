from __future__ import annotations

from pathlib import Path

import pytest

from robotrain.testing import make_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A throwaway project with a minimal training folder."""
    return make_project(tmp_path / "project")
