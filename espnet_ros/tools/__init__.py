"""Programs around the node, for users and developers: they start it, feed it and read it back.

- ``demo``: a camera source, the node and a viewer in one command;
- ``camera_source``: publishes frames from an image folder, a video or a bag;
- ``bench_node``, ``bench_cameras``: the node measured across processes;
- ``bag_replay``: a bag played into the live node, scored against its ground truth;
- ``node_process``: the node in its own process (directly, or under ``ros2 launch``);
- ``diagnostics_reader``: the node's /diagnostics read back.

They may use ``bag/`` and ``bench/``; nothing below them imports them.
"""
