# One way to declare a test program: refsmtp_gtest(name LABELS l... SOURCES s... LIBRARIES t...
# [INCLUDES d...] [DEFINES k=v...] [TIMEOUT s] [SERIAL]) builds a GoogleTest executable with the
# project's warnings (and, through the presets, its sanitizer flags), links GoogleTest's main and
# registers each test with ctest under the labels (unit, property, integration, peers, ...).
function(refsmtp_gtest name)
  cmake_parse_arguments(ARG "SERIAL" "TIMEOUT" "LABELS;SOURCES;LIBRARIES;INCLUDES;DEFINES" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBRARIES} GTest::gtest GTest::gtest_main)
  if(ARG_INCLUDES)
    target_include_directories(${name} PRIVATE ${ARG_INCLUDES})
  endif()
  if(ARG_DEFINES)
    target_compile_definitions(${name} PRIVATE ${ARG_DEFINES})
  endif()
  refsmtp_warnings(${name})
  set(props LABELS "${ARG_LABELS}")
  if(ARG_TIMEOUT)
    list(APPEND props TIMEOUT ${ARG_TIMEOUT})
  endif()
  if(ARG_SERIAL)
    list(APPEND props RUN_SERIAL TRUE)
  endif()
  gtest_discover_tests(${name} PROPERTIES ${props} DISCOVERY_TIMEOUT 60)
endfunction()
