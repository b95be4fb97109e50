// Prints the analysis of every spectrum of the bench pool (bench_pool.h) as Contract 6
// JSON, one line each, in pool order: what check_pool.py compares with the recorded
// bench_pool_analyses.sha256.
#include <cstdio>

#include "tests/unit/trace/bench_pool.h"
#include "trace/analysis.h"

int main() {
  using namespace lanegate::trace;
  for (const Spectrum& s : bench::pool()) std::printf("%s\n", toJson(analyze(s, bench::library())).c_str());
  return 0;
}
