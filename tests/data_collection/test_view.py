"""The dataset video: the cameras (named, with frame times) over the stream plots, in
episode time."""

from __future__ import annotations

import numpy as np
import pytest

from data_collection.view import render_video

from .helpers import IMAGE_SHAPE, make_store, record_episode


@pytest.fixture(scope="module")
def episode(tmp_path_factory):
    store = make_store(tmp_path_factory.mktemp("view") / "s.zarr")
    record_episode(store, ticks=60)  # cameras every 0.03 s, pixel value = tick
    return store.episode(0)


def _decode(path):
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [(float(f.pts * stream.time_base), f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
    return frames


def test_the_video_runs_in_episode_time_and_shows_each_cameras_newest_frame(episode, tmp_path):
    path = render_video(episode, tmp_path / "ep.mp4", fps=20, plots=False)
    frames = _decode(path)
    first = min(float(episode.stamps(s)[0]) for s in episode.stream_names)
    last = max(float(episode.stamps(s)[-1]) for s in episode.stream_names)
    assert len(frames) == int(np.floor((last - first) * 20 + 1e-6)) + 1
    assert frames[3][0] == pytest.approx(3 / 20)
    stamps = episode.stamps("front")
    height, width = IMAGE_SHAPE
    for t, image in frames[2::5]:
        j = int(np.searchsorted(stamps, first + t + 1e-9, side="right")) - 1
        expected = int(np.asarray(episode.frames("front")[j])[0, 0, 0])
        panel = image[40 : 40 + height - 4, 4 : width - 4].astype(int)  # below the title and the label bar
        assert abs(panel.mean() - expected) < 6, (t, j)


def test_the_stream_plots_sit_under_the_cameras_and_a_gif_works(episode, tmp_path):
    with_plots = _decode(render_video(episode, tmp_path / "a.mp4"))
    without = _decode(render_video(episode, tmp_path / "b.mp4", plots=False))
    assert with_plots[0][1].shape[0] > without[0][1].shape[0] + 5 * 50  # five vector streams, one plot each
    gif = render_video(episode, tmp_path / "c.gif")
    assert gif.read_bytes()[:3] == b"GIF"
    with pytest.raises(ValueError, match=r"must be \.mp4 or \.gif"):
        render_video(episode, tmp_path / "d.avi")
