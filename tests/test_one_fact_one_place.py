"""One fact, one place (DESIGN.md): each contract value below is stated by its owner only.

A robot description (robots/descriptions/*.yaml) owns the robot's topics and workspace
box; the task config (training/conf/task/swap_fruit_sim.yaml) owns the task's token
period, actions per token and image size. Every other Python or YAML file of the
repository (not docs/, not tests/) must read them there. This test scans the values
those files state, not their prose:

- Python: string constants (f-strings with each `{...}` kept as "{}"), tuples and lists
  of numbers, and names bound to numbers (keyword arguments, assignments, dataclass
  fields, `documented(...)` defaults, dict entries, parameter defaults); docstrings and
  comments are documentation and are not scanned.
- YAML: every string (keys too), every list of numbers, every key bound to a number.

A copy found outside the allowed files fails with the file and line; so does a fact that
its owner no longer states (the list below would have gone stale).
"""

from __future__ import annotations

import ast
import math
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DESCRIPTIONS = ("robots/descriptions/fr3_sim.yaml", "robots/descriptions/fr3_real.yaml")
SWAP_FRUIT_TASK = ("training/conf/task/swap_fruit_sim.yaml",)
# Not scanned: documentation, tests, and what is never committed (see .gitignore).
SKIPPED_FOLDERS = {"docs", "tests", ".git", ".venv", "__pycache__", "outputs", "runs", "reports", "build", "install"}


@dataclass(frozen=True)
class Fact:
    """A contract value and where it may be stated. Exactly one way of stating it is set:
    `topic`, a topic name (a leading '/' or none; a camera's name may be a `{...}`
    placeholder); `numbers`, a list of numbers; `setting` with `value`, a name (or a
    name ending in _<setting>) bound to that number."""

    name: str
    allowed: tuple[str, ...]
    topic: str = ""
    numbers: tuple[float, ...] = ()
    setting: str = ""
    value: float = math.nan


FACTS = (
    Fact("current pose topic", DESCRIPTIONS, topic="franka_robot_state_broadcaster/current_pose"),
    Fact("measured joint states topic", DESCRIPTIONS, topic="franka_robot_state_broadcaster/measured_joint_states"),
    Fact("gripper joint states topic", DESCRIPTIONS, topic="franka_gripper/joint_states"),
    Fact("arm command topic", DESCRIPTIONS, topic="target_pose"),
    Fact("gripper width command topic", DESCRIPTIONS, topic="franka_gripper/width_command"),
    Fact("camera image topics", DESCRIPTIONS, topic="camera/<camera>/color/image_raw"),
    Fact("workspace box, lower corner", DESCRIPTIONS, numbers=(0.15, -0.45, 0.005)),
    Fact("workspace box, upper corner", DESCRIPTIONS, numbers=(0.75, 0.45, 0.6)),
    Fact("swap fruit token period (s)", SWAP_FRUIT_TASK, setting="token_period(_s)?", value=0.8),
    Fact("swap fruit actions per token", SWAP_FRUIT_TASK, setting="actions_per_token", value=8),
    Fact("swap fruit image size (px)", SWAP_FRUIT_TASK, setting="image_size", value=32),
)

# Copies in parts of the project being reworked elsewhere, each with its way out. A copy
# listed here that is gone fails too: then delete its line.
KNOWN_COPIES: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Statement:
    """A value a file states: a string, a list of numbers, or a name bound to a number."""

    path: str
    line: int
    text: str | None = None
    numbers: tuple[float, ...] | None = None
    name: str | None = None
    value: float | None = None


# ------------------------------------------------------------------ the repository's files


