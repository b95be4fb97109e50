// IMS plasmagram analysis benchmark (issue 4, acceptance 5): 2,000-point spectra analysed
// per second on one core. The spectra come from trace/synth (RIP, calibrant, 1-3 substance
// peaks, shot and electronic noise, baseline drift, drift-tube temperature and pressure off
// nominal, R 30-60) and are built before the timed loop; each iteration runs what the daemon
// runs per sample (daemon/trace_hits.cpp): trace::analyze(), i.e. the full analysis and the
// library match. A second case adds the Contract 6 JSON in and out around it.
//
//   cmake --preset release -B build/h-tbench && ninja -C build/h-tbench trace_bench
//   taskset -c 1 build/h-tbench/tests/bench/trace_bench
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "trace/analysis.h"
#include "trace/library.h"
#include "trace/spectrum.h"
#include "trace/synth.h"
#include "tests/unit/trace/bench_pool.h"

namespace lanegate::trace {
namespace {

using bench::library;
using bench::pool;

void BM_Analyze2000(benchmark::State& state) {
  const SubstanceLibrary& lib = library();
  const std::vector<Spectrum>& spectra = pool();
  std::size_t i = 0;
  for (auto _ : state) {
    Analysis a = analyze(spectra[i], lib);
    benchmark::DoNotOptimize(a);
    i = i + 1 == spectra.size() ? 0 : i + 1;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.counters["points"] = static_cast<double>(spectra.front().points.size());
}
BENCHMARK(BM_Analyze2000);

// The same with SPECTRUM.json parsed first and the analysis serialised after, as
// `lanegatectl ims analyze --json` does (the daemon parses too, and builds its own alert).
void BM_ParseAnalyzeJson2000(benchmark::State& state) {
  const SubstanceLibrary& lib = library();
  std::vector<std::string> texts;
  for (const Spectrum& s : pool()) texts.push_back(spectrumToJson(s));
  std::size_t i = 0;
  for (auto _ : state) {
    const auto spectrum = parseSpectrumJson(texts[i]);
    std::string json = toJson(analyze(*spectrum, lib));
    benchmark::DoNotOptimize(json);
    i = i + 1 == texts.size() ? 0 : i + 1;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_ParseAnalyzeJson2000);

}  // namespace
}  // namespace lanegate::trace

BENCHMARK_MAIN();
