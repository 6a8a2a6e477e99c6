"""Benchmarks: system-level metrics per model and backend (``system``), the CPU speed-up study
(``cpu``), and their reports (Markdown, JSON, PNG). No ROS needed."""
