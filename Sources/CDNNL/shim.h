// oneDNN from Debian's libdnnl-dev (dnnl_sgemm, version and ISA queries). Debian builds it on
// the OpenMP runtime (libgomp): the thread count of its calls is the calling thread's OpenMP
// thread count, set with omp_set_num_threads.
#include <oneapi/dnnl/dnnl.h>

void omp_set_num_threads(int num_threads);
