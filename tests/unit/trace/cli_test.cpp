#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "trace/cli.h"
#include "trace/synth.h"
#include "trace_test_support.h"

namespace lanegate::trace {
namespace {

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("lanegate_trace_cli_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    const SubstanceLibrary lib = testing::shippedLibrary();
    SynthParams p = *synthDefaults(lib, IonMode::kPositive);
    p.seed = 3;
    p.ions.push_back(*synthIon(lib, "cocaine", 800.0));
    write("hit.json", spectrumToJson(synthesize(p)));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const auto path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  int run(std::vector<std::string> args) {
    out_.str("");
    err_.str("");
    return imsCommand(args, out_, err_, testing::shippedLibraryPath());
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::filesystem::path dir_;
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(CliTest, AnalyzePrintsATable) {
  EXPECT_EQ(run({"analyze", path("hit.json")}), 0) << err_.str();
  EXPECT_NE(out_.str().find("HIT"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("cocaine  ALARM"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("(calibrant)"), std::string::npos) << out_.str();
}

// Issue 13: a spectrum file is capped before it is read or parsed (a 4000-point spectrum is
// ~30 kB); longer arrays within the cap are refused by the parser with the limit named.
TEST_F(CliTest, OversizedSpectraAreRefusedWithTheLimit) {
  std::string big = "{\"points\": [";
  for (int i = 0; i < 300000; ++i) big += "1000, ";
  big += "1], \"period_ns\": 12500}";
  write("big.json", big);
  EXPECT_EQ(run({"analyze", path("big.json")}), 1);
  EXPECT_NE(err_.str().find("bytes; at most 1048576)"), std::string::npos) << err_.str();
  EXPECT_NE(err_.str().find("big.json: file too large ("), std::string::npos) << err_.str();
  std::string longer = "{\"points\": [";
  for (int i = 0; i < 4000; ++i) longer += "1000, ";
  longer += "1], \"period_ns\": 12500}";
  write("long.json", longer);
  EXPECT_EQ(run({"analyze", path("long.json")}), 1);
  EXPECT_NE(err_.str().find("4001 points, at most 4000"), std::string::npos) << err_.str();
}

TEST_F(CliTest, AnalyzeJson) {
  EXPECT_EQ(run({"analyze", path("hit.json"), "--json"}), 0) << err_.str();
  const auto j = nlohmann::json::parse(out_.str());
  EXPECT_EQ(j["verdict"], "hit");
  EXPECT_EQ(j["substances"][0]["name"], "cocaine");
}

TEST_F(CliTest, LibraryOption) {
  const std::string lib = write("lib.yaml",
                                "substances:\n"
                                "  - {name: h, mode: positive, k0: 2.2, window: 0.15, role: reactant}\n"
                                "  - {name: n, mode: positive, k0: 1.86, window: 0.02, role: calibrant}\n"
                                "  - {name: coke, mode: positive, k0: 1.16}\n");
  EXPECT_EQ(run({"analyze", "--library", lib, path("hit.json"), "--json"}), 0) << err_.str();
  EXPECT_EQ(nlohmann::json::parse(out_.str())["substances"][0]["name"], "coke");
  EXPECT_EQ(run({"analyze", "--library=" + lib, path("hit.json")}), 0) << err_.str();
}

TEST_F(CliTest, BadInputExitsOneNamingFileAndProblem) {
  EXPECT_EQ(run({"analyze", path("missing.json")}), 1);
  EXPECT_EQ(err_.str(), path("missing.json") + ": cannot open\n");

  write("bad.json", R"({"points": [1, 70000], "period_ns": 12500, "mode": "positive"})");
  EXPECT_EQ(run({"analyze", path("bad.json")}), 1);
  EXPECT_EQ(err_.str(), path("bad.json") +
                            ": points: expected an array of integers 0..65535 (element 1 is 70000)\n");

  const std::string lib = write("broken.yaml", "substances:\n  - name: x\n    mode: positive\n    k0: no\n");
  EXPECT_EQ(run({"analyze", "--library", lib, path("hit.json")}), 1);
  EXPECT_EQ(err_.str(), lib + ":4: k0: expected a number\n");
}

TEST_F(CliTest, UsageErrorsExitTwo) {
  EXPECT_EQ(run({}), 2);
  EXPECT_NE(err_.str().find("Usage:"), std::string::npos);
  EXPECT_EQ(run({"analyse", path("hit.json")}), 2);
  EXPECT_EQ(run({"analyze"}), 2);
  EXPECT_EQ(run({"analyze", path("hit.json"), "--xml"}), 2);
  EXPECT_EQ(run({"analyze", path("hit.json"), path("hit.json")}), 2);
  EXPECT_EQ(run({"analyze", path("hit.json"), "--library"}), 2);
  EXPECT_EQ(run({"--help"}), 0);
  EXPECT_NE(out_.str().find("Usage:"), std::string::npos);
}

}  // namespace
}  // namespace lanegate::trace
