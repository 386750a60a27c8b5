"""One closed-loop episode, driven through the nodes' services:

set the sim node's `seed` and `fault_plan` parameters, call `/sim_robot/reset_episode`
and `/policy_node/reset`, enable the policy (`/policy_node/enable`), poll
`/sim_robot/report_success` every `poll_s` until success or the time limit (sim time),
then disable the policy; score it and sum up what the probe saw meanwhile.

rclpy (service types) is imported where a service is called.
"""

from __future__ import annotations

import bisect
import json
import time
from typing import Any

from evaluation.results import CameraFrame, EpisodeOutcome, EpisodeTrace, TickRecord
from evaluation.ros.probe import COMMAND_COUNTERS, PolicyHealth, PredictedFrame, Probe
from evaluation.ros.processes import POLICY_NODE, SIM_NODE, ClosedLoopError, NodeProcesses
from evaluation.ros.settings import ClosedLoopSettings
from sim.faults import FaultPlan


class NodeServices:
    """Clients of the nodes' services, on the probe's node."""

    def __init__(self, node: Any, processes: NodeProcesses) -> None:
        from rcl_interfaces.srv import SetParameters
        from std_srvs.srv import SetBool, Trigger

        self.processes = processes
        self.clients = {
            "reset_episode": node.create_client(Trigger, f"/{SIM_NODE}/reset_episode"),
            "report_success": node.create_client(Trigger, f"/{SIM_NODE}/report_success"),
            "enable": node.create_client(SetBool, f"/{POLICY_NODE}/enable"),
            "reset": node.create_client(Trigger, f"/{POLICY_NODE}/reset"),
            "sim_parameters": node.create_client(SetParameters, f"/{SIM_NODE}/set_parameters"),
        }

    def call(self, name: str, request: Any, timeout: float = 15.0) -> Any:
        future = self.clients[name].call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                self.processes.check_alive()
                raise ClosedLoopError(f"no answer from {self.clients[name].srv_name} within {timeout} s")
            time.sleep(0.005)
        if future.exception() is not None:
            raise ClosedLoopError(f"{self.clients[name].srv_name} failed: {future.exception()!r}")
        return future.result()

    def set_sim_parameters(self, **values: Any) -> None:
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        request = SetParameters.Request()
        request.parameters = [Parameter(name, value=value).to_parameter_msg() for name, value in values.items()]
        results = self.call("sim_parameters", request).results
        refused = [f"{name}: {r.reason}" for name, r in zip(values, results, strict=True) if not r.successful]
        if refused:
            raise ClosedLoopError(f"sim_robot_node refused parameters: {refused}")

    def enable(self, enabled: bool) -> None:
        from std_srvs.srv import SetBool

        if not self.call("enable", SetBool.Request(data=enabled)).success:
            raise ClosedLoopError(f"policy_node refused ~/enable {enabled}")

    def reset_sim(self) -> dict[str, Any]:
        """A new simulator episode; returns what the sim node says about it."""
        from std_srvs.srv import Trigger

        reset = self.call("reset_episode", Trigger.Request())
        if not reset.success:
            raise ClosedLoopError(f"sim_robot_node could not reset the episode: {reset.message}")
        return json.loads(reset.message)

    def reset_policy(self) -> None:
        from std_srvs.srv import Trigger

        if not self.call("reset", Trigger.Request()).success:
            raise ClosedLoopError("policy_node refused ~/reset")

    def report(self) -> dict[str, Any]:
        from std_srvs.srv import Trigger

        return json.loads(self.call("report_success", Trigger.Request()).message)


