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

namespace lanegate::trace {
namespace {

SubstanceLibrary loadLibrary() {
  std::ifstream in(std::string(LANEGATE_SOURCE_DIR) + "/config/ims/substances.yaml");
  std::stringstream text;
  text << in.rdbuf();
  auto lib = SubstanceLibrary::parse(text.str(), "substances.yaml");
  if (!lib) {
    std::fprintf(stderr, "trace_bench: %s\n", lib.error().c_str());
    std::exit(1);
  }
  return *lib;
}

const SubstanceLibrary& library() {
  static const SubstanceLibrary lib = loadLibrary();
  return lib;
}

// Deterministic small generator for the scenario mix (the synthesiser has its own).
struct Mix {
  std::uint64_t state;
  double uniform() {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(state >> 11) * 0x1.0p-53;
  }
};

// A pool of varied, realistic spectra: both modes, 1-3 library targets (sometimes an
// unidentified ion instead), SNR 8-200, R 30-60, T +/-5 K, P +/-20 hPa.
const std::vector<Spectrum>& pool() {
  static const std::vector<Spectrum> spectra = [] {
    const SubstanceLibrary& lib = library();
    std::vector<Spectrum> out;
    Mix mix{12345};
    for (std::uint64_t i = 0; i < 256; ++i) {
      const IonMode mode = i % 4 == 3 ? IonMode::kNegative : IonMode::kPositive;
      SynthParams p = *synthDefaults(lib, mode);
      p.seed = 1000 + i;
      p.points = 2000;
      p.resolvingPower = 30.0 + 30.0 * mix.uniform();
      p.driftTempK += 10.0 * mix.uniform() - 5.0;
      p.pressureHpa += 40.0 * mix.uniform() - 20.0;
      std::vector<const Substance*> targets;
      for (const Substance& s : lib.substances()) {
        if (s.mode == mode && s.role == SubstanceRole::kTarget) targets.push_back(&s);
      }
      const int count = 1 + static_cast<int>(3.0 * mix.uniform());
      for (int k = 0; k < count; ++k) {
        const double amplitude = p.electronicNoise * (8.0 + 192.0 * mix.uniform());
        if (mix.uniform() < 0.15) {
          p.ions.push_back({0.9 + 0.8 * mix.uniform(), amplitude, {}});
        } else {
          const auto pick =
              static_cast<std::size_t>(mix.uniform() * static_cast<double>(targets.size()));
          p.ions.push_back({targets[pick]->k0, amplitude, {}});
        }
      }
      out.push_back(synthesize(p));
    }
    return out;
  }();
  return spectra;
}

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
