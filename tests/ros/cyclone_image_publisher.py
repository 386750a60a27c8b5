"""Publish sensor_msgs/Image samples from Eclipse Cyclone DDS (a second DDS, as a camera
driver on another middleware would), run as a script by the ROS tests:

    python cyclone_image_publisher.py TOPIC HEIGHT WIDTH COUNT

The ROS 2 message is declared here as its DDS type (sensor_msgs::msg::dds_::Image_ on
rt/<topic>); each written sample is announced on stdout as "wrote <i>", and the writer
stays until its stdin is closed. Cyclone is set
to loopback unicast discovery (CYCLONE_LOOPBACK), as in the tests' network namespace.
"""

import sys
import time
from dataclasses import dataclass

CYCLONE_LOOPBACK = (
    "<CycloneDDS><Domain><General><Interfaces><NetworkInterface name='lo'/></Interfaces>"
    "<AllowMulticast>false</AllowMulticast></General><Discovery><Peers><Peer address='127.0.0.1'/></Peers>"
    "<ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>50</MaxAutoParticipantIndex>"
    "</Discovery></Domain></CycloneDDS>"
)

if __name__ == "__main__":  # cyclonedds is needed only by the publishing process
    from cyclonedds.core import Policy, Qos
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.idl import IdlStruct
    from cyclonedds.idl.types import int32, sequence, uint8, uint32
    from cyclonedds.pub import DataWriter
    from cyclonedds.topic import Topic

    # The annotations are resolved from these module globals, so no __future__ import here.
    @dataclass
    class Time(IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
        sec: int32
        nanosec: uint32

    @dataclass
    class Header(IdlStruct, typename="std_msgs::msg::dds_::Header_"):
        stamp: Time
        frame_id: str

    @dataclass
    class Image(IdlStruct, typename="sensor_msgs::msg::dds_::Image_"):
        header: Header
        height: uint32
        width: uint32
        encoding: str
        is_bigendian: uint8
        step: uint32
        data: sequence[uint8]

    topic_name, height, width, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    participant = DomainParticipant(0)
    topic = Topic(participant, f"rt/{topic_name.lstrip('/')}", Image)
    # Reliable, as RealSense drivers publish (and the policy node subscribes).
    qos = Qos(Policy.Reliability.Reliable(1_000_000_000), Policy.History.KeepLast(2))
    writer = DataWriter(participant, topic, qos=qos)
    data = bytes(height * width * 3)
    time.sleep(2.0)  # discovery
    for index in range(count):
        now = time.time()
        stamp = Time(int(now), int((now % 1.0) * 1e9))
        writer.write(Image(Header(stamp, "oversized"), height, width, "rgb8", 0, width * 3, data))
        print(f"wrote {index}", flush=True)
        time.sleep(0.5)
    # Stay until stdin closes: a reliable writer that exits drops what is still being sent.
    sys.stdin.read()
