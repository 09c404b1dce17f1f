// OpenBLAS from Debian's libopenblas-dev (cblas.h lives in a multiarch include folder).
#if __has_include(<x86_64-linux-gnu/cblas.h>)
#include <x86_64-linux-gnu/cblas.h>
#elif __has_include(<aarch64-linux-gnu/cblas.h>)
#include <aarch64-linux-gnu/cblas.h>
#else
#include <cblas.h>
#endif
