"""flake8 over the package (run by `colcon test`), with the project's line length."""

from pathlib import Path

import pytest
from ament_flake8.main import main_with_errors

PACKAGE = Path(__file__).resolve().parents[1]


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8() -> None:
    config = Path(__file__).with_name("flake8.ini")
    rc, errors = main_with_errors(argv=["--config", str(config), str(PACKAGE)])
    assert rc == 0, f"found {len(errors)} code style errors / warnings:\n" + "\n".join(errors)
