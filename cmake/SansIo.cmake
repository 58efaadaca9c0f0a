# The sans-IO modules (reference/core, reference/smtp, and the POP3/IMAP sessions to come) touch no
# sockets, files or clocks: that is what lets the same session run under Asio, in a unit test, in
# a fuzzer and in the conformance runner. refsmtp_sans_io(target DIRS d... ALLOW t...) fails the
# configure step when the target links anything but the listed sans-IO targets, or when a source
# or header below DIRS includes a header outside the allowlist or reads a clock.
set(REFSMTP_SANS_IO_HEADERS
    algorithm array bitset cassert charconv chrono compare cstddef cstdint cstring deque functional
    initializer_list iterator limits map memory numeric optional set span string string_view tuple
    type_traits unordered_map unordered_set utility variant vector)

function(refsmtp_sans_io target)
  cmake_parse_arguments(ARG "" "" "DIRS;ALLOW" ${ARGN})
  get_target_property(libs ${target} LINK_LIBRARIES)
  if(libs)
    foreach(lib IN LISTS libs)
      if(NOT lib IN_LIST ARG_ALLOW)
        message(FATAL_ERROR "${target} is sans-IO and may link only ${ARG_ALLOW}; it links ${lib}")
      endif()
    endforeach()
  endif()
  foreach(dir IN LISTS ARG_DIRS)
    file(GLOB_RECURSE files "${dir}/*.hpp" "${dir}/*.cpp")
    foreach(f IN LISTS files)
      file(STRINGS "${f}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*<|::now[ \t]*\\(")
      foreach(line IN LISTS lines)
        if(line MATCHES "::now[ \t]*\\(")
          message(FATAL_ERROR "${f}: a sans-IO module reads no clock (time is an input): ${line}")
        endif()
        string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*<([^>]*)>.*" "\\1" header "${line}")
        if(NOT header IN_LIST REFSMTP_SANS_IO_HEADERS)
          message(FATAL_ERROR "${f}: <${header}> is not on the sans-IO allowlist (cmake/SansIo.cmake)")
        endif()
      endforeach()
    endforeach()
  endforeach()
endfunction()
