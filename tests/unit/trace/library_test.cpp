#include <string>

#include <gtest/gtest.h>

#include "trace/library.h"
#include "trace_test_support.h"

namespace lanegate::trace {
namespace {

std::string errorOf(const std::string& yaml) {
  auto r = SubstanceLibrary::parse(yaml, "substances.yaml");
  EXPECT_FALSE(r.has_value()) << "parsed unexpectedly:\n" << yaml;
  return r ? std::string() : r.error();
}

const char* const kReferences =
    "substances:\n"
    "  - name: hydronium\n"       // line 2
    "    mode: positive\n"
    "    role: reactant\n"
    "    k0: 2.2\n"
    "    window: 0.15\n"
    "  - name: nicotinamide\n"    // line 7
    "    mode: positive\n"
    "    role: calibrant\n"
    "    k0: 1.86\n";

TEST(SubstanceLibrary, ShippedLibraryHasEverySubstanceTheIssueNames) {
  const SubstanceLibrary lib = testing::shippedLibrary();
  for (const char* name : {"cocaine", "methamphetamine", "amphetamine", "MDMA", "heroin", "fentanyl",
                           "carfentanil", "acetylfentanyl", "ketamine"}) {
    const Substance* s = lib.find(name, IonMode::kPositive);
    ASSERT_NE(s, nullptr) << name;
    EXPECT_EQ(s->role, SubstanceRole::kTarget) << name;
  }
  for (const char* name : {"TNT", "RDX", "PETN"}) {
    ASSERT_NE(lib.find(name, IonMode::kNegative), nullptr) << name;
  }
  ASSERT_NE(lib.calibrant(IonMode::kPositive), nullptr);
  EXPECT_EQ(lib.calibrant(IonMode::kPositive)->name, "nicotinamide");
  EXPECT_NEAR(lib.calibrant(IonMode::kPositive)->k0, 1.86, 1e-9);
  EXPECT_NE(lib.calibrant(IonMode::kNegative), nullptr);
  EXPECT_NE(lib.reactant(IonMode::kPositive), nullptr);
  EXPECT_NE(lib.reactant(IonMode::kNegative), nullptr);
}

TEST(SubstanceLibrary, ShippedTargetWindowsDoNotOverlapWithinAMode) {
  const SubstanceLibrary lib = testing::shippedLibrary();
  for (const Substance& a : lib.substances()) {
    for (const Substance& b : lib.substances()) {
      if (&a == &b || a.mode != b.mode || a.role != SubstanceRole::kTarget ||
          b.role != SubstanceRole::kTarget) {
        continue;
      }
      EXPECT_GE(std::abs(a.k0 - b.k0), a.window + b.window) << a.name << " vs " << b.name;
    }
  }
}

TEST(SubstanceLibrary, DefaultsApplyAndEntriesOverride) {
  auto lib = SubstanceLibrary::parse(
      std::string("defaults:\n  window: 0.004\n  min_amplitude: 77\n  min_snr: 6\n") + kReferences +
          "  - name: cocaine\n    mode: positive\n    k0: 1.16\n"
          "  - name: heroin\n    mode: positive\n    k0: 1.05\n    window: 0.003\n    min_snr: 9\n",
      "substances.yaml");
  ASSERT_TRUE(lib.has_value()) << lib.error();
  const Substance* cocaine = lib->find("cocaine");
  ASSERT_NE(cocaine, nullptr);
  EXPECT_DOUBLE_EQ(cocaine->window, 0.004);
  EXPECT_DOUBLE_EQ(cocaine->minAmplitude, 77.0);
  EXPECT_DOUBLE_EQ(cocaine->minSnr, 6.0);
  EXPECT_EQ(cocaine->line, 15);
  const Substance* heroin = lib->find("heroin");
  ASSERT_NE(heroin, nullptr);
  EXPECT_DOUBLE_EQ(heroin->window, 0.003);
  EXPECT_DOUBLE_EQ(heroin->minSnr, 9.0);
  EXPECT_DOUBLE_EQ(lib->defaultMinSnr(), 6.0);
}

TEST(SubstanceLibrary, SyntaxErrorHasLine) {
  EXPECT_EQ(errorOf("substances:\n  - name: cocaine\n    k0: [1.16\n"),
            "substances.yaml:4: end of sequence flow not found");
}

TEST(SubstanceLibrary, ValueErrorsHaveLines) {
  const std::string base = kReferences;
  EXPECT_EQ(errorOf(base + "  - name: cocaine\n    mode: positive\n    k0: fast\n"),
            "substances.yaml:13: k0: expected a number");
  EXPECT_EQ(errorOf(base + "  - name: cocaine\n    mode: positive\n    k0: 9\n"),
            "substances.yaml:13: k0: 9 is outside 0.1..5");
  EXPECT_EQ(errorOf(base + "  - name: cocaine\n    mode: neutral\n    k0: 1.16\n"),
            "substances.yaml:12: mode: expected 'positive' or 'negative'");
  EXPECT_EQ(errorOf(base + "  - name: cocaine\n    mode: positive\n    k0: 1.16\n    windw: 0.1\n"),
            "substances.yaml:14: unknown key 'windw'");
  EXPECT_EQ(errorOf(base + "  - name: cocaine\n    mode: positive\n    k0: 1.16\n    role: drug\n"),
            "substances.yaml:14: role: expected 'target', 'calibrant' or 'reactant'");
  EXPECT_EQ(errorOf(base + "  - name: cocaine\n    mode: positive\n"),
            "substances.yaml:11: cocaine: k0 missing");
  EXPECT_EQ(errorOf(base + "  - name: cocaine\n    k0: 1.16\n"),
            "substances.yaml:11: cocaine: mode missing");
  EXPECT_EQ(errorOf(base + "  - name: cocaine\n    mode: positive\n    k0: 1.16\n    window: 2\n"),
            "substances.yaml:14: window: 2 is outside 0.000001..1");
}

TEST(SubstanceLibrary, StructureErrorsHaveLines) {
  const std::string base = kReferences;
  EXPECT_EQ(errorOf(base + "  - name: nicotinamide\n    mode: positive\n    k0: 1.2\n"),
            "substances.yaml:11: nicotinamide: duplicate positive-mode entry");
  EXPECT_EQ(errorOf(base + "  - name: other\n    mode: positive\n    k0: 1.9\n    role: calibrant\n"),
            "substances.yaml:11: other: a second positive-mode calibrant (first: nicotinamide at line 7)");
  EXPECT_EQ(errorOf(base + "  - name: TNT\n    mode: negative\n    k0: 1.53\n"),
            "substances.yaml:11: negative-mode targets (TNT, ...) but no negative-mode calibrant entry");
  EXPECT_EQ(errorOf("substances: []\n"), "substances.yaml:1: substances: expected a non-empty list");
  EXPECT_EQ(errorOf("substance:\n  - name: x\n"), "substances.yaml:1: unknown key 'substance'");
  EXPECT_EQ(errorOf("substances:\n  - {name: a, mode: positive, k0: 1.5, role: reactant}\n"
                    "  - {name: b, mode: positive, k0: 1.86, role: calibrant}\n"
                    "  - {name: c, mode: positive, k0: 1.1}\n"),
            "substances.yaml:2: a: the reactant ion must be faster (higher k0) than the calibrant b, "
            "with non-overlapping windows");
}

TEST(SubstanceLibrary, WithoutAWatchKeyTheFentanylWindowApplies) {
  auto lib = SubstanceLibrary::parse(kReferences, "substances.yaml");
  ASSERT_TRUE(lib.has_value()) << lib.error();
  ASSERT_EQ(lib->watchWindows().size(), 1u);
  const WatchWindow& w = lib->watchWindows().front();
  EXPECT_EQ(w.mode, IonMode::kPositive);
  EXPECT_DOUBLE_EQ(w.k0Min, 0.90);
  EXPECT_DOUBLE_EQ(w.k0Max, 1.11);
  EXPECT_EQ(w.line, 0);
  EXPECT_EQ(lib->watchWindowAt(IonMode::kPositive, 1.0, 1.0), &w);
  EXPECT_EQ(lib->watchWindowAt(IonMode::kPositive, 1.12, 1.2), nullptr);
  EXPECT_EQ(lib->watchWindowAt(IonMode::kPositive, 1.10, 1.2), &w);  // a span that reaches in
  EXPECT_EQ(lib->watchWindowAt(IonMode::kNegative, 1.0, 1.0), nullptr);
}

TEST(SubstanceLibrary, ShippedLibraryWatchesTheFentanylFamilyExplicitly) {
  const SubstanceLibrary lib = testing::shippedLibrary();
  ASSERT_EQ(lib.watchWindows().size(), 1u);
  const WatchWindow& shipped = lib.watchWindows().front();
  const WatchWindow fallback = defaultWatchWindow();
  EXPECT_GT(shipped.line, 0);
  EXPECT_EQ(shipped.mode, fallback.mode);
  EXPECT_DOUBLE_EQ(shipped.k0Min, fallback.k0Min);
  EXPECT_DOUBLE_EQ(shipped.k0Max, fallback.k0Max);
  EXPECT_EQ(shipped.name, fallback.name);
  // Every fentanyl-family target lies inside it.
  for (const char* name : {"fentanyl", "carfentanil", "acetylfentanyl"}) {
    const Substance* s = lib.find(name, IonMode::kPositive);
    ASSERT_NE(s, nullptr) << name;
    EXPECT_EQ(lib.watchWindowAt(IonMode::kPositive, s->k0, s->k0), &shipped) << name;
  }
}

TEST(SubstanceLibrary, ExplicitWatchListReplacesTheDefault) {
  auto lib = SubstanceLibrary::parse(
      std::string("watch:\n"
                  "  - {mode: negative, k0_min: 1.2, k0_max: 1.3}\n"  // line 2
                  "  - name: nitazenes\n"                             // line 3
                  "    mode: positive\n"
                  "    k0_min: 0.85\n"
                  "    k0_max: 0.95\n"
                  "    reason: potent opioids\n") +
          kReferences,
      "substances.yaml");
  ASSERT_TRUE(lib.has_value()) << lib.error();
  ASSERT_EQ(lib->watchWindows().size(), 2u);
  const WatchWindow& negative = lib->watchWindows()[0];
  EXPECT_EQ(negative.mode, IonMode::kNegative);
  EXPECT_DOUBLE_EQ(negative.k0Min, 1.2);
  EXPECT_DOUBLE_EQ(negative.k0Max, 1.3);
  EXPECT_TRUE(negative.name.empty());
  EXPECT_EQ(negative.line, 2);
  EXPECT_EQ(negative.describe(), "(negative, K0 1.2-1.3)");
  const WatchWindow& positive = lib->watchWindows()[1];
  EXPECT_EQ(positive.name, "nitazenes");
  EXPECT_EQ(positive.reason, "potent opioids");
  EXPECT_EQ(positive.line, 3);
  EXPECT_EQ(positive.describe(), "'nitazenes' (positive, K0 0.85-0.95)");
  EXPECT_EQ(lib->watchWindowAt(IonMode::kPositive, 1.0, 1.0), nullptr);  // the default is gone
  EXPECT_EQ(lib->watchWindowAt(IonMode::kPositive, 0.9, 0.9), &positive);
  EXPECT_EQ(lib->watchWindowAt(IonMode::kNegative, 1.25, 1.25), &negative);
}

TEST(SubstanceLibrary, EmptyWatchListMeansNoWindow) {
  auto lib = SubstanceLibrary::parse(std::string("watch: []\n") + kReferences, "substances.yaml");
  ASSERT_TRUE(lib.has_value()) << lib.error();
  EXPECT_TRUE(lib->watchWindows().empty());
  EXPECT_EQ(lib->watchWindowAt(IonMode::kPositive, 1.0, 1.0), nullptr);
}

TEST(SubstanceLibrary, WatchErrorsHaveLines) {
  // Each: the `watch:` text (the references follow it), the error.
  const std::pair<const char*, const char*> cases[] = {
      {"watch:\n  - {mode: positive, k0_min: 0.9, k0_max: 1.1, k0max: 2}\n",
       "substances.yaml:2: watch: unknown key 'k0max'"},
      {"watch:\n  - mode: positive\n    k0_min: 1.1\n    k0_max: 0.9\n",
       "substances.yaml:2: watch: k0_min 1.1 must be below k0_max 0.9"},
      {"watch:\n  - {mode: positive, k0_min: 1.0, k0_max: 1.0}\n",
       "substances.yaml:2: watch: k0_min 1 must be below k0_max 1"},
      {"watch:\n  - mode: positive\n    k0_min: 0.05\n    k0_max: 0.9\n",
       "substances.yaml:3: watch.k0_min: 0.05 is outside 0.1..5"},
      {"watch:\n  - mode: positive\n    k0_min: 0.9\n    k0_max: high\n",
       "substances.yaml:4: watch.k0_max: expected a number"},
      {"watch:\n  - mode: neutral\n    k0_min: 0.9\n    k0_max: 1.1\n",
       "substances.yaml:2: watch.mode: expected 'positive' or 'negative'"},
      {"watch:\n  - {k0_min: 0.9, k0_max: 1.1}\n", "substances.yaml:2: watch: mode missing"},
      {"watch:\n  - {mode: positive, k0_max: 1.1}\n", "substances.yaml:2: watch: k0_min missing"},
      {"watch:\n  - {mode: positive, k0_min: 0.9, k0_max: 1.1, name: ''}\n",
       "substances.yaml:2: watch.name: expected a non-empty string"},
      {"watch:\n  - positive\n", "substances.yaml:2: watch: expected a mapping"},
      {"watch:\n", "substances.yaml:1: watch: expected a list of windows ([] for none)"},
      {"watch: {mode: positive}\n",
       "substances.yaml:1: watch: expected a list of windows ([] for none)"},
  };
  for (const auto& [watch, error] : cases) {
    EXPECT_EQ(errorOf(watch + std::string(kReferences)), error) << watch;
  }
}

TEST(SubstanceLibrary, UsesTheCallersFileName) {
  auto r = SubstanceLibrary::parse("substances: 3\n", "/etc/lanegate/site.yaml");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), "/etc/lanegate/site.yaml:1: substances: expected a non-empty list");
}

}  // namespace
}  // namespace lanegate::trace