class EpisodeDriver:
    """Runs episodes one after the other through the nodes, `probe` watching."""

    def __init__(
        self,
        services: NodeServices,
        probe: Probe,
        settings: ClosedLoopSettings,
        max_level: int,
    ) -> None:
        self.services = services
        self.probe = probe
        self.settings = settings
        self.K = max_level
        self.cameras = probe.cameras

    def run(self, condition: str, index: int, seed: int, plan: FaultPlan | None, record: bool) -> EpisodeOutcome:
        """Episode `index` of `condition` with sim seed `seed` and fault `plan`; its
        trace (camera and predicted frames, noise levels per tick) is kept when `record`."""
        s, services = self.settings, self.services
        services.enable(False)
        services.set_sim_parameters(seed=int(seed), fault_plan=plan.to_json() if plan is not None else "")
        episode_info = services.reset_sim()
        t0 = time.monotonic()
        services.reset_policy()
        before = self.probe.begin_episode(record)
        enabled_at = time.monotonic()
        services.enable(True)

        # Only a guard against a hung simulator: episodes end on sim time, and a loaded
        # machine may run the simulation several times slower than real time.
        wall_limit = s.max_sim_s / s.real_time_factor * 10.0 + 60.0
        ended_by, report, first_success = "time_limit", {}, None
        next_poll = time.monotonic() + s.poll_s
        while True:
            time.sleep(max(0.0, next_poll - time.monotonic()))
            next_poll += s.poll_s
            services.processes.check_alive()
            report = services.report()
            if report.get("success") and first_success is None:
                first_success = float(report["time_s"])
                if s.stop_at_success:
                    ended_by = "success"
                    break
            if float(report.get("time_s", 0.0)) >= s.max_sim_s - 1e-6:
                break
            if time.monotonic() - t0 > wall_limit:
                ended_by = "wall_limit"
                break
        wall_s = time.monotonic() - t0
        services.enable(False)
        disabled_at = time.monotonic()
        time.sleep(0.2)  # let in-flight commands and the last diagnostics arrive
        seen = self.probe.end_episode()
        health = [(t, h) for t, h in seen.health if enabled_at <= t <= disabled_at + 0.15]

        # Scored at the first success, or (stop_at_success False) by the final state.
        success = bool(report.get("success")) if not s.stop_at_success else first_success is not None
        time_to_success = first_success if success else None
        trace = None
        if record:
            trace = EpisodeTrace(
                condition=condition,
                seed=int(seed),
                success=success,
                time_to_success_s=time_to_success,
                max_level=int(self.K),
                cameras=self.cameras,
                frames={c: [CameraFrame(t - t0, image) for t, image in v] for c, v in seen.frames.items()},
                ticks=tick_records(seen.predicted, health, self.cameras, t0),
            )
        return EpisodeOutcome(
            condition=condition,
            index=index,
            seed=int(seed),
            success=success,
            time_to_success_s=time_to_success,
            sim_time_s=float(report.get("time_s", 0.0)),
            wall_s=round(wall_s, 2),
            ended_by=ended_by,
            commands=seen.commands,
            unsafe_commands=seen.unsafe_commands,
            gripper_commands=seen.gripper_commands,
            unsafe_gripper_commands=seen.unsafe_gripper_commands,
            unsafe_examples=list(seen.problems),
            fault_plan=plan.to_dict() if plan is not None else None,
            episode_info=episode_info,
            report=report,
            trace=trace,
            **noise_counts(health, before, self.cameras, self.K),
            **counter_changes(health, before),
        )


def _ticks(health: list[tuple[float, PolicyHealth]], before: PolicyHealth | None) -> list[PolicyHealth]:
    """The health of each tick of the episode: the first report of tick n gives its
    levels; a tick from before the episode is left out."""
    per_tick: dict[int, PolicyHealth] = {}
    for _, reported in health:
        per_tick.setdefault(reported.ticks, reported)
    if before is not None:
        per_tick.pop(before.ticks, None)
    return list(per_tick.values())


def noise_counts(
    health: list[tuple[float, PolicyHealth]], before: PolicyHealth | None, cameras: tuple[str, ...], max_level: int
) -> dict[str, Any]:
    """EpisodeOutcome's tick counts: ticks, those with some camera at k > 0, and per
    camera those at k > 0, those at k = K and the highest k."""
    ticks = _ticks(health, before)
    noisy = {c: 0 for c in cameras}
    unusable = {c: 0 for c in cameras}
    highest = {c: 0 for c in cameras}
    any_noise = 0
    for reported in ticks:
        levels = reported.levels
        any_noise += any(levels.get(c, 0) > 0 for c in cameras)
        for c in cameras:
            level = levels.get(c, 0)
            noisy[c] += level > 0
            unusable[c] += max_level > 0 and level >= max_level
            highest[c] = max(highest[c], level)
    return {
        "ticks": len(ticks),
        "ticks_with_noise": any_noise,
        "ticks_with_noise_per_camera": noisy,
        "ticks_unusable_per_camera": unusable,
        "max_level_per_camera": highest,
    }


def counter_changes(health: list[tuple[float, PolicyHealth]], before: PolicyHealth | None) -> dict[str, int]:
    """How much each of the commander's counters grew over the episode."""
    last = health[-1][1] if health else None
    first = before or (health[0][1] if health else None)
    return {name: (last.counters[name] - first.counters[name]) if last and first else 0 for name in COMMAND_COUNTERS}


def tick_records(
    predicted: list[PredictedFrame],
    health: list[tuple[float, PolicyHealth]],
    cameras: tuple[str, ...],
    t0: float,
) -> list[TickRecord]:
    """One TickRecord per policy tick: its cameras' predicted frames (one tick's share its
    observation stamp; a camera seen twice starts the next tick), with the noise levels
    of the first diagnostics that came after them (a tick lasts 0.4 s, diagnostics come
    every 0.1 s)."""
    groups: list[list[PredictedFrame]] = []
    for frame in sorted(predicted, key=lambda f: f.arrival):
        group = groups[-1] if groups else None
        if group is None or group[0].stamp != frame.stamp or any(f.camera == frame.camera for f in group):
            groups.append([frame])
        else:
            group.append(frame)
    times = [t for t, _ in health]
    ticks = []
    for group in groups:
        arrival = group[0].arrival
        j = bisect.bisect_left(times, arrival)
        reported = health[j][1] if j < len(health) else (health[-1][1] if health else None)
        ticks.append(
            TickRecord(
                time_s=arrival - t0,
                levels={c: int(reported.levels.get(c, -1)) if reported else -1 for c in cameras},
                issues={c: reported.issues.get(c, "") if reported else "" for c in cameras},
                predicted={f.camera: f.image for f in group},
            )
        )
    return ticks
