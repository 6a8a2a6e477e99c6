"""Find the generated ``espnet_ros/msg/SegmentationInfo`` message class.

Importable without ROS (standard library only at import time). The message exists only after
a colcon build of this package: in a ROS 2 workspace (``. install/setup.bash``) or, on a
machine with the ROS 2 pip wheels, after ``scripts/build_interfaces.sh``.

:func:`load_segmentation_info` tries, in order:

1. ``espnet_ros.msg`` as it is importable now (sourced workspace, ``PYTHONPATH``);
2. the install prefix named by ``ESPNET_ROS_INTERFACES_PREFIX`` (what build_interfaces.sh
   writes into its env file): its site-packages directory is appended to ``sys.path`` and to
   ``espnet_ros.__path__``, so the library keeps coming from where it was imported
   (pip, editable install, source tree) and only ``espnet_ros.msg`` comes from the prefix;
3. the same with the package's prefix in the ament index (``AMENT_PREFIX_PATH``), which is how
   ``ros2 launch``/``ros2 run`` found the node without a sourced workspace.

The typesupport libraries (``<prefix>/lib/libespnet_ros__rosidl_*.so``) carry no RUNPATH and
are normally found through ``LD_LIBRARY_PATH``, which a running process cannot change for its
own dynamic loader. Measured with the Kilted wheels: without it the typesupport extension
module does not import (``UnsupportedTypeSupport``), and even with a RUNPATH the RMW's
``dlopen("libespnet_ros__rosidl_typesupport_fastrtps_c.so")`` by name fails. So when
``<prefix>/lib`` is not on ``LD_LIBRARY_PATH``, the libraries are loaded here by absolute
path (ctypes); lookups by name then resolve to the already-loaded libraries (checked by
importing the typesupport and, if rclpy is importable, serializing a message). If that fails,
the reason returned says which directory belongs on ``LD_LIBRARY_PATH`` before Python starts.
"""
import ctypes
import glob
import importlib
import os
import sys

PREFIX_ENV = "ESPNET_ROS_INTERFACES_PREFIX"
PACKAGE = "espnet_ros"
# Written by scripts/build_interfaces.sh: the ROS 2 distribution the messages were built for.
DISTRO_FILE = os.path.join("share", PACKAGE, "ros_distro")


def ros_distro():
    """The ROS 2 distribution this Python runs (ROS_DISTRO, else the ros-<distro>-rclpy wheel
    installed), or None when neither says."""
    if os.environ.get("ROS_DISTRO"):
        return os.environ["ROS_DISTRO"]
    try:
        from importlib import metadata
    except ImportError:  # Python 3.7
        return None
    for dist in metadata.distributions():
        parts = (dist.metadata["Name"] or "").lower().replace("_", "-").split("-")
        if len(parts) == 3 and parts[0] == "ros" and parts[2] == "rclpy":
            return parts[1]
    return None


def _distro_mismatch(prefix):
    """Why the messages in ``prefix`` cannot load here (built for another distribution)."""
    try:
        with open(os.path.join(prefix, DISTRO_FILE)) as f:
            built = f.read().strip()
    except OSError:
        return None
    running = ros_distro()
    if built and running and built != running:
        return ("espnet_ros/msg/SegmentationInfo in %s was built for ROS 2 %s and this is %s "
                "(build msg/ for %s: colcon build in a %s workspace)"
                % (prefix, built, running, running, running))
    return None


def _site_dirs(prefix):
    """Python install directories of a colcon install prefix (merged or isolated layout)."""
    version = "python%d.%d" % sys.version_info[:2]
    bases = [prefix, os.path.join(prefix, PACKAGE)]
    candidates = []
    for base in bases:
        candidates += [
            os.path.join(base, "lib", version, "site-packages"),
            os.path.join(base, "local", "lib", version, "dist-packages"),
            os.path.join(base, "lib", version, "dist-packages"),
        ]
        candidates += sorted(glob.glob(os.path.join(base, "lib", "python3*", "site-packages")))
    seen = []
    for path in candidates:
        if path not in seen and os.path.isfile(os.path.join(path, PACKAGE, "msg", "__init__.py")):
            seen.append(path)
    return seen


def _lib_dir_of(msg_module_file):
    """``<prefix>/lib`` for ``<prefix>/[local/]lib/pythonX.Y/<site>/espnet_ros/msg/__init__.py``."""
    path = os.path.dirname(os.path.abspath(msg_module_file))  # .../espnet_ros/msg
    for _ in range(4):  # msg -> espnet_ros -> site-packages -> pythonX.Y -> lib
        path = os.path.dirname(path)
    if os.path.basename(os.path.dirname(path)) == "local":  # <prefix>/local/lib
        path = os.path.join(os.path.dirname(os.path.dirname(path)), "lib")
    return path


def _ld_library_path_has(lib_dir):
    entries = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    real = os.path.realpath(lib_dir)
    return any(os.path.realpath(p) == real for p in entries)


