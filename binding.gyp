{
  "targets": [
    {
      "target_name": "butterfly_native",
      "sources": [
        "native/addon.c",
        "native/pool.c",
        "native/matmul.c",
        "native/x16.c",
        "native/x16_k.c",
        "native/activations.c",
        "native/dot_float.c",
        "native/dot_q8_0.c",
        "native/dot_kquants.c",
        "native/dot_avx512.c",
        "native/attention.c",
        "native/ops.c",
        "native/amx.c",
        "native/amx_x16.c"
      ],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=c11", "-O3", "-march=native", "-ffp-contract=off", "-fno-fast-math", "-pthread", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "ldflags": ["-pthread"],
      "xcode_settings": {
        "OTHER_CFLAGS": ["-std=c11", "-O3", "-march=native", "-ffp-contract=off", "-fno-fast-math"]
      }
    }
  ]
}
