"""Draw the picture in docs/: both camera views at key moments of one expert episode,
and a second one with every camera fault kind.

    python -m sim.picture --out docs/swap_fruit_cameras.png --faults-out docs/swap_fruit_faults.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sim.env import EnvConfig, Observation
from sim.faults import CAMERA_FAULTS, FaultEvent, FaultPlan
from sim.tasks.swap_fruit import ScriptedExpert, SwapFruitEnv


def _expert_snapshots(seed: int, image_size: int) -> tuple[list[tuple[str, Observation]], str]:
    """Observations at the start, mid-grasp, after each move and at the end."""
    env = SwapFruitEnv(EnvConfig(image_size=image_size))
    observation = env.reset(seed)
    expert = ScriptedExpert(env)
    expert.reset()
    info = env.info
    snapshots = [("start", observation)]
    wanted = {f"lift_{info.first_fruit}": "lifting"}
    moves = 0
    previous = ""
    while not expert.done:
        action = expert.act()
        phase = expert.phase
        observation = env.step(action)
        if phase != previous and phase in wanted:
            snapshots.append((wanted.pop(phase), observation))
        if phase.startswith("withdraw") and not previous.startswith("withdraw"):
            moves += 1
            if moves in (1, 2):
                snapshots.append((f"after move {moves}", observation))
        previous = phase
    snapshots.append(("done" + (" (success)" if env.success() else ""), observation))
    env.close()
    title = (
        f"seed {seed}: apple in slot {info.fruit_slots['apple']}, orange in slot "
        f"{info.fruit_slots['orange']}, {info.first_fruit} first via slot {info.empty_slot}"
    )
    return snapshots, title


def draw_cameras(path: Path, seed: int, image_size: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    snapshots, title = _expert_snapshots(seed, image_size)
    fig, axes = plt.subplots(2, len(snapshots), figsize=(2.1 * len(snapshots), 4.6))
    for column, (label, observation) in enumerate(snapshots):
        for row, camera in enumerate(("front", "wrist")):
            ax = axes[row, column]
            ax.imshow(observation.images[camera], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"{label}\nt = {observation.time:.1f} s", fontsize=9)
            if column == 0:
                ax.set_ylabel(f"{camera} ({image_size} px)", fontsize=9)
    fig.suptitle(f"swap fruit, simulated FR3 — {title}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_faults(path: Path, seed: int, image_size: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [*CAMERA_FAULTS, "distractor"]
    at = 1.0  # s: the arm is moving, so frozen and delayed frames differ from the live one
    events = []
    for i, kind in enumerate(kinds):
        camera = None if kind == "distractor" else "front"
        start = at - (0.6 if kind in ("frozen", "distractor") else 0.0)
        events.append(FaultEvent(kind, start, at + 1.0, camera=camera, seed=i + 1))
    frames = {}
    for kind, event in zip(kinds, events, strict=True):
        env = SwapFruitEnv(EnvConfig(image_size=image_size))
        observation = env.reset(seed, fault_plan=FaultPlan((event,)))
        expert = ScriptedExpert(env)
        expert.reset()
        while observation.time < at - 1e-9:
            observation = env.step(expert.act())
        frames[kind] = observation.images["front"]
        if "clean" not in frames:
            clean_env = SwapFruitEnv(EnvConfig(image_size=image_size))
            clean = clean_env.reset(seed)
            clean_expert = ScriptedExpert(clean_env)
            clean_expert.reset()
            while clean.time < at - 1e-9:
                clean = clean_env.step(clean_expert.act())
            frames["clean"] = clean.images["front"]
            clean_env.close()
        env.close()
    order = ["clean", *kinds]
    fig, axes = plt.subplots(1, len(order), figsize=(1.6 * len(order), 2.2))
    for ax, kind in zip(axes, order, strict=True):
        image = frames[kind]
        if image is None:
            ax.text(0.5, 0.5, "no frame", ha="center", va="center", fontsize=8)
        else:
            ax.imshow(image, interpolation="nearest")
        ax.set_title(kind, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"fault injection on the front camera at t = {at:.1f} s (seed {seed})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.picture", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/swap_fruit_cameras.png"))
    parser.add_argument("--faults-out", type=Path, default=Path("docs/swap_fruit_faults.png"))
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=96)
    args = parser.parse_args(argv)
    draw_cameras(args.out, args.seed, args.image_size)
    print(f"wrote {args.out}")
    if args.faults_out:
        draw_faults(args.faults_out, args.seed, args.image_size)
        print(f"wrote {args.faults_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
