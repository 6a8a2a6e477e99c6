"""ROS-free message code that the node, the bag tools and the tools share.

- ``decode``: image messages to pixels; ``encode``: pixels to image messages;
  ``cdr``: stamp and size read from serialized messages;
- ``params``: the node's parameter table; ``camera_info``: camera_info checks and scaling;
- ``diagnostics``: the statuses the node publishes on /diagnostics.

Nothing here imports rclpy at import time: messages are duck-typed or their classes are passed in.
"""
