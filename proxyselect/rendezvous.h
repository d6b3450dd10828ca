// Rendezvous (highest-random-weight) hashing: which member of a proxy group is a block's home.
//
// Each (member, block) pair gets a pseudo-random 64-bit weight; a block's home is the member
// with the highest weight, the next-highest member takes it when the home is away, and so on.
// Removing a member moves only the blocks it was home of (each to its own next-highest member);
// adding one takes only the blocks for which it now weighs most (~1/(n+1) of them).
//
// The weights are part of the on-the-wire contract between mounts (two mounts of one volume must
// agree on a block's home so that its cached copy is found), so they are defined here exactly and
// must never change between versions or differ between processes:
//   block id    = FNV-1a-64 of the key's bytes (offset basis 0xcbf29ce484222325, prime
//                 0x100000001b3), or the id the caller already has;
//   member hash = FNV-1a-64 of the member's address exactly as configured ("HOST:PORT");
//   weight      = Mix64(member_hash XOR Mix64(block_id + 0x9e3779b97f4a7c15))
// where Mix64 is MurmurHash3's 64-bit finalizer (fmix64). No process-random seed is involved.
#ifndef NIGHFS_PROXYSELECT_RENDEZVOUS_H_
#define NIGHFS_PROXYSELECT_RENDEZVOUS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nighfs::proxyselect {

// MurmurHash3's fmix64: a bijection on 64 bits with full avalanche.
constexpr uint64_t Mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// FNV-1a, 64 bits.
uint64_t Fnv1a64(std::string_view bytes);

// The block id rendezvous hashing uses for an object key.
inline uint64_t KeyId(std::string_view key) { return Fnv1a64(key); }

// The weight of a member (by its hash, MemberHash(address)) for a block id.
inline uint64_t RendezvousWeight(uint64_t member_hash, uint64_t id) {
  return Mix64(member_hash ^ Mix64(id + 0x9e3779b97f4a7c15ULL));
}
inline uint64_t MemberHash(std::string_view address) { return Fnv1a64(address); }

// Indices into `member_hashes`, highest weight for `id` first (home, then the next...). Ties
// (equal weights: only for equal hashes, i.e. a duplicated address) keep index order.
std::vector<size_t> RendezvousOrder(const std::vector<uint64_t>& member_hashes, uint64_t id);

// The index of the home member among `member_hashes` for `id`, skipping those for which
// `eligible(i)` is false; -1 if none is eligible.
template <class Eligible>
int RendezvousHome(const std::vector<uint64_t>& member_hashes, uint64_t id, Eligible eligible) {
  int best = -1;
  uint64_t best_weight = 0;
  for (size_t i = 0; i < member_hashes.size(); ++i) {
    if (!eligible(i)) continue;
    const uint64_t w = RendezvousWeight(member_hashes[i], id);
    if (best < 0 || w > best_weight) {
      best = static_cast<int>(i);
      best_weight = w;
    }
  }
  return best;
}

}  // namespace nighfs::proxyselect

#endif  // NIGHFS_PROXYSELECT_RENDEZVOUS_H_
