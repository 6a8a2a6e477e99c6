"""package.xml declares what the code imports, as rosdep reads it.

Every import (and ``importorskip`` / ``import_module`` of a literal name, and every ``ros2
VERB`` command line) in espnet_ros/, launch/, scripts/segment_node and test/ is classified
here: standard library, this project, a ROS package, a Python module with a rosdep key, or an
optional pip extra. A ROS package or rosdep key the run-time code uses must be an
``exec_depend`` (or ``depend``); one only the tests use, a ``test_depend``; every declared one
must be used; every key must be one rosdep knows.
"""
import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNTIME = [REPO / "espnet_ros", REPO / "launch", REPO / "scripts" / "segment_node"]
TESTS = [REPO / "test"]

# ROS packages released in Humble, Jazzy and Kilted (each name read from
# rosdistro's {humble,jazzy,kilted}/distribution.yaml, github.com/ros/rosdistro at 8468e88,
# 2026-08-22). rosdep resolves them to ros-$ROS_DISTRO-<name with - for _>.
ROS_PACKAGES = {
    "ament_cmake", "ament_cmake_python", "ament_cmake_pytest", "ament_index_python",
    "builtin_interfaces", "cv_bridge", "diagnostic_msgs", "diagnostic_updater",
    "image_geometry", "launch", "launch_ros", "launch_testing", "launch_testing_ros",
    "lifecycle_msgs", "rcl_interfaces", "rclpy", "ros2cli", "ros2interface", "ros2launch",
    "ros2lifecycle", "ros2node", "ros2param", "ros2pkg", "ros2run", "ros2topic",
    "rosgraph_msgs", "rosidl_default_generators", "rosidl_default_runtime", "rviz2",
    "sensor_msgs", "std_msgs", "vision_msgs",
}
# Python modules and their rosdep keys (rosdistro's rosdep/python.yaml at the same commit;
# each key there resolves on Debian and Ubuntu; python3-torch has no entry for Ubuntu focal
# or bionic, nor for Jetson's L4T, where JetPack's torch wheel is used instead: README).
ROSDEP_PYTHON = {
    "numpy": "python3-numpy", "cv2": "python3-opencv", "yaml": "python3-yaml",
    "tqdm": "python3-tqdm", "PIL": "python3-pil", "torch": "python3-torch",
    "pytest": "python3-pytest",
}
# Optional features, installed with pip extras (setup.py) and imported only where used, each
# with a fallback or a clear error: not in package.xml on purpose.
PIP_EXTRAS = {
    "onnx", "onnxruntime", "openvino", "nncf", "matplotlib", "cityscapesscripts", "rosbags",
    "psutil", "pynvml", "tensorrt", "torch2trt", "pkg_resources",
}
# Declared packages used without a Python import: (file, text that uses them).
USED_WITHOUT_IMPORT = {
    "ament_cmake": ("CMakeLists.txt", "find_package(ament_cmake REQUIRED)"),
    "ament_cmake_python": ("CMakeLists.txt", "find_package(ament_cmake_python REQUIRED)"),
    "rosidl_default_generators": ("CMakeLists.txt", "rosidl_generate_interfaces("),
    "rosidl_default_runtime": ("CMakeLists.txt", "ament_export_dependencies(rosidl_default_runtime)"),
    "ament_cmake_pytest": ("CMakeLists.txt", "ament_add_pytest_test("),
    "std_msgs": ("msg/SegmentationInfo.msg", "std_msgs/Header"),
}
PROJECT = {"espnet_ros"} | {p.stem for p in (REPO / "test").glob("*.py")}


def _files(roots):
    for root in roots:
        yield from ([root] if root.is_file() else sorted(root.rglob("*.py")))


def _ros2_verb(node):
    """'ros2X' for ["ros2", "X", ...], the tests' ros2(env, "X", ...) helper and a command
    line typed as a string, f("ros2 X ...")."""
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
            and isinstance(node.args[0].value, str):
        typed = re.match(r"ros2 ([a-z]+)\b", node.args[0].value)
        if typed:
            return "ros2" + typed.group(1)
    if isinstance(node, (ast.List, ast.Tuple)) and len(node.elts) >= 2:
        first, verb = node.elts[:2]
    elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ros2" and \
            len(node.args) >= 2:
        first, verb = ast.Constant("ros2"), node.args[1]
    else:
        return None
    if all(isinstance(n, ast.Constant) and isinstance(n.value, str) for n in (first, verb)) \
            and first.value == "ros2":
        return "ros2" + verb.value
    return None


