#!/usr/bin/env bash
# Build this package's ROS 2 interfaces (msg/SegmentationInfo.msg) with colcon, out of the
# source tree, and write an env file for using them.
#
# Usage: scripts/build_interfaces.sh [--clean] [WORKSPACE_DIR]
#        scripts/build_interfaces.sh --underlay FILE
#   WORKSPACE_DIR  default: $ESPNET_ROS_WS or <repo>/build/ros_ws; gets build/ install/ log/
#   --clean        delete WORKSPACE_DIR first
#   --underlay F   build nothing: write F, a bash file that, sourced, stands in for
#                  /opt/ros/<distro>/setup.bash with the pip wheels (PATH, AMENT_PREFIX_PATH,
#                  CMAKE_PREFIX_PATH, and this script's CMake arguments through
#                  COLCON_DEFAULTS_FILE), so that a plain `colcon build` in a workspace works
# Environment:
#   ESPNET_ROS_PYTHON  Python to build with (default: <repo>/.venv/bin/python if present,
#                      else the active virtual env's python, else python3)
#
# Against the ROS 2 pip wheels it needs the packages in requirements/interfaces.txt installed
# into that Python environment (this script installs nothing). With a sourced ROS 2 install
# (/opt/ros/<distro>/setup.bash) it uses that instead; a plain `colcon build` in a ROS 2
# workspace needs none of this script.
#
# Afterwards:
#   . WORKSPACE_DIR/env.sh     # PYTHONPATH, LD_LIBRARY_PATH, AMENT_PREFIX_PATH and
#                              # ESPNET_ROS_INTERFACES_PREFIX (see espnet_ros/ros/interfaces.py)
set -euo pipefail

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
clean=0
ws=""
underlay=""
while [ $# -gt 0 ]; do
  case "$1" in
    --clean) clean=1 ;;
    --underlay) [ $# -ge 2 ] || { echo "build_interfaces.sh: --underlay needs a file" >&2; exit 2; }
                underlay=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "build_interfaces.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) [ -z "$ws" ] || { echo "build_interfaces.sh: one workspace dir only" >&2; exit 2; }
       ws=$1 ;;
  esac
  shift
done
ws=${ws:-${ESPNET_ROS_WS:-$repo/build/ros_ws}}
if [ -z "$underlay" ]; then
  mkdir -p "$ws"
  ws=$(cd "$ws" && pwd)
fi

if [ -n "${ESPNET_ROS_PYTHON:-}" ]; then
  python=$ESPNET_ROS_PYTHON
elif [ -x "$repo/.venv/bin/python" ]; then
  python=$repo/.venv/bin/python
elif [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
  python=$VIRTUAL_ENV/bin/python
else
  python=$(command -v python3)
fi
py_prefix=$("$python" -c 'import sys; print(sys.prefix)')

fail() { echo "build_interfaces.sh: $*" >&2; exit 1; }

if [ -x "$py_prefix/bin/colcon" ]; then
  colcon=$py_prefix/bin/colcon
elif command -v colcon >/dev/null 2>&1; then
  colcon=$(command -v colcon)
else
  fail "colcon not found for $python: pip install -r $repo/requirements/interfaces.txt"
fi

# Where do ament_cmake and the rosidl generators come from?
index=share/ament_index/resource_index/packages
needed="ament_cmake ament_cmake_python ament_cmake_ros_core rosidl_default_generators
  rosidl_default_runtime rosidl_core_generators std_msgs"
if [ -e "$py_prefix/$index/rosidl_default_generators" ] || [ -z "${AMENT_PREFIX_PATH:-}" ]; then
  # ROS 2 from pip wheels in this Python environment.
  missing=""
  for pkg in $needed; do
    [ -e "$py_prefix/$index/$pkg" ] || missing="$missing $pkg"
  done
  [ -z "$missing" ] || fail "missing in $py_prefix:$missing
  install them: $python -m pip install -r $repo/requirements/interfaces.txt
  (or source a ROS 2 installation: . /opt/ros/<distro>/setup.bash)"
  # Without AMENT_PREFIX_PATH: "No 'rosidl_typesupport_c' found".
  export AMENT_PREFIX_PATH="$py_prefix${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export CMAKE_PREFIX_PATH="$py_prefix${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  ros_from="pip wheels in $py_prefix"
  python_arg=("-DPython3_EXECUTABLE=$python")
else
  # A sourced ROS 2 install: build with its Python unless ESPNET_ROS_PYTHON says otherwise.
  ros_from="AMENT_PREFIX_PATH=$AMENT_PREFIX_PATH"
  python_arg=()
  [ -z "${ESPNET_ROS_PYTHON:-}" ] || python_arg=("-DPython3_EXECUTABLE=$python")
fi

cmake_args=("-DCMAKE_PROJECT_INCLUDE=$repo/cmake/pip_wheel_include_fix.cmake"
            ${python_arg[@]+"${python_arg[@]}"})

if [ -n "$underlay" ]; then
  # What /opt/ros/<distro>/setup.bash gives a ROS user, for the ROS 2 of this environment.
  defaults=${underlay%.*}.colcon-defaults.yaml
  { echo "build:"; echo "  cmake-args:"
    for a in "${cmake_args[@]}"; do printf '    - "%s"\n' "$a"; done; } > "$defaults"
  { echo "# Written by scripts/build_interfaces.sh --underlay: ROS 2 from $ros_from"
    printf 'export PATH=%q${PATH:+:$PATH}\n' "$(dirname "$python")"
    printf 'export AMENT_PREFIX_PATH=%q\n' "$AMENT_PREFIX_PATH"
    printf 'export CMAKE_PREFIX_PATH=%q\n' "${CMAKE_PREFIX_PATH:-}"
    printf 'export COLCON_DEFAULTS_FILE=%q\n' "$(cd "$(dirname "$defaults")" && pwd)/$(basename "$defaults")"
  } > "$underlay"
  echo "build_interfaces.sh: wrote $underlay (source it, then colcon build in a workspace)"
  exit 0
fi

if [ "$clean" = 1 ]; then
  rm -rf "$ws/build" "$ws/install" "$ws/log" "$ws/env.sh"
fi

echo "build_interfaces.sh: building espnet_ros into $ws (ROS 2 from $ros_from)"
start=$(date +%s.%N)
# --base-paths: the repository itself is the package; colcon does not descend into a
# package, so <repo>/.venv and <repo>/build are not crawled.
"$colcon" --log-base "$ws/log" build \
  --base-paths "$repo" \
  --packages-select espnet_ros \
  --build-base "$ws/build" \
  --install-base "$ws/install" \
  --merge-install \
  --event-handlers console_cohesion+ status- \
  --cmake-args "${cmake_args[@]}" -DBUILD_TESTING=OFF
end=$(date +%s.%N)

prefix=$ws/install
msg_init=$(find "$prefix" -path '*/espnet_ros/msg/__init__.py' -print -quit)
[ -n "$msg_init" ] || fail "no espnet_ros/msg/__init__.py under $prefix"
site_dir=$(cd "$(dirname "$msg_init")/../.." && pwd)
lib_dir=$prefix/lib

# The distribution they are built for: espnet_ros.ros.interfaces refuses them, with one line,
# in a Python of another distribution (their typesupport would not load there).
mkdir -p "$prefix/share/espnet_ros"
PYTHONPATH="$repo" "$python" -c 'from espnet_ros.ros.interfaces import ros_distro; print(ros_distro() or "")' \
  > "$prefix/share/espnet_ros/ros_distro"

cat > "$ws/env.sh" <<EOF
# Written by scripts/build_interfaces.sh: use the espnet_ros interfaces built in
#   $prefix
# Source it (. $ws/env.sh) before starting Python: LD_LIBRARY_PATH is read at process start.
# Note: everything on PYTHONPATH comes before site-packages, so the copy of the espnet_ros
# library in the install tree shadows a pip or editable install of it. To keep the library
# from pip/source and take only espnet_ros.msg from here, set just ESPNET_ROS_INTERFACES_PREFIX
# and use espnet_ros.ros.interfaces.load_segmentation_info().
export ESPNET_ROS_INTERFACES_PREFIX="$prefix"
export PYTHONPATH="$site_dir\${PYTHONPATH:+:\$PYTHONPATH}"
export LD_LIBRARY_PATH="$lib_dir\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export AMENT_PREFIX_PATH="$prefix\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}"
EOF

awk -v s="$start" -v e="$end" 'BEGIN { printf "build_interfaces.sh: done in %.1f s\n", e - s }'
echo "  PYTHONPATH      += $site_dir"
echo "  LD_LIBRARY_PATH += $lib_dir"
echo "  env file: . $ws/env.sh"
