"""The lists conftest.py marks tests by name real files and tests (a stale name marks nothing)."""
import ast
from pathlib import Path

import conftest

HERE = Path(__file__).resolve().parent


def _tests_of(file_name):
    tree = ast.parse((HERE / file_name).read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_listed_modules_and_tests_exist():
    for name in conftest.ROS_MODULES:
        assert (HERE / name).is_file(), name
    for test_id in conftest.ROS_TESTS | conftest.SLOW_TESTS:
        file_name, _, test = test_id.partition("::")
        assert test in _tests_of(file_name), test_id


def test_a_test_is_marked_ros_or_slow_never_both():
    assert not conftest.ROS_TESTS & conftest.SLOW_TESTS
    assert not {t for t in conftest.SLOW_TESTS if t.partition("::")[0] in conftest.ROS_MODULES}
