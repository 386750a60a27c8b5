"""A robot description's topic names as a node in a namespace resolves them."""

from __future__ import annotations

import pytest

from robots.description import absolute_topic, load_robot_description


def test_relative_names_go_under_the_namespace_absolute_ones_stay() -> None:
    topic = load_robot_description("fr3_sim").command.topic
    assert not topic.startswith("/")  # relative: a namespace moves it
    assert absolute_topic(topic) == absolute_topic(topic, "/") == f"/{topic}"
    assert absolute_topic(topic, "robot1") == absolute_topic(topic, "/robot1/") == f"/robot1/{topic}"
    assert absolute_topic("/camera/front/color/image_raw", "robot1") == "/camera/front/color/image_raw"
    for bad in ("", "~/private"):
        with pytest.raises(ValueError, match="plain name"):
            absolute_topic(bad)