def scanned_files() -> list[str]:
    """The repository's Python and YAML files (relative paths), docs and tests left out:
    git's view (committed or not yet, never ignored) where there is a git checkout."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):  # a copy without .git (a Docker image)
        listed = []
        for folder, subfolders, files in os.walk(ROOT):
            subfolders[:] = [d for d in subfolders if d not in SKIPPED_FOLDERS and not d.endswith(".zarr")]
            listed += [str((Path(folder) / f).relative_to(ROOT)) for f in files]
    return sorted(
        path
        for path in listed
        if path.endswith((".py", ".yaml", ".yml"))
        and not set(Path(path).parts[:-1]) & SKIPPED_FOLDERS
        and (ROOT / path).is_file()
    )


def _number(node: ast.expr) -> float | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _number(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return float(node.value)
    return None


def _bound_number(node: ast.expr | None) -> float | None:
    """The number a name is bound to: a constant, or the default of `documented(value, ...)`
    or `field(default=value)`."""
    if node is None:
        return None
    if isinstance(node, ast.Call):
        default = next((k.value for k in node.keywords if k.arg == "default"), None)
        return _number(default if default is not None else node.args[0]) if (default or node.args) else None
    return _number(node)


def _target_names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Attribute):
        return [target.attr]
    if isinstance(target, ast.Tuple | ast.List):
        return [name for element in target.elts for name in _target_names(element)]
    return []


def python_statements(path: str, source: str) -> Iterator[Statement]:
    tree = ast.parse(source, path)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
        and isinstance(node.body[0].value.value, str)
    }
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield Statement(path, line, text=node.value)
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            yield Statement(path, line, text=text)
        elif isinstance(node, ast.Tuple | ast.List) and node.elts:
            numbers = [_number(element) for element in node.elts]
            if all(n is not None for n in numbers):
                yield Statement(path, line, numbers=tuple(numbers))
        bindings: list[tuple[str, ast.expr | None]] = []
        if isinstance(node, ast.keyword) and node.arg:
            bindings.append((node.arg, node.value))
        elif isinstance(node, ast.Assign):
            bindings += [(name, node.value) for target in node.targets for name in _target_names(target)]
        elif isinstance(node, ast.AnnAssign):
            bindings += [(name, node.value) for name in _target_names(node.target)]
        elif isinstance(node, ast.Dict):
            bindings += [
                (key.value, value)
                for key, value in zip(node.keys, node.values, strict=True)
                if isinstance(key, ast.Constant) and isinstance(key.value, str)
            ]
        elif isinstance(node, ast.arguments):
            positional = [*node.posonlyargs, *node.args]
            with_defaults = positional[len(positional) - len(node.defaults) :]
            bindings += [(a.arg, d) for a, d in zip(with_defaults, node.defaults, strict=True)]
            bindings += [(a.arg, d) for a, d in zip(node.kwonlyargs, node.kw_defaults, strict=True)]
        for name, value in bindings:
            number = _bound_number(value)
            if number is not None:
                yield Statement(path, getattr(value, "lineno", line), name=name, value=number)


def _yaml_lines(text: str) -> dict[str, int]:
    """The first line each key or scalar appears on, for messages."""
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        for word in re.findall(r"[\w./{}<>-]+", line.split("#")[0]):
            lines.setdefault(word, number)
    return lines


def yaml_statements(path: str, text: str) -> Iterator[Statement]:
    lines = _yaml_lines(text)

    def walk(item: object, line: int = 0) -> Iterator[Statement]:
        if isinstance(item, dict):
            for key, value in item.items():
                key_line = lines.get(str(key), line)
                yield from walk(key, key_line)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    yield Statement(path, key_line, name=str(key), value=float(value))
                yield from walk(value, key_line)
        elif isinstance(item, list):
            if item and all(isinstance(v, int | float) and not isinstance(v, bool) for v in item):
                yield Statement(path, line, numbers=tuple(float(v) for v in item))
            for value in item:
                yield from walk(value, line)
        elif isinstance(item, str):
            yield Statement(path, lines.get(item, line), text=item)

    for document in yaml.safe_load_all(text):
        yield from walk(document)


def statements(path: str) -> Iterator[Statement]:
    text = (ROOT / path).read_text()
    return python_statements(path, text) if path.endswith(".py") else yaml_statements(path, text)


# ------------------------------------------------------------------ matching


def _topic_pattern(topic: str) -> re.Pattern[str]:
    """A topic stated absolute or relative; `<camera>` is any camera name or a `{...}`
    placeholder (a format string or an f-string)."""
    parts = [re.escape(part) for part in topic.split("<camera>")]
    return re.compile("/?" + r"(\w+|\{\w*\})".join(parts))


def _setting_in_text(fact: Fact) -> re.Pattern[str]:
    """A setting written out in a string: a Hydra override `task.image_size=32`, `key: 32`."""
    value = re.escape(f"{fact.value:g}")
    return re.compile(rf"(^|[\W_]){fact.setting}\s*[=:]\s*{value}(?![\d.])", re.IGNORECASE)


def states(statement: Statement, fact: Fact) -> bool:
    if fact.topic:
        return statement.text is not None and _topic_pattern(fact.topic).fullmatch(statement.text) is not None
    if fact.numbers:
        return (
            statement.numbers is not None
            and len(statement.numbers) == len(fact.numbers)
            and all(math.isclose(a, b, abs_tol=1e-12) for a, b in zip(statement.numbers, fact.numbers, strict=True))
        )
    if statement.text is not None:
        return _setting_in_text(fact).search(statement.text) is not None
    return (
        statement.name is not None
        and re.fullmatch(rf"(\w*_)?{fact.setting}", statement.name, re.IGNORECASE) is not None
        and math.isclose(float(statement.value), fact.value)
    )


@pytest.fixture(scope="module")
def found() -> dict[str, list[Statement]]:
    """Fact name -> every statement of it in the scanned files."""
    result: dict[str, list[Statement]] = {fact.name: [] for fact in FACTS}
    for path in scanned_files():
        for statement in statements(path):
            for fact in FACTS:
                if states(statement, fact):
                    result[fact.name].append(statement)
    return result


@pytest.mark.parametrize("fact", FACTS, ids=lambda fact: fact.name)
def test_a_contract_value_is_stated_only_by_its_owner(fact: Fact, found: dict[str, list[Statement]]) -> None:
    copies = sorted(
        {
            f"{s.path}:{s.line}"
            for s in found[fact.name]
            if s.path not in fact.allowed and (s.path, fact.name) not in KNOWN_COPIES
        }
    )
    assert not copies, (
        f"the {fact.name} is stated outside {list(fact.allowed)}: {copies}. "
        "Read it from its owner (robots.description.load_robot_description, training.config) instead"
    )
    assert {s.path for s in found[fact.name]} & set(fact.allowed), (
        f"none of {list(fact.allowed)} states the {fact.name} any more: update FACTS in {Path(__file__).name}"
    )


def test_known_copies_still_exist(found: dict[str, list[Statement]]) -> None:
    gone = sorted((path, name) for path, name in KNOWN_COPIES if path not in {s.path for s in found.get(name, [])})
    assert not gone, f"these copies are gone: delete them from KNOWN_COPIES: {gone}"


def _stated(found: Iterator[Statement]) -> dict[int, set[str]]:
    """Line -> the facts stated on it."""
    lines: dict[int, set[str]] = {}
    for statement in found:
        for fact in FACTS:
            if states(statement, fact):
                lines.setdefault(statement.line, set()).add(fact.name)
    return lines


def test_the_scan_catches_each_way_of_writing_a_copy_and_skips_prose() -> None:
    python = """\"\"\"A docstring naming /target_pose is documentation.\"\"\"
