#include "proxyselect/rendezvous.h"

#include <algorithm>
#include <utility>

namespace nighfs::proxyselect {

uint64_t Fnv1a64(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::vector<size_t> RendezvousOrder(const std::vector<uint64_t>& member_hashes, uint64_t id) {
  std::vector<std::pair<uint64_t, size_t>> weighted;
  weighted.reserve(member_hashes.size());
  for (size_t i = 0; i < member_hashes.size(); ++i) {
    weighted.emplace_back(RendezvousWeight(member_hashes[i], id), i);
  }
  // Highest weight first; equal weights in index order, so the order is total and stable.
  std::sort(weighted.begin(), weighted.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::vector<size_t> order;
  order.reserve(weighted.size());
  for (const auto& [w, i] : weighted) order.push_back(i);
  return order;
}

}  // namespace nighfs::proxyselect
