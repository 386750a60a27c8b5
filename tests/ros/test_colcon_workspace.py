"""`colcon build` and `colcon test` of ros2_ws pass (ament flake8 and pep257 included).

Build, install and log folders go to a temporary directory so the checkout stays clean.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

WORKSPACE = Path(__file__).resolve().parents[2] / "ros2_ws"


def colcon(*args: str, base: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    return subprocess.run(
        ["colcon", "--log-base", str(base / "log"), *args],
        cwd=WORKSPACE,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(
    shutil.which("colcon", path=str(Path(sys.executable).parent)) is None, reason="colcon not installed"
)
def test_colcon_build_and_test_pass(tmp_path):
    dirs = ["--build-base", str(tmp_path / "build"), "--install-base", str(tmp_path / "install")]
    build = colcon("build", *dirs, base=tmp_path)
    assert build.returncode == 0, build.stdout + build.stderr
    installed = tmp_path / "install" / "df_policy" / "share" / "df_policy" / "launch" / "swap_fruit.launch.py"
    assert installed.is_file(), "swap_fruit.launch.py is not installed into the package share"
    test = colcon("test", *dirs, base=tmp_path)
    assert test.returncode == 0, test.stdout + test.stderr
    result = colcon("test-result", "--test-result-base", str(tmp_path / "build"), "--all", base=tmp_path)
    assert result.returncode == 0, result.stdout
    assert "0 errors, 0 failures" in result.stdout and "2 tests" in result.stdout, result.stdout
