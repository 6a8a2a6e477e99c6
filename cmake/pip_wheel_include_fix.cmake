# Fix for building ROS 2 interfaces against the ROS 2 pip wheels (ros-kilted-* on PyPI).
#
# Pass it on the command line, the package's CMakeLists.txt stays standard:
#   colcon build --cmake-args -DCMAKE_PROJECT_INCLUDE=<repo>/cmake/pip_wheel_include_fix.cmake
#
# Why: the wheels' exported targets `<pkg>::<pkg>__rosidl_generator_py` carry the include
# directories of the machine that built the wheels (/opt/python/cp311-cp311/include/python3.11
# and a NumPy include under /opt/python/...). CMake's generate step then fails with
# "Imported target ... includes non-existent path". At the end of configure this script
# replaces such non-existent Python / NumPy include directories of imported targets with
# this machine's ones. Paths that exist are never touched, so in a real ROS 2 install
# (apt, source build) the script is a no-op.
# Second fix, needed when the Python environment lives inside the source tree (<repo>/.venv):
# see below ("prefixed in the source directory").

if(CMAKE_VERSION VERSION_LESS 3.21)
  message(FATAL_ERROR
    "pip_wheel_include_fix.cmake needs CMake >= 3.21 (IMPORTED_TARGETS, cmake_language(DEFER))")
endif()

# CMAKE_PROJECT_INCLUDE runs after every project() call; register the fix only once per
# directory.
get_property(_espnet_ros_fix_registered DIRECTORY PROPERTY _ESPNET_ROS_PIP_INCLUDE_FIX SET)
if(NOT _espnet_ros_fix_registered)
  set_property(DIRECTORY PROPERTY _ESPNET_ROS_PIP_INCLUDE_FIX TRUE)

  function(_espnet_ros_fix_pip_wheel_includes)
    get_directory_property(_targets IMPORTED_TARGETS)
    find_package(Python3 QUIET COMPONENTS Interpreter Development.Module NumPy)
    set(_fixed 0)
    foreach(_target IN LISTS _targets)
      get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
      if(NOT _dirs)
        continue()
      endif()
      set(_new_dirs "")
      set(_changed FALSE)
      foreach(_dir IN LISTS _dirs)
        if(_dir MATCHES "^\\$<" OR EXISTS "${_dir}")
          list(APPEND _new_dirs "${_dir}")
        elseif(_dir MATCHES "numpy" AND _dir MATCHES "/include$")
          if(NOT Python3_NumPy_FOUND)
            message(FATAL_ERROR
              "pip_wheel_include_fix: ${_target} needs NumPy headers (${_dir}) but "
              "find_package(Python3 ... NumPy) found none for ${Python3_EXECUTABLE}")
          endif()
          list(APPEND _new_dirs ${Python3_NumPy_INCLUDE_DIRS})
          set(_changed TRUE)
        elseif(_dir MATCHES "/include/python3\\.[0-9]+[a-z]*$")
          if(NOT Python3_Development.Module_FOUND)
            message(FATAL_ERROR
              "pip_wheel_include_fix: ${_target} needs Python headers (${_dir}) but "
              "find_package(Python3 ... Development.Module) found none")
          endif()
          list(APPEND _new_dirs ${Python3_INCLUDE_DIRS})
          set(_changed TRUE)
        else()
          # Unknown missing directory: keep it, CMake will report it.
          list(APPEND _new_dirs "${_dir}")
        endif()
      endforeach()
      if(_changed)
        list(REMOVE_DUPLICATES _new_dirs)
        set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_new_dirs}")
        math(EXPR _fixed "${_fixed} + 1")
      endif()
    endforeach()
    # Second problem, only when the Python environment lives inside the source tree (for
    # example <repo>/.venv): the package's own `*__rosidl_generator_py` target exports the
    # NumPy/Python include directories, and CMake refuses to export a path "which is
    # prefixed in the source directory". They are needed only to build the extension in this
    # build tree, so keep them for the build interface only.
    get_directory_property(_own_targets BUILDSYSTEM_TARGETS)
    set(_py_dirs ${Python3_INCLUDE_DIRS} ${Python3_NumPy_INCLUDE_DIRS})
    foreach(_target IN LISTS _own_targets)
      get_target_property(_type ${_target} TYPE)
      if(_type STREQUAL "INTERFACE_LIBRARY" OR _type STREQUAL "UTILITY")
        continue()
      endif()
      get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
      if(NOT _dirs)
        continue()
      endif()
      set(_new_dirs "")
      set(_changed FALSE)
      foreach(_dir IN LISTS _dirs)
        string(FIND "${_dir}/" "${CMAKE_SOURCE_DIR}/" _pos)
        if(_pos EQUAL 0 AND _dir IN_LIST _py_dirs)
          list(APPEND _new_dirs "$<BUILD_INTERFACE:${_dir}>")
          set(_changed TRUE)
        else()
          list(APPEND _new_dirs "${_dir}")
        endif()
      endforeach()
      if(_changed)
        set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_new_dirs}")
        message(STATUS "pip_wheel_include_fix: ${_target}: Python/NumPy include directories "
          "inside the source tree are not exported")
      endif()
    endforeach()

    if(_fixed GREATER 0)
      message(STATUS "pip_wheel_include_fix: rewrote Python/NumPy include directories of "
        "${_fixed} imported target(s) to ${Python3_INCLUDE_DIRS};${Python3_NumPy_INCLUDE_DIRS}")
    endif()
  endfunction()

  cmake_language(DEFER CALL _espnet_ros_fix_pip_wheel_includes)
endif()
