#pragma once
// The one way to include Boost.Asio: Boost 1.74's Asio does not compile under C++20
// with g++ 12 unless <utility> comes first.
#include <utility>

#include <boost/asio.hpp>

namespace lanegate {
namespace asio = boost::asio;
}