def _preload_typesupport_libraries(lib_dir):
    """Load ``lib<PACKAGE>__rosidl_*.so`` by absolute path, dependencies first.

    Returns the list of libraries that could not be loaded (empty on success).
    """
    pending = sorted(glob.glob(os.path.join(lib_dir, "lib%s__rosidl_*.so" % PACKAGE)))
    errors = {}
    while pending:
        progress = False
        for path in list(pending):
            try:
                ctypes.CDLL(path, mode=getattr(ctypes, "RTLD_GLOBAL", 0))
            except OSError as exc:
                errors[path] = str(exc)
            else:
                pending.remove(path)
                errors.pop(path, None)
                progress = True
        if not progress:
            break
    return [errors[p] for p in pending]


def _import_msg_class():
    module = importlib.import_module(PACKAGE + ".msg")
    return module.SegmentationInfo, module.__file__


def _add_prefix_to_path(prefix):
    """Make ``espnet_ros.msg`` of ``prefix`` importable; returns the site dir or None."""
    site_dirs = _site_dirs(prefix)
    if not site_dirs:
        return None
    site_dir = site_dirs[0]
    if site_dir not in sys.path:
        sys.path.append(site_dir)  # after everything else: never shadow the library
    package = importlib.import_module(PACKAGE)
    package_dir = os.path.join(site_dir, PACKAGE)
    if package_dir not in list(package.__path__):
        package.__path__.append(package_dir)
    importlib.invalidate_caches()
    return site_dir


def _use_typesupport(cls):
    """Load the C typesupport of ``cls`` and, when rclpy is there, the RMW's one too.

    Serializing an empty message makes the RMW implementation look up its typesupport library
    (e.g. ``libespnet_ros__rosidl_typesupport_fastrtps_c.so``) by name, as publishing would.
    """
    type(cls).__import_type_support__()
    try:
        from rclpy.serialization import serialize_message
    except Exception:  # no rclpy (ImportError) or no RMW library (OSError): nothing to check
        return
    serialize_message(cls())


def _check_typesupport(cls, msg_file):
    """Make the typesupport of ``cls`` usable; returns ``(problem or None, note)``."""
    lib_dir = _lib_dir_of(msg_file)
    pattern = os.path.join(lib_dir, "lib%s__rosidl_*.so" % PACKAGE)
    failures = []
    note = ""
    if glob.glob(pattern) and not _ld_library_path_has(lib_dir):
        # Not findable by name: the extension module's dependencies and the RMW's dlopen()
        # of the typesupport library would fail. Loaded by path, they are found by soname.
        failures = _preload_typesupport_libraries(lib_dir)
        note = " (typesupport libraries preloaded from %s: not on LD_LIBRARY_PATH)" % lib_dir
    try:
        _use_typesupport(cls)
        return None, note
    except Exception as exc:  # UnsupportedTypeSupport, ImportError, OSError, RMWError
        error = "%s: %s" % (type(exc).__name__, str(exc).strip().splitlines()[0])
    if not glob.glob(pattern):
        return "typesupport of %s does not load (%s) and %s holds no lib%s__rosidl_*.so" % (
            msg_file, error, lib_dir, PACKAGE), note
    hint = "" if _ld_library_path_has(lib_dir) else (
        "; LD_LIBRARY_PATH lacks %s: add it before starting Python "
        "(source the env file written by scripts/build_interfaces.sh)" % lib_dir)
    return "typesupport of %s does not load: %s%s%s" % (
        msg_file, error, "; preloading failed: " + " | ".join(failures) if failures else "",
        hint), note


def _ament_prefix():
    """The install prefix of this package in the ament index, or None."""
    try:
        from ament_index_python.packages import get_package_prefix
        return get_package_prefix(PACKAGE)
    except Exception:  # no ament_index_python, no AMENT_PREFIX_PATH, package not in it
        return None


def load_segmentation_info(prefix=None):
    """Return ``(SegmentationInfo class or None, reason)``.

    ``prefix`` defaults to the environment variable ``ESPNET_ROS_INTERFACES_PREFIX`` (a colcon
    install prefix). ``reason`` says where the class came from, or why it is not available.
    """
    errors = []
    try:
        cls, msg_file = _import_msg_class()
    except ImportError as exc:
        cls = None
        errors.append("espnet_ros.msg is not importable (%s: %s)" % (type(exc).__name__, exc))

    if cls is None:
        prefix = prefix or os.environ.get(PREFIX_ENV) or _ament_prefix()
        if not prefix:
            return None, "%s; %s is not set and the ament index has no %s (build the " \
                "interfaces with scripts/build_interfaces.sh or source a ROS 2 workspace)" % (
                    errors[0], PREFIX_ENV, PACKAGE)
        prefix = os.path.abspath(prefix)
        mismatch = _distro_mismatch(prefix)
        if mismatch:
            return None, mismatch
        site_dir = _add_prefix_to_path(prefix)
        if site_dir is None:
            return None, "%s; %s=%s holds no %s/msg for Python %d.%d" % (
                errors[0], PREFIX_ENV, prefix, PACKAGE, sys.version_info[0],
                sys.version_info[1])
        try:
            cls, msg_file = _import_msg_class()
        except ImportError as exc:
            return None, "%s; importing it from %s failed too (%s: %s)" % (
                errors[0], site_dir, type(exc).__name__, exc)

    problem, note = _check_typesupport(cls, msg_file)
    if problem is not None:
        return None, problem
    return cls, "espnet_ros.msg.SegmentationInfo from %s%s" % (os.path.dirname(msg_file), note)
