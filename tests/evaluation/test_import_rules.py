"""The layering DESIGN.md promises, read from the source with `ast` (nothing is imported
to check it): the core never imports evaluation or the command line, evaluation never
imports the command line, rclpy is reached only lazily from evaluation.ros, and the
evaluation modules import each other without a cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOWER_LAYERS = ("policy", "data_collection", "training", "sim")
# Importing any of these opens (or needs) ROS: rclpy itself, message and service types,
# and the node package whose modules import rclpy.
ROS_MODULES = ("rclpy", "df_policy", "rcl_interfaces", "std_srvs", "builtin_interfaces")


def _modules(package: str) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of `package`."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(module: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import in the file; relative
    imports resolved against `module`; `from a import b` gives a.b where a/b is a module."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):  # imports inside `if` or `try` at module level run at import too
        if isinstance(node, (ast.If, ast.Try)) and id(node) in top_level:
            top_level |= {id(child) for child in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        eager = id(node) in top_level
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, eager) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((base, node.lineno, eager))
            for alias in node.names:
                submodule = ROOT.joinpath(*f"{base}.{alias.name}".split("."))
                if submodule.with_suffix(".py").is_file() or (submodule / "__init__.py").is_file():
                    found.append((f"{base}.{alias.name}", node.lineno, eager))
    return found


def _offences(packages: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line} imports {imported}"
        for package in packages
        for module, path in _modules(package).items()
        for imported, line, _ in _imports(module, path)
        if imported.split(".")[0] in forbidden
    ]


def test_the_core_imports_neither_evaluation_nor_the_command_line() -> None:
    assert all((ROOT / package).is_dir() for package in LOWER_LAYERS)
    assert _offences(LOWER_LAYERS, ("evaluation", "dfstack")) == []


def test_evaluation_never_imports_the_command_line() -> None:
    assert _offences(("evaluation",), ("dfstack",)) == []


def test_ros_is_imported_only_lazily_and_only_by_evaluation_ros() -> None:
    offences = []
    for module, path in _modules("evaluation").items():
        in_ros_part = module == "evaluation.ros" or module.startswith("evaluation.ros.")
        for imported, line, eager in _imports(module, path):
            if imported.split(".")[0] in ROS_MODULES and (eager or not in_ros_part):
                offences.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    assert offences == []


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` (module -> modules it imports), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for imported in sorted(graph[node]):
            if state.get(imported) == "open":
                return [*stack[stack.index(imported) :], imported]
            if imported not in state and (found := visit(imported)):
                return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_evaluation_modules_import_each_other_without_a_cycle() -> None:
    modules = _modules("evaluation")
    graph = {
        module: {imported for imported, _, _ in _imports(module, path) if imported in modules and imported != module}
        for module, path in modules.items()
    }
    assert graph["evaluation.rollout"], "the graph should see evaluation's own imports"
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("module", ["evaluation", "evaluation.ros", "evaluation.report", "evaluation.rollout"])
def test_importing_evaluation_loads_neither_ros_nor_torch(module: str) -> None:
    heavy = ("rclpy", "torch", "mujoco", "df_policy", "dfstack")
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_simulator_never_imports_training() -> None:
    """sim/ may import robots/ and policy/; a task is chosen by configuration above it."""
    assert _offences(("sim",), ("training", "evaluation", "dfstack")) == []


def test_front_ends_take_a_task_instead_of_importing_one() -> None:
    """collect-sim, evaluate-sim, bench-paper, the demo and sim_robot_node reach the
    simulator through a task config (evaluation.sim_task), never by importing a task."""
    front_ends = {**_modules("dfstack"), **_modules("evaluation"), **_modules("benchmarks")}
    package = ROOT / "ros2_ws" / "src" / "df_policy"
    front_ends |= {
        f"df_policy.{path.stem}": path
        for path in sorted((package / "df_policy").glob("*.py"))
        if path.stem != "__init__"
    }
    offences = [
        f"{path.relative_to(ROOT)}:{line} imports {imported}"
        for module, path in front_ends.items()
        for imported, line, _ in _imports(module, path)
        if imported.startswith("sim.tasks.") and imported != "sim.tasks.base"
    ]
    assert offences == []