TOPIC = "/target_pose"
CAMERA = f"/camera/{name}/color/image_raw"
TEMPLATE = "camera/{camera}/color/image_raw"
BOX = np.array([0.15, -0.45, 0.005])
TOKEN_PERIOD_S = 0.8
spec = make(actions_per_token=8, help="publishes the target_pose topic")
overrides = ["task.image_size=32", "task.image_size=320"]
image_size: int = documented(32, "px")
def load(image_size=32, period=0.8): ...
"""
    assert _stated(python_statements("copy.py", python)) == {
        2: {"arm command topic"},
        3: {"camera image topics"},
        4: {"camera image topics"},
        5: {"workspace box, lower corner"},
        6: {"swap fruit token period (s)"},
        7: {"swap fruit actions per token"},
        8: {"swap fruit image size (px)"},
        9: {"swap fruit image size (px)"},
        10: {"swap fruit image size (px)"},
    }
    text = """# target_pose in a comment is documentation
command: {sink: pose, topic: target_pose}
cameras:
  - {name: left, topic: /camera/left/color/image_raw}
workspace_high: [0.75, 0.45, 0.6]
task:
  token_period_s: 0.8
  actions_per_token: 4
"""
    assert set().union(*_stated(yaml_statements("copy.yaml", text)).values()) == {
        "arm command topic",
        "camera image topics",
        "workspace box, upper corner",
        "swap fruit token period (s)",
    }
