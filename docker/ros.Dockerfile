# df-stack ROS 2 runtime image: ROS 2 Jazzy (Ubuntu 24.04), the df-stack core with CPU
# torch, and ros2_ws built, so the entry point can run the swap-fruit launch file.
#
#   docker build -f docker/ros.Dockerfile -t df-stack-ros .
#   docker run --rm -it --network host -v /data/ckpt:/ckpt df-stack-ros \
#       use_sim:=true checkpoint:=/ckpt/swap_fruit
#
# Arguments after the image name go to `ros2 launch df_policy swap_fruit.launch.py`; to run
# something else: docker run ... --entrypoint bash df-stack-ros.
# On the robot computer, the same image needs franka_ros2 (franka_bringup, franka_msgs,
# the Cartesian impedance controller): build FROM this image and add that workspace, or
# mount it and source it before the launch (see docs/policy_node.md).
FROM ros:jazzy-ros-base

ARG DEBIAN_FRONTEND=noninteractive
# Message packages the nodes use, OpenCV for compressed images, Mesa EGL for the
# simulator's offscreen cameras, iproute2 for the test network namespace.
RUN apt-get update && apt-get install -y --no-install-recommends \
        python3-pip python3-venv python3-opencv \
        ros-jazzy-diagnostic-msgs ros-jazzy-trajectory-msgs ros-jazzy-std-srvs \
        ros-jazzy-launch-ros ros-jazzy-realsense2-camera \
        libegl1 libegl-mesa0 libgl1-mesa-dri iproute2 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/df-stack
# The venv sees the system's rclpy and messages; torch is the CPU build.
RUN python3 -m venv --system-site-packages /opt/df-stack/venv
ENV PATH=/opt/df-stack/venv/bin:$PATH \
    MUJOCO_GL=egl \
    PYTHONUNBUFFERED=1
COPY pyproject.toml constraints.txt README.md ./
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu -c constraints.txt torch \
    && pip install --no-cache-dir colcon-common-extensions

# The whole repository: ros2_ws/src/df_policy/launch links to the top-level launch/.
COPY . .
RUN pip install --no-cache-dir -c constraints.txt '.[sim]'

# colcon from the venv, so the installed node scripts run with the venv's Python (torch).
RUN . /opt/ros/jazzy/setup.sh \
    && cd ros2_ws \
    && python -m colcon build --event-handlers console_direct- \
    && rm -rf build log

RUN printf '%s\n' '#!/bin/bash' 'set -e' \
        'source /opt/ros/jazzy/setup.bash' \
        'source /opt/df-stack/ros2_ws/install/setup.bash' \
        'exec ros2 launch df_policy swap_fruit.launch.py "$@"' > /entrypoint.sh \
    && chmod +x /entrypoint.sh
ENTRYPOINT ["/entrypoint.sh"]
CMD ["use_sim:=true"]
