"""Dataset tools for episode stores.

    python -m data_collection.cli info STORE [EPISODE] [--json]
    python -m data_collection.cli validate STORE [--quick] [--json]
    python -m data_collection.cli repair STORE [--remove-partial] [--json]
    python -m data_collection.cli delete STORE (--last | EPISODE ...)
    python -m data_collection.cli view STORE [EPISODE ...] [--out DIR] [--format mp4|gif]
    python -m data_collection.cli create STORE [--image-codec zstd] [--policy-size 64x64 ...]
    python -m data_collection.cli import-rosbag STORE BAG ... (--mapping FILE | --topic TOPIC=STREAM[:CONVERTER] ...)
    python -m data_collection.cli export-lerobot STORE OUT --fps 10 [--embodiment ee_pose] [--stream ROLE=STREAM]
    python -m data_collection.cli import-lerobot DATASET STORE [--embodiment auto]

Exit status: 0 success, 1 the store is not valid (validate, repair), 2 an error (the
message on stderr names what was wrong).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .schema import IMAGE_CODECS, StoreError, StoreSettings


def _open(path: Path) -> Any:
    from .store import EpisodeStore

    return EpisodeStore.open(path)


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = text.lower().split("x")
        return int(h), int(w)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"size must look like 64x64 (height x width), got {text!r}") from error


def _episode_line(episode_id: str, meta: dict[str, Any]) -> str:
    streams = meta.get("streams", {})
    durations = [s["last_stamp"] - s["first_stamp"] for s in streams.values() if s.get("count")]
    frames = sum(s.get("count", 0) for s in streams.values() if s.get("kind") == "image")
    flags = [f for f, on in (("marked", meta.get("marked")), ("recovered", meta.get("recovered"))) if on]
    return (
        f"{episode_id}  {max(durations, default=0):7.2f} s  {frames:6d} frames  "
        f"success={meta.get('success')!s:5}  "
        f"task={meta.get('task', '')!r}" + (f"  [{', '.join(flags)}]" if flags else "")
    )


def cmd_info(args: argparse.Namespace) -> int:
    store = _open(args.store)
    if args.episode:
        meta = store.metadata(args.episode)
        if args.json:
            print(json.dumps(meta, indent=2))
            return 0
        print(_episode_line(normalize(args.episode), meta))
        for key in (
            "robot",
            "cameras",
            "initial_configuration",
            "software_version",
            "notes",
            "recovered",
            "complete",
        ):
            if key in meta:
                print(f"  {key}: {json.dumps(meta[key])}")
        print("  streams:")
        for name, stream in meta.get("streams", {}).items():
            rate = stream.get("measured_rate_hz")
            print(
                f"    {name:14s} {stream['kind']:6s} {'x'.join(map(str, stream['shape'])):>12s} "
                f"{stream['count']:8d} samples  {rate or 0:8.1f} Hz (nominal {stream['rate_hz']:g})"
            )
        for problem in meta.get("problems", []):
            print(f"  problem: {problem}")
        return 0
    ids = store.episode_ids()
    summary = {
        "path": str(store.path),
        "schema": store.attributes.get("schema"),
        "schema_version": store.attributes.get("schema_version"),
        "settings": store.attributes.get("settings"),
        "episodes": len(ids),
        "staged": store.staged_ids(),
    }
    if args.json:
        summary["episode_list"] = {e: store.metadata(e) for e in ids}
        print(json.dumps(summary, indent=2))
        return 0
    print(
        f"{store.path}: {summary['schema']} v{summary['schema_version']}, {len(ids)} episodes, "
        f"image codec {summary['settings'].get('image_codec')}, policy sizes "
        f"{summary['settings'].get('policy_image_sizes')}"
    )
    for episode_id in ids:
        print("  " + _episode_line(episode_id, store.metadata(episode_id)))
    if summary["staged"]:
        print(f"  interrupted (run repair): {', '.join(summary['staged'])}")
    return 0


def normalize(episode: str) -> str:
    from .schema import normalize_episode_id

    return normalize_episode_id(episode)


def cmd_validate(args: argparse.Namespace) -> int:
    store = _open(args.store)
    report = store.validate(checksums=not args.quick, progress=not args.json)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for warning in report.warnings:
            print(f"warning: {warning}")
        for error in report.errors:
            print(f"error: {error}")
        state = "valid" if report.ok else "NOT valid"
        print(
            f"{store.path}: {report.episodes_checked} episodes checked"
            f"{' (structure only, no checksums)' if args.quick else ''}: {state}"
        )
    return 0 if report.ok else 1


def cmd_repair(args: argparse.Namespace) -> int:
    store = _open(args.store)
    report = store.repair(recover=not args.remove_partial)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for action in report.actions:
            print(str(action))
        if not report.actions:
            print("nothing to repair")
        validation = report.validation
        if validation is not None:
            for error in validation.errors:
                print(f"still wrong (repair never modifies committed episodes): {error}")
            print(f"{store.path}: {'valid' if validation.ok else 'NOT valid'} after repair")
    return 0 if report.validation is None or report.validation.ok else 1


def cmd_delete(args: argparse.Namespace) -> int:
    store = _open(args.store)
    if args.last == bool(args.episodes):
        raise StoreError("give either --last or one or more episode ids to delete")
    targets = [store.delete_last()] if args.last else [store.delete(e) for e in args.episodes]
    for episode_id in targets:
        print(f"deleted {episode_id}")
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    from .view import plot_episode, render_video

    store = _open(args.store)
    ids = [normalize(e) for e in args.episodes] if args.episodes else store.episode_ids()
    if not ids:
        raise StoreError(f"{store.path} has no episodes to view")
    args.out.mkdir(parents=True, exist_ok=True)
    for episode_id in ids:
        episode = store.episode(episode_id)
        video = render_video(
            episode,
            args.out / f"{episode_id}.{args.format}",
            height=args.height,
            fps=args.fps,
            plots=not args.no_plots,
            progress=True,
        )
        plot = plot_episode(episode, args.out / f"{episode_id}_plot.png")
        print(f"{episode_id}: {video} {plot}")
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    from .store import EpisodeStore

    sizes = tuple(args.policy_size) if args.policy_size else StoreSettings().policy_image_sizes
    store = EpisodeStore.create(
        args.store,
        StoreSettings(image_codec=args.image_codec, policy_image_sizes=sizes, description=args.description),
    )
    print(f"created {store.path} (image codec {args.image_codec}, policy sizes {list(sizes)})")
    return 0


def _bag_mapping(args: argparse.Namespace) -> Any:
    """The mapping file (--mapping) with --topic entries added or replacing its own."""
    from .rosbag_import import BagMapping, TopicMapping, load_bag_mapping

    base = load_bag_mapping(args.mapping) if args.mapping else None
    given = {}
    for item in args.topic or []:
        topic, _, target = item.partition("=")
        stream, _, converter = target.partition(":")
        if not topic or not stream:
            raise StoreError(f"--topic must look like /some/topic=stream or /some/topic=stream:converter, got {item!r}")
        given[topic] = TopicMapping(topic, stream, converter or None)
    if base is None and not given:
        raise StoreError("give a mapping file (--mapping FILE) or at least one --topic TOPIC=STREAM")
    topics = [m for m in (base.topics if base else ()) if m.topic not in given] + list(given.values())
    mapping = base.with_overrides(topics=tuple(topics)) if base else BagMapping(tuple(topics))
    return mapping.with_overrides(stamps=args.stamps, clock_step_s=args.clock_step, task=args.task)


def cmd_import(args: argparse.Namespace) -> int:
    from .rosbag_import import DuplicateBagError, import_rosbag
    from .store import EpisodeStore

    mapping = _bag_mapping(args)
    store = EpisodeStore.open_or_create(args.store)
    imported, duplicates, failed = [], [], []
    for bag in args.bags:
        # Every bag is tried: one bad bag does not keep the others out, and the summary
        # says which ones were not imported and why.
        try:
            outcome = import_rosbag(bag, store, mapping, progress=not args.json, allow_duplicate=args.allow_duplicate)
        except DuplicateBagError as error:
            duplicates.append((bag, str(error)))
            print(f"skipped: {error}", file=sys.stderr)
            continue
        except (StoreError, ValueError, OSError) as error:
            failed.append((bag, str(error)))
            print(f"error: {error}", file=sys.stderr)
            continue
        imported.append(outcome)
        if not args.json:
            print(outcome.describe())
            for result in outcome.results:
                for problem in result.problems:
                    print(f"  {result.episode_id} problem: {problem}")
    marked = [o for o in imported if o.marked]
    summary = {
        "bags": len(args.bags),
        "imported": {str(o.bag): o.episode_ids for o in imported},
        "marked": [str(o.bag) for o in marked],
        "skipped_duplicates": {str(b): m for b, m in duplicates},
        "failed": {str(b): m for b, m in failed},
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        line = f"import-rosbag: {len(imported)} of {len(args.bags)} bag(s) imported into {store.path}"
        if duplicates:
            line += f"; {len(duplicates)} skipped (already imported): {', '.join(str(b) for b, _ in duplicates)}"
        if failed:
            line += f"; {len(failed)} NOT imported (errors above): {', '.join(str(b) for b, _ in failed)}"
        if marked:
            line += f"; {len(marked)} marked (see problems)"
        print(line)
    return 2 if failed else 1 if marked else 0


def cmd_export_lerobot(args: argparse.Namespace) -> int:
    from .lerobot_interchange import export_lerobot

    streams = {}
    for item in args.stream or []:
        role, _, name = item.partition("=")
        if not role or not name:
            raise StoreError(f"--stream must look like ROLE=STREAM (e.g. command_gripper=command_width), got {item!r}")
        streams[role] = name
    store = _open(args.store)
    report = export_lerobot(
        store,
        args.out,
        args.fps,
        embodiment_name=args.embodiment,
        streams=streams,
        cameras=args.camera,
        episode_ids=[normalize(e) for e in args.episodes] or None,
        robot_type=args.robot_type,
        crf=args.crf,
        progress=not args.json,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    print(
        f"exported {len(report.episodes)} episode(s), {report.frames} frames at {report.fps} fps, cameras "
        f"{report.cameras}, to {report.path} (LeRobot dataset v3.0)"
    )
    for line in report.lost:
        print(f"  not kept: {line}")
    for line in report.warnings:
        print(f"  warning: {line}")
    return 0


def cmd_import_lerobot(args: argparse.Namespace) -> int:
    from .lerobot_interchange import import_lerobot
    from .store import EpisodeStore

    embodiment_name = None if args.embodiment == "none" else args.embodiment
    if not (args.dataset / "meta" / "info.json").is_file():
        raise StoreError(f"{args.dataset}/meta/info.json is missing: not a LeRobot dataset (expected a v3.0 directory)")
    store = EpisodeStore.open_or_create(args.store)
    result = import_lerobot(args.dataset, store, embodiment_name, args.episodes or None, progress=not args.json)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(f"imported {len(result.episode_ids)} episode(s) from {args.dataset} into {store.path}")
    for feature, stream in result.streams.items():
        print(f"  {feature} -> {stream}")
    for line in result.lost:
        print(f"  not kept: {line}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data_collection.cli",
        description="Inspect, check, repair and view df-stack episode stores (zarr v3).",
        epilog=("Exit status: 0 ok, 1 store not valid, 2 error. Every command takes the store path first."),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = sub.add_parser("info", help="summary of the store, or details of one episode")
    info.add_argument("store", type=Path)
    info.add_argument("episode", nargs="?", help="episode id (ep_000003 or 3)")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(func=cmd_info)

    validate = sub.add_parser("validate", help="check every episode against its commit checksums")
    validate.add_argument("store", type=Path)
    validate.add_argument(
        "--quick", action="store_true", help="structure, timestamps and finite vector values; no checksums"
    )
    validate.add_argument("--json", action="store_true")
    validate.set_defaults(func=cmd_validate)

    repair = sub.add_parser(
        "repair",
        help="recover or remove an episode interrupted by a crash; finish interrupted deletions",
        description=(
            "Finish or undo what an interrupted recorder left. A partial episode with data is "
            "committed as 'recovered' (marked incomplete) unless --remove-partial; says what it "
            "did per episode. Committed episodes are never modified."
        ),
    )
    repair.add_argument("store", type=Path)
    repair.add_argument(
        "--remove-partial",
        action="store_true",
        help="remove partial episodes instead of recovering",
    )
    repair.add_argument("--json", action="store_true")
    repair.set_defaults(func=cmd_repair)

    delete = sub.add_parser("delete", help="delete episodes by id, or the last one (to re-record it)")
    delete.add_argument("store", type=Path)
    delete.add_argument("episodes", nargs="*", help="episode ids (ep_000003 or 3)")
    delete.add_argument("--last", action="store_true", help="delete the newest episode")
    delete.set_defaults(func=cmd_delete)

    view = sub.add_parser(
        "view",
        help="a video (cameras named, with frame times, over the stream plots) and a stream plot per episode",
    )
    view.add_argument("store", type=Path)
    view.add_argument("episodes", nargs="*", help="episode ids (default: all)")
    view.add_argument(
        "--out",
        type=Path,
        default=Path("episode_views"),
        help="output folder (default episode_views)",
    )
    view.add_argument("--format", choices=("mp4", "gif"), default="mp4")
    view.add_argument("--height", type=int, default=240, help="height of each camera panel in pixels")
    view.add_argument("--fps", type=float, default=None, help="video frame rate (default: the first camera's rate)")
    view.add_argument("--no-plots", action="store_true", help="cameras only, without the stream plots under them")
    view.set_defaults(func=cmd_view)

    create = sub.add_parser("create", help="create an empty store")
    create.add_argument("store", type=Path)
    create.add_argument("--image-codec", choices=IMAGE_CODECS, default="zstd")
    create.add_argument(
        "--policy-size",
        type=_size,
        action="append",
        help=("policy-resolution copy written per camera, e.g. 64x64 (repeatable; default 64x64, 48x48 and 32x32)"),
    )
    create.add_argument("--description", default="")
    create.set_defaults(func=cmd_create)

    importer = sub.add_parser(
        "import-rosbag",
        help="import rosbag2 recordings (mcap or sqlite3), one episode per bag (per timeline)",
        description=(
            "Import rosbag2 recordings through a mapping (--mapping FILE, format in docs/data_collection.md) "
            "and/or --topic entries. Every bag is tried; exit 0: all imported (or already in the store), "
            "1: some episode marked with problems, 2: some bag not imported (the message says why)."
        ),
    )
    importer.add_argument("store", type=Path, help="store (created if missing)")
    importer.add_argument("bags", type=Path, nargs="+", help="rosbag2 directories, or .mcap / .db3 files")
    importer.add_argument("--mapping", type=Path, help="YAML mapping: topics, training streams, stamps, task")
    importer.add_argument(
        "--topic",
        action="append",
        metavar="TOPIC=STREAM[:CONVERTER]",
        help=(
            "map a topic to a stream, optionally through a converter, e.g. "
            "/franka_gripper/joint_states=gripper:gripper_width (repeatable; adds to or replaces the mapping's)"
        ),
    )
    importer.add_argument("--task", default=None, help="task of the episodes (default: the mapping's)")
    importer.add_argument(
        "--stamps",
        choices=("header", "receive"),
        default=None,
        help="sample time: message header stamp (the mapping's default: header) or bag receive time",
    )
    importer.add_argument(
        "--clock-step",
        type=float,
        default=None,
        metavar="S",
        help="a stamp this far behind the newest one starts a new timeline (episode); default 1.0 s",
    )
    importer.add_argument(
        "--allow-duplicate", action="store_true", help="import a bag even if the store already holds it"
    )
    importer.add_argument("--json", action="store_true", help="print the summary as JSON")
    importer.set_defaults(func=cmd_import)

    export = sub.add_parser(
        "export-lerobot",
        help="write episodes as a LeRobot dataset (v3.0): state, action, cameras as video, per frame at --fps",
        description=(
            "Export to a LeRobot v3.0 dataset: per frame at --fps, observation.state = the embodiment's "
            "proprioception, action = its action (what the trainer computes), each camera a video feature. "
            "Says what the format cannot keep (per-stream timestamps become frame-indexed, ...)."
        ),
    )
    export.add_argument("store", type=Path)
    export.add_argument("out", type=Path, help="new directory for the dataset")
    export.add_argument("episodes", nargs="*", help="episode ids (default: all)")
    export.add_argument("--fps", type=int, required=True, help="frames per second (a whole number, as LeRobot's)")
    export.add_argument("--embodiment", choices=("ee_pose", "joint_position"), default="ee_pose")
    export.add_argument(
        "--stream",
        action="append",
        metavar="ROLE=STREAM",
        help="training stream names (state, command, gripper, command_gripper), as task.streams (repeatable)",
    )
    export.add_argument("--camera", action="append", help="cameras to export (default: every camera)")
    export.add_argument("--robot-type", default=None, help="info.json robot_type (e.g. fr3)")
    export.add_argument("--crf", type=int, default=18, help="H.264 quality: 0 lossless .. 51 worst (default 18)")
    export.add_argument("--json", action="store_true")
    export.set_defaults(func=cmd_export_lerobot)

    lerobot_import = sub.add_parser(
        "import-lerobot",
        help="import a LeRobot dataset (v3.0 directory) as episodes, one per LeRobot episode",
    )
    lerobot_import.add_argument("dataset", type=Path, help="LeRobot dataset directory (meta/, data/, videos/)")
    lerobot_import.add_argument("store", type=Path, help="store (created if missing)")
    lerobot_import.add_argument(
        "--embodiment",
        choices=("auto", "ee_pose", "joint_position", "none"),
        default="auto",
        help=(
            "auto: state/action become an embodiment's recorded streams when their names match it; none: each "
            "feature its own stream"
        ),
    )
    lerobot_import.add_argument("--episodes", type=int, nargs="*", help="LeRobot episode indices (default: all)")
    lerobot_import.add_argument("--json", action="store_true")
    lerobot_import.set_defaults(func=cmd_import_lerobot)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (StoreError, ValueError, KeyError, FileNotFoundError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
