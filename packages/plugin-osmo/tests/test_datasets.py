"""stage-dataset on osmo checks the folder for secrets as packing does, before any upload."""

from __future__ import annotations

from pathlib import Path

from osmo_helpers import FakeOsmo

from robotrain.testing import assert_one_line_error

OSMO = ["--platform", "osmo"]
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"  # pragma: allowlist secret


def test_a_secret_in_the_dataset_is_refused_before_any_upload(osmo: FakeOsmo, project: Path) -> None:
    data = project / "data"
    data.mkdir()
    (data / "episodes.csv").write_text("step,reward\n0,1.0\n")
    (data / "config.py").write_text(f'AWS_ACCESS_KEY_ID = "{AWS_KEY}"\n')
    result = osmo.run(["stage-dataset", "data", "--name", "demo", *OSMO], cwd=project)
    line = assert_one_line_error(result, "config.py:1")
    assert AWS_KEY not in result.stdout + line
    assert not any(argv[:2] in (["dataset", "upload"], ["data", "upload"]) for argv in osmo.argvs())


def test_an_allowed_secret_is_staged(osmo: FakeOsmo, project: Path) -> None:
    data = project / "data"
    data.mkdir()
    (data / "config.py").write_text(f'AWS_ACCESS_KEY_ID = "{AWS_KEY}"\n')
    (project / "robotrain.toml").write_text(
        '[[allow-secrets]]\npath = "data/config.py"\nreason = "a documented example key"\n'
    )
    result = osmo.run(["stage-dataset", "data", "--name", "demo", *OSMO], cwd=project)
    assert result.returncode == 0, result.stderr
    assert any(argv[:2] == ["dataset", "upload"] for argv in osmo.argvs())
