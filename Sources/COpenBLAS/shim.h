#include <openblas-pthread/cblas.h>
