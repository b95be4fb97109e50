// ISO 6346 container numbers and IATA air waybills: published examples, every wrong
// check digit, transpositions, format errors with readable reasons, and a plain
// reference implementation written from the standard's table.
#include "lane/conveyance.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace lanegate::lane {
namespace {

// ISO 6346 letter values, written out from the standard's table.
const std::map<char, int> kLetterValues{
    {'A', 10}, {'B', 12}, {'C', 13}, {'D', 14}, {'E', 15}, {'F', 16}, {'G', 17}, {'H', 18}, {'I', 19},
    {'J', 20}, {'K', 21}, {'L', 23}, {'M', 24}, {'N', 25}, {'O', 26}, {'P', 27}, {'Q', 28}, {'R', 29},
    {'S', 30}, {'T', 31}, {'U', 32}, {'V', 34}, {'W', 35}, {'X', 36}, {'Y', 37}, {'Z', 38}};

int referenceCheckDigit(const std::string& first10) {
  int sum = 0, weight = 1;
  for (char c : first10) {
    sum += (std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : kLetterValues.at(c)) * weight;
    weight *= 2;
  }
  return sum % 11 % 10;
}

TEST(ContainerNumber, PublishedExamplesAreValid) {
  // CSQU3054383: the worked example of ISO 6346 (check digit 3).
  for (const char* id : {"CSQU3054383", "csqu 305438 3", "CSQU-305438-3"}) {
    const auto r = checkContainerNumber(id);
    EXPECT_TRUE(r.valid) << id << ": " << r.problem;
    EXPECT_EQ(r.normalized, "CSQU3054383");
  }
}

TEST(ContainerNumber, EveryOtherCheckDigitIsFlagged) {
  for (char d = '0'; d <= '9'; ++d) {
    if (d == '3') continue;
    const auto r = checkContainerNumber(std::string("CSQU305438") + d);
    EXPECT_FALSE(r.valid) << d;
    EXPECT_NE(r.problem.find("ISO 6346 gives 3"), std::string::npos) << r.problem;
  }
}

TEST(ContainerNumber, AgreesWithTheReferenceOnRandomNumbers) {
  std::mt19937 rng(6346);
  std::uniform_int_distribution<int> letter(0, 25), digit(0, 9), cat(0, 2);
  int tens = 0;  // sum mod 11 == 10 gives check digit 0: make sure it happens
  for (int n = 0; n < 2000; ++n) {
    std::string id;
    for (int i = 0; i < 3; ++i) id += static_cast<char>('A' + letter(rng));
    id += "UJZ"[cat(rng)];
    for (int i = 0; i < 6; ++i) id += static_cast<char>('0' + digit(rng));
    const int check = referenceCheckDigit(id);
    int sum = 0;
    for (std::size_t i = 0; i < 10; ++i)
      sum += (i < 4 ? kLetterValues.at(id[i]) : id[i] - '0') << i;
    tens += sum % 11 == 10;
    EXPECT_TRUE(checkContainerNumber(id + static_cast<char>('0' + check)).valid) << id << check;
    EXPECT_FALSE(checkContainerNumber(id + static_cast<char>('0' + (check + 1) % 10)).valid) << id;
  }
  EXPECT_GT(tens, 0);
}

TEST(ContainerNumber, AdjacentDigitTranspositionsAreCaught) {
  // Weights 2^i differ between neighbours, so swapping two different digits changes the sum.
  const std::string good = "CSQU3054383";
  for (std::size_t i = 4; i + 1 < 10; ++i) {
    std::string t = good;
    std::swap(t[i], t[i + 1]);
    if (t == good) continue;
    EXPECT_FALSE(checkContainerNumber(t).valid) << t;
  }
}

TEST(ContainerNumber, MalformedNumbersSayWhatIsWrong) {
  EXPECT_NE(checkContainerNumber("CSQU305438").problem.find("4 letters and 7 digits"), std::string::npos);
  EXPECT_NE(checkContainerNumber("CSQX3054383").problem.find("category letter must be U, J or Z"),
            std::string::npos);
  EXPECT_NE(checkContainerNumber("C5QU3054383").problem.find("4 letters"), std::string::npos);
  EXPECT_NE(checkContainerNumber("CSQU30543B3").problem.find("7 digits"), std::string::npos);
  EXPECT_FALSE(checkContainerNumber("").valid);
}

TEST(AirWaybill, Mod7CheckDigit) {
  // 020-12345675: serial 1234567 mod 7 = 5.
  const auto r = checkAirWaybill("020-1234 5675");
  EXPECT_TRUE(r.valid) << r.problem;
  EXPECT_EQ(r.normalized, "020-12345675");
  for (char d = '0'; d <= '9'; ++d) {
    if (d == '5') continue;
    const auto bad = checkAirWaybill(std::string("0201234567") + d);
    EXPECT_FALSE(bad.valid);
    EXPECT_NE(bad.problem.find("mod 7 gives 5"), std::string::npos) << bad.problem;
  }
  // A serial that is a multiple of 7 has check digit 0.
  EXPECT_TRUE(checkAirWaybill("176-70000000").valid);
  EXPECT_TRUE(checkAirWaybill("176-99999981").valid);  // 9999998 = 7 * 1428571 + 1
}

TEST(AirWaybill, MalformedNumbersSayWhatIsWrong) {
  EXPECT_NE(checkAirWaybill("020-1234567").problem.find("3 + 8 digits"), std::string::npos);
  EXPECT_NE(checkAirWaybill("02A-12345675").problem.find("3 + 8 digits"), std::string::npos);
}

}  // namespace
}  // namespace lanegate::lane
