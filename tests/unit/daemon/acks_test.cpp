// The control room's ack as it arrives from the network (Contract 5 v1.1): the disposition
// is one of four words, `by` a short printable string; anything else refuses the whole ack
// with a reason that names the field and never quotes the payload.
#include "daemon/acks.h"

#include <gtest/gtest.h>

#include <vector>

namespace lanegate {
namespace {

const std::string kToken = "0123456789abcdef0123456789abcdef";

std::string ack(const std::string& extra) {
  return R"({"id":"a-1","ack_token":")" + kToken + "\"" + extra + "}";
}

TEST(Acks, DispositionAndByAreRead) {
  for (const auto d : kDispositions) {
    const auto a = parseAck(ack(R"(,"by":"op 7","disposition":")" + std::string(d) + "\""));
    ASSERT_TRUE(a) << a.error();
    EXPECT_EQ(a->disposition, d);
    EXPECT_EQ(a->by, "op 7");
  }
  const auto bare = parseAck(ack(""));
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->disposition, "");
  EXPECT_EQ(bare->by, "");
  const auto nulls = parseAck(ack(R"(,"by":null,"disposition":null,"time":"x","other":[1])"));
  ASSERT_TRUE(nulls) << "null and unknown keys are allowed";
}

TEST(Acks, UnknownDispositionOrBadByRefusesTheAck) {
  for (const std::string& extra : std::vector<std::string>{
           R"(,"disposition":"inspect")", R"(,"disposition":"")", R"(,"disposition":7)",
           R"(,"disposition":"Seized")", R"(,"disposition":["seized"])"}) {
    const auto a = parseAck(ack(extra));
    ASSERT_FALSE(a) << extra;
    EXPECT_NE(a.error().find("\"disposition\""), std::string::npos) << a.error();
    EXPECT_EQ(a.error().find("inspect"), std::string::npos) << "the payload is never quoted";
  }
  for (const std::string& extra :
       std::vector<std::string>{R"(,"by":"")", R"(,"by":42)", R"(,"by":"a\u0001b")",
                                ",\"by\":\"" + std::string(kMaxAckByBytes + 1, 'x') + "\""}) {
    const auto a = parseAck(ack(extra));
    ASSERT_FALSE(a) << extra;
    EXPECT_NE(a.error().find("\"by\""), std::string::npos) << a.error();
  }
  EXPECT_TRUE(parseAck(ack(",\"by\":\"" + std::string(kMaxAckByBytes, 'x') + "\"")));
}

}  // namespace
}  // namespace lanegate