def used_modules(roots):
    """{top-level module or ros2 verb package: first file using it}."""
    used = {}
    for path in _files(roots):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) in (
                    "importorskip", "import_module", "find_spec") and node.args and \
                    isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
            verb = _ros2_verb(node)
            if verb:
                names.append(verb)
            for name in names:
                top = name.split(".")[0]
                if top and top not in sys.stdlib_module_names and top not in PROJECT:
                    used.setdefault(top, path.relative_to(REPO))
    return used


def declared():
    """{tag: set of names} from package.xml."""
    root = ET.parse(REPO / "package.xml").getroot()
    tags = {}
    for element in root:
        if element.tag.endswith("depend"):
            tags.setdefault(element.tag, set()).add(element.text.strip())
    return tags


def _keys(modules):
    keys = {}
    for module, where in modules.items():
        key = module if module in ROS_PACKAGES else ROSDEP_PYTHON.get(module)
        if key:
            keys.setdefault(key, where)
    return keys


def test_every_import_is_classified():
    used = {**used_modules(TESTS), **used_modules(RUNTIME)}
    unknown = {m: str(w) for m, w in used.items()
               if m not in ROS_PACKAGES and m not in ROSDEP_PYTHON and m not in PIP_EXTRAS}
    assert not unknown, "classify these imports in test/test_package_deps.py: %s" % unknown


def test_runtime_imports_are_exec_depends():
    tags = declared()
    run = tags.get("depend", set()) | tags.get("exec_depend", set())
    missing = {k: str(w) for k, w in _keys(used_modules(RUNTIME)).items() if k not in run}
    assert not missing, "imported at run time but not an exec_depend: %s" % missing


def test_test_imports_are_declared():
    tags = declared()
    known = tags.get("depend", set()) | tags.get("exec_depend", set()) | tags.get("test_depend", set())
    missing = {k: str(w) for k, w in _keys(used_modules(TESTS)).items() if k not in known}
    assert not missing, "used by the tests but not a test_depend: %s" % missing


def _used_otherwise(name):
    if name not in USED_WITHOUT_IMPORT:
        return False
    path, text = USED_WITHOUT_IMPORT[name]
    return text in (REPO / path).read_text()


def test_every_declared_dependency_is_used_where_its_tag_says():
    tags = declared()
    runtime, tests = _keys(used_modules(RUNTIME)), _keys(used_modules(TESTS))
    unused = []
    for tag in ("depend", "exec_depend", "buildtool_depend"):
        unused += ["%s %s" % (tag, n) for n in tags.get(tag, ())
                   if n not in runtime and not _used_otherwise(n)]
    unused += ["test_depend %s" % n for n in tags.get("test_depend", ())
               if n not in tests and not _used_otherwise(n)]
    assert not unused, "declared but never used so: %s" % unused
    # Only the tests use a test_depend; one the run-time code imports is an exec_depend.
    both = tags.get("test_depend", set()) & set(runtime)
    assert not both, "used at run time, so exec_depend: %s" % both


def test_every_key_is_one_rosdep_knows():
    names = set().union(*declared().values())
    known = ROS_PACKAGES | set(ROSDEP_PYTHON.values())
    assert names <= known, "not a rosdep key: %s" % (names - known)
    assert not any(re.search(r"[A-Z]", n) for n in names)


def test_the_check_sees_what_it_checks():
    """The scanner finds each kind of use (so the tests above cannot pass by seeing nothing)."""
    runtime, tests = used_modules(RUNTIME), used_modules(TESTS)
    assert {"rclpy", "vision_msgs", "diagnostic_updater", "lifecycle_msgs", "torch",
            "ros2launch"} <= set(runtime)
    assert {"cv_bridge", "image_geometry", "ros2param", "ros2lifecycle", "ros2interface",
            "pytest"} <= set(tests)
    assert "rviz2" not in declared().get("exec_depend", set())  # optional (rviz:=true)
