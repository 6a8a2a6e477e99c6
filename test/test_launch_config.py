"""launch/, config/ and the parameter table agree; the launch file is checked statically here
and runs for real in test_ros2_launch.py (ros2 launch from the colcon install tree)."""
import ast
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from espnet_ros.messages import params as P

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "segment.launch.py"


def _calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


def _kw(call, name):
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


def test_params_file_holds_every_parameter_with_its_default():
    data = yaml.safe_load((REPO / "config" / "segment.yaml").read_text())
    values = data["/**"]["ros__parameters"]
    assert values == P.defaults()


def test_multi_camera_example_names_known_parameters_with_valid_values():
    data = yaml.safe_load((REPO / "config" / "segment_cameras.yaml").read_text())
    values = data["/**"]["ros__parameters"]
    assert set(values) <= set(P.BY_NAME)
    for name, value in values.items():
        assert P.validate(name, value) is None, name
    assert len(P.camera_names(values["cameras"])) >= 2


def test_every_default_passes_its_own_validation():
    for spec in P.SPECS:
        assert P.validate(spec.name, spec.default) is None, spec.name
    assert P.validate("overlay_alpha", 1.5) and P.validate("backend", "tensorflow")


def test_class_list_parsing():
    names = ("road", "car", "person")
    assert P.parse_class_list("", names) is None
    assert P.parse_class_list("Car, 0", names) == [0, 1]
    with pytest.raises(ValueError, match="unicorn"):
        P.parse_class_list("unicorn", names)


def test_launch_file_parses_and_starts_the_node_with_params_and_remaps():
    tree = ast.parse(LAUNCH.read_text())
    arguments = {ast.literal_eval(c.args[0]) for c in _calls(tree, "DeclareLaunchArgument")}
    assert {"namespace", "image", "model", "backend", "params_file", "use_sim_time",
            "rviz"} <= arguments
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _kw(n, "executable")]
    by_exec = {ast.literal_eval(_kw(n, "executable")): n for n in nodes}
    node = by_exec["segment_node"]
    assert {"cameras", "lifecycle", "autostart"} <= arguments
    assert ast.unparse(_kw(node, "package")) == "PACKAGE" and 'PACKAGE = "espnet_ros"' in \
        LAUNCH.read_text()
    assert ast.literal_eval(_kw(node, "name")) == "espnet_segmentation"
    assert "_remappings(" in ast.unparse(_kw(node, "remappings"))
    source = LAUNCH.read_text()
    assert '"config", "segment.yaml"' in source and '"config", "espnet.rviz"' in source
    # Product defaults: the user's own DDS settings; loopback only where a test passes it.
    assert "ROS_AUTOMATIC_DISCOVERY_RANGE" in source and "fastdds_localhost.xml" not in source
    assert 'default_value="LOCALHOST"' not in source
    assert 'LARGE_IMAGE_PROFILE = "fastdds_large_images.xml"' in source
    # Every file the launch file names is installed by CMakeLists.txt (launch/ and config/).
    cmake = (REPO / "CMakeLists.txt").read_text()
    assert "launch config msg" in cmake and "scripts/segment_node" in cmake
    assert (REPO / "config" / "espnet.rviz").is_file()


def test_launch_remaps_the_single_camera_or_each_named_camera():
    pytest.importorskip("launch_ros", reason="launch_ros is not installed")
    import importlib.util
    spec = importlib.util.spec_from_file_location("segment_launch", str(LAUNCH))
    launch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch)
    assert launch._remappings([], "/cam/image_raw", "camera_info") == [
        ("image", "/cam/image_raw"), ("image/compressed", "/cam/image_raw/compressed"),
        ("camera_info", "camera_info")]
    # Named cameras keep their own topics; a relative image name applies under each camera.
    assert launch._remappings(["front", "rear"], "image", "camera_info") == []
    assert launch._remappings(["front"], "image_raw", "info") == [
        ("front/image", "front/image_raw"), ("front/image/compressed",
                                             "front/image_raw/compressed"),
        ("front/camera_info", "front/info")]
    assert launch._remappings(["front"], "/abs/image", "camera_info") == []


