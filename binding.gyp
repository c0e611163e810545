{
  # Two builds of the same sources: `seglog`, the product, and `seglog_faults`,
  # the test build with fault injection compiled in (SEGLOG_FAULTS). Tests load
  # the latter through SEGLOG_ADDON=faults (see src/native.ts).
  "target_defaults": {
    "sources": [
      "native/addon.cc",
      "native/file.cc",
      "native/filesystem.cc",
      "native/read-nowait.cc",
      "native/memory.cc",
      "native/sendfile.cc",
      "native/crc32c.cc"
    ],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    # NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS: a call made while a worker is being terminated cannot throw
    # (napi_throw fails there); node-addon-api then drops the error instead of aborting the whole process.
    "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "_GNU_SOURCE"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
    "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
  },
  "targets": [
    { "target_name": "seglog" },
    { "target_name": "seglog_faults", "defines": ["SEGLOG_FAULTS"] }
  ]
}
