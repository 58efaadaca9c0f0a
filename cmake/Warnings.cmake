# Project code is built with warnings as errors; third-party headers come in as SYSTEM.
function(refsmtp_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror -Wshadow -Wconversion
                         -Wno-sign-conversion)
endfunction()