def test_rviz_config_shows_overlay_and_colour_mask():
    data = yaml.safe_load((REPO / "config" / "espnet.rviz").read_text())
    topics = {d["Topic"]["Value"] for d in data["Visualization Manager"]["Displays"]}
    assert topics == {"espnet_segmentation/overlay", "espnet_segmentation/color_mask"}


FASTDDS_NS = {"d": "http://www.eprosima.com"}


def _transports(profile):
    root = ET.parse(str(REPO / "config" / profile)).getroot()
    assert root.find(".//d:useBuiltinTransports", FASTDDS_NS).text == "false"
    return {t.find("d:type", FASTDDS_NS).text: t
            for t in root.iterfind(".//d:transport_descriptor", FASTDDS_NS)}


BGR8_4096X3072 = 4096 * 3072 * 3   # the largest best-effort frame both profiles carry whole


def test_fastdds_test_profile_limits_udp_to_loopback_and_sizes_shared_memory():
    transports = _transports("fastdds_localhost.xml")
    shm = transports["SHM"]
    max_message = int(shm.find("d:maxMessageSize", FASTDDS_NS).text)
    assert max_message >= BGR8_4096X3072 + 1024   # one piece: no fragment to lose
    assert int(shm.find("d:segment_size", FASTDDS_NS).text) >= 2 * max_message
    assert int(shm.find("d:port_queue_capacity", FASTDDS_NS).text) >= 2048
    interfaces = transports["UDPv4"].iterfind(".//d:interface", FASTDDS_NS)
    assert [i.get("name") for i in interfaces] == ["127.0.0.1"]


def test_fastdds_large_image_profile_carries_4k_frames_and_normal_udp():
    transports = _transports("fastdds_large_images.xml")
    shm = transports["SHM"]
    max_message = int(shm.find("d:maxMessageSize", FASTDDS_NS).text)
    assert max_message >= max(3840 * 2160 * 4, BGR8_4096X3072 + 1024)  # 4K rgba8, 12 MP bgr8
    assert int(shm.find("d:segment_size", FASTDDS_NS).text) >= 2 * max_message
    # ~64 KB fragments: a 4096x3072 bgr8 frame is ~580 of them in the port's queue at once
    assert int(shm.find("d:port_queue_capacity", FASTDDS_NS).text) >= 2048
    assert transports["UDPv4"].find(".//d:interfaces", FASTDDS_NS) is None  # every interface


def test_launch_description_loads_from_the_install_tree(ros2_env, monkeypatch):
    from launch import LaunchDescription
    from launch.launch_description_sources import get_launch_description_from_python_launch_file
    monkeypatch.setenv("AMENT_PREFIX_PATH", ros2_env["AMENT_PREFIX_PATH"])
    description = get_launch_description_from_python_launch_file(str(LAUNCH))
    assert isinstance(description, LaunchDescription)
    declared = {a.name: a.default_value for a in description.get_launch_arguments()}
    assert {"namespace", "image", "camera_info", "model", "backend", "device", "params_file",
            "use_sim_time", "rviz", "discovery_range", "fastdds_profile", "cameras", "lifecycle",
            "autostart"} == set(declared)
    # Node parameters as launch arguments default to "": params_file's value stays.
    from launch import LaunchContext
    context = LaunchContext()
    for name in ("model", "backend", "device", "use_sim_time"):
        assert "".join(s.perform(context) for s in declared[name]) == "", name


def test_segmentation_info_comments_name_what_the_node_publishes():
    import re

    from espnet_ros.models.zoo import get as get_entry
    text = (REPO / "msg" / "SegmentationInfo.msg").read_text()
    for name in re.findall(r'zoo name \(e\.g\. "([^"]+)"\)', text):
        assert get_entry(name).name == name
    backends = re.search(r"backend that produced the result: (.*)\.", text).group(1)
    assert set(re.findall(r'"([a-z0-9]+)"', backends)) == set(P.BY_NAME["backend"].choices) - {"auto"}
    precisions = re.search(r"used by the backend: (.*)\.", text).group(1)
    assert set(re.findall(r'"([a-z0-9]+)"', precisions)) == set(P.BY_NAME["precision"].choices)
    void = re.search(r"the model's void id \((\d+) for the\n# Cityscapes models, (\d+) for CamVid",
                     text)
    assert (int(void.group(1)), int(void.group(2))) == (
        get_entry("espnet-p2q8-cityscapes").void_id, get_entry("espnet-p2q8-camvid").void_id)


