"""`dfstack`: the project's command line.

Each subcommand lives in the module that owns the work and exposes
`main(argv: list[str] | None) -> int`; this file only dispatches, importing the
module when the subcommand is used (so `dfstack data info` never imports torch's
training stack, and a missing optional part names what to install).
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "data": (
        "data_collection.cli",
        "episode store tools: info, validate, repair, delete, view, import-rosbag, export-lerobot, import-lerobot",
    ),
    "collect-sim": ("dfstack.collect_sim", "record scripted-expert demonstrations in the simulator"),
    "train": ("training.train", "train a policy (hydra configuration)"),
    "evaluate-sim": ("dfstack.evaluate_sim", "closed-loop success rate of a checkpoint in the simulator"),
}


def _usage() -> str:
    lines = ["usage: dfstack <command> [options]   (dfstack <command> --help for each)", "", "commands:"]
    lines += [f"  {name:<14}{summary}" for name, (_, summary) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"dfstack: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name = SUBCOMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        print(
            f"dfstack {name}: cannot import {module_name} ({error}); is the project installed with its extras?",
            file=sys.stderr,
        )
        return 2
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
