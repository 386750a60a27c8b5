"""pep257 docstring checks over the package (run by `colcon test`).

The ament convention, less the rules that contradict the project's docstring layout
(summary on the opening line, wrapped at 120 columns, closing quotes on the last text
line, as ruff formats them) and D403, which misreads names such as PoseStamped.
"""

from pathlib import Path

import pytest
from ament_pep257.main import main

PACKAGE = Path(__file__).resolve().parents[1]
PROJECT_STYLE_IGNORES = ["D205", "D209", "D213", "D400", "D401", "D403", "D415"]


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257() -> None:
    rc = main(argv=["--add-ignore", *PROJECT_STYLE_IGNORES, "--", str(PACKAGE)])
    assert rc == 0, "found docstring style errors"