@pytest.mark.parametrize("distro, legacy", [("humble", True), ("jazzy", False),
                                            ("kilted", False)])
def test_loopback_isolation_uses_what_the_distribution_has(distro, legacy):
    from espnet_ros.ros.env import localhost_env
    env = localhost_env({"ROS_DISTRO": distro, "PATH": "/usr/bin"})
    profile = Path(env["FASTDDS_DEFAULT_PROFILES_FILE"])
    if legacy:  # Humble: no ROS_AUTOMATIC_DISCOVERY_RANGE, Fast DDS 2.6
        assert env["ROS_LOCALHOST_ONLY"] == "1" and "ROS_AUTOMATIC_DISCOVERY_RANGE" not in env
        assert profile.name == "fastdds_localhost_legacy.xml"
    else:
        assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
        assert "ROS_LOCALHOST_ONLY" not in env and profile.name == "fastdds_localhost.xml"
    assert profile.is_file()
    kept = localhost_env({"ROS_DISTRO": distro, "ROS_LOCALHOST_ONLY": "0",
                          "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"})
    assert (kept["ROS_LOCALHOST_ONLY"], kept["ROS_AUTOMATIC_DISCOVERY_RANGE"]) == ("0", "SUBNET")


def test_legacy_fastdds_profile_matches_the_current_one_but_for_the_interface_syntax():
    """Fast DDS 2.6 (Humble) reads <interfaceWhiteList>, 2.14+ <interfaces><allowlist>."""
    ns = {"d": "http://www.eprosima.com"}

    def parts(name):
        root = ET.parse(REPO / "config" / name).getroot()
        udp = [t for t in root.iterfind(".//d:transport_descriptor", ns)
               if t.findtext("d:type", namespaces=ns) == "UDPv4"]
        assert len(udp) == 1
        shm = [{c.tag: c.text for c in t} for t in root.iterfind(".//d:transport_descriptor", ns)
               if t.findtext("d:type", namespaces=ns) == "SHM"]
        participant = ET.tostring(root.find(".//d:participant", ns))
        entities = [ET.tostring(root.find(".//d:" + kind, ns)) for kind in ("data_writer",
                                                                              "data_reader")]
        return udp[0], shm, participant, entities

    new_udp, new_shm, new_participant, new_entities = parts("fastdds_localhost.xml")
    old_udp, old_shm, old_participant, old_entities = parts("fastdds_localhost_legacy.xml")
    assert (old_shm, old_participant, old_entities) == (new_shm, new_participant, new_entities)
    allow = [i.get("name") for i in new_udp.iterfind("d:interfaces/d:allowlist/d:interface", ns)]
    white = [a.text for a in old_udp.iterfind("d:interfaceWhiteList/d:address", ns)]
    assert allow == white == ["127.0.0.1"]
    assert old_udp.find("d:interfaces", ns) is None  # 2.6 does not parse it


@pytest.mark.parametrize("distro, localhost_only", [("humble", "1"), ("jazzy", None)])
def test_launch_file_sets_humbles_localhost_only_with_discovery_range_localhost(
        distro, localhost_only, monkeypatch):
    """dds_settings of the launch file, run in a launch context."""
    pytest.importorskip("launch_ros")
    pytest.importorskip("lifecycle_msgs")
    import importlib.util

    from launch import LaunchContext
    spec = importlib.util.spec_from_file_location("segment_launch", str(LAUNCH))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in ("ROS_LOCALHOST_ONLY", "ROS_AUTOMATIC_DISCOVERY_RANGE",
                 "FASTDDS_DEFAULT_PROFILES_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ROS_DISTRO", distro)
    context = LaunchContext()
    context.launch_configurations.update(discovery_range="LOCALHOST", fastdds_profile="/p.xml")
    for action in module.dds_settings(context, "/share"):
        action.execute(context)
    env = getattr(context, "environment", os.environ)
    assert env.get("ROS_AUTOMATIC_DISCOVERY_RANGE") == "LOCALHOST"
    assert env.get("ROS_LOCALHOST_ONLY") == localhost_only
    assert env.get("FASTDDS_DEFAULT_PROFILES_FILE") == "/p.xml"
