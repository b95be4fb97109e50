#pragma once
// The bench pool: 256 varied, realistic 2,000-point plasmagrams from trace/synth, built the
// same way every time. tests/bench/trace_bench.cpp times the analysis over it;
// trace_pool_dump prints the analysis of each (toJson(analyze())), which
// check_pool.py compares with bench_pool_analyses.sha256 so that a change meant to
// leave results alone (e.g. splitting trace/analysis.cpp by job) is shown to.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "trace/library.h"
#include "trace/spectrum.h"
#include "trace/synth.h"

namespace lanegate::trace::bench {

inline SubstanceLibrary loadLibrary() {
  std::ifstream in(std::string(LANEGATE_SOURCE_DIR) + "/config/ims/substances.yaml");
  std::stringstream text;
  text << in.rdbuf();
  auto lib = SubstanceLibrary::parse(text.str(), "substances.yaml");
  if (!lib) {
    std::fprintf(stderr, "bench pool: %s\n", lib.error().c_str());
    std::exit(1);
  }
  return *lib;
}

/// The shipped library (config/ims/substances.yaml).
inline const SubstanceLibrary& library() {
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
inline const std::vector<Spectrum>& pool() {
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

}  // namespace lanegate::trace::bench
