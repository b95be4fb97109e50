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

TEST(SubstanceLibrary, UsesTheCallersFileName) {
  auto r = SubstanceLibrary::parse("substances: 3\n", "/etc/lanegate/site.yaml");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), "/etc/lanegate/site.yaml:1: substances: expected a non-empty list");
}

}  // namespace
}  // namespace lanegate::trace
