# ASan + UBSan for the dev preset. -fno-sanitize=function: clang 14 cannot compile C++20
# coroutines (Boost.Asio awaitable, used by the net layer) with UBSan's function check.
if(REFSMTP_SANITIZE OR REFSMTP_FUZZ)
  set(REFSMTP_SANITIZER_FLAGS -fsanitize=address,undefined -fno-sanitize=function
      -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  add_compile_options(${REFSMTP_SANITIZER_FLAGS})
  add_link_options(${REFSMTP_SANITIZER_FLAGS})
endif()
