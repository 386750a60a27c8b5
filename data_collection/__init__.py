"""df-stack: data_collection — the crash-proof zarr episode store, the recorder core, the
training read path, rosbag2 import, LeRobot interchange and the dataset tools
(`python -m data_collection.cli`).

Names are imported lazily so that `import data_collection.schema` (numpy only; the
policy node resizes live frames with it) never pulls in zarr, which needs Python 3.11.

Main entry points:
    EpisodeStore            data_collection.store        create/open, list, delete, validate, repair
    Recorder                data_collection.recorder     add(), start/stop/discard/resume
    TeleopIntegrator        data_collection.teleop       twist -> clamped target pose
    align_episode,          data_collection.reader       episodes on the policy's token grid
    TokenWindowDataset
    FeatureMapping          data_collection.mapping      streams -> proprio / action vectors
    import_rosbag,          data_collection.rosbag_import
    load_bag_mapping
    export_lerobot,         data_collection.lerobot_interchange   LeRobot dataset v3 out and in
    import_lerobot
    render_video            data_collection.view          cameras, frame times and stream plots as a video
    fr3_stream_specs,       data_collection.schema       stream names of the (simulated) FR3
    StreamSpec, StoreSettings
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "EpisodeStore": "store",
    "Episode": "store",
    "Recorder": "recorder",
    "RecorderConfig": "recorder",
    "CommitResult": "recorder",
    "TeleopIntegrator": "teleop",
    "TeleopLimits": "teleop",
    "align_episode": "reader",
    "AlignedEpisode": "reader",
    "TokenWindowDataset": "reader",
    "FeatureMapping": "mapping",
    "import_rosbag": "rosbag_import",
    "TopicMapping": "rosbag_import",
    "BagMapping": "rosbag_import",
    "load_bag_mapping": "rosbag_import",
    "export_lerobot": "lerobot_interchange",
    "import_lerobot": "lerobot_interchange",
    "render_video": "view",
    "fr3_stream_specs": "schema",
    "StreamSpec": "schema",
    "StoreSettings": "schema",
    "StoreError": "schema",
    "SchemaMismatchError": "schema",
    "EpisodeNotFoundError": "schema",
    "StoreLockedError": "schema",
    "DiskFullError": "schema",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'data_collection' has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)
