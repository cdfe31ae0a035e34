// The packed layout of LutGemm weights: bit planes (versions 1 and 2) and ternary triples
// (version 3).
// docs/packed-format.md is the specification; tmac_ort/packing.py is the one packer.
// Everything here is plain arithmetic so that the scalar kernel, the SIMD kernels and
// the op's validation agree on sizes and positions.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

namespace tmac {

constexpr int kLayoutVersion = 2;      // what the packer writes; version 1 is still read
constexpr int kOldestLayoutVersion = 1;
constexpr int kTernaryLayout = 3;      // ternary weights as base-3 triples, written on request
constexpr int kNewestLayoutVersion = kTernaryLayout;
constexpr int kTileN = 32;          // output channels per tile
constexpr int kStepK = 8;           // reduction elements per step: two quads of four
constexpr int kQuadK = 4;           // activations per lookup table
constexpr int kTableBytes = 16;     // int8 entries per lookup table
constexpr int kMaxBlockK = 256;     // longest run of K summed in int16 before flushing to fp32
constexpr int kChunkK = 512;        // layout 2: K per chunk, rounded down to whole blocks
// Layout 3: a step is 12 k, four triples of three k, for 32 channels: two halves of 16
// channels, each 64 five-bit fields (lane 4c + j: channel c, triple j) in 40 bytes.  A triple's
// table has 32 int8 entries (27 used), so a step's tables are 128 bytes.
constexpr int kTripleK = 3;
constexpr int kTripleStepK = 12;
constexpr int kTripleStepBytes = 80;
constexpr int kTripleTableBytes = 32;
constexpr int kTripleFields = 27;  // 3^3; fields 27-31 read as 13, three zero weights
// Layout 3's blocks where the group is the whole row: 21 whole steps, no padding (256 k would
// be 22 steps with 8 k of zero weights: 1.72 bits a weight instead of 1.67).
constexpr int kTripleRowBlockK = 252;

// Geometry of one LutGemm weight, derived from the node attributes.
struct Geometry {
  int64_t K = 0, N = 0;
  int bits = 0;
  int64_t group_size = 0;
  int64_t K_pad = 0, N_pad = 0;     // padded to whole steps / tiles
  int64_t n_tiles = 0, k_steps = 0;
  int64_t n_groups = 0;
  int64_t block_k = 0, n_blocks = 0;  // table-quantisation / int16-accumulation blocks
  bool triples = false;  // layout 3: steps of four ternary triples (else of two quads)
  // Layout 2 stores the planes K-chunk by K-chunk (every tile's steps of a chunk, then the
  // next chunk); layout 1 is one chunk of all k_steps.  Chunks hold whole blocks.
  int64_t chunk_steps = 0;
  int64_t step_bytes() const { return triples ? kTripleStepBytes : int64_t(kTileN) * bits; }
  // Table bytes per step of one activation row: two quads' or four triples' tables.
  int64_t table_step_bytes() const { return triples ? 4 * kTripleTableBytes : 2 * kTableBytes; }
  int64_t tile_bytes() const { return k_steps * step_bytes(); }  // one tile's steps, all chunks
  int64_t n_chunks() const { return (k_steps + chunk_steps - 1) / chunk_steps; }
  // Blocks per chunk (layout 1's one chunk: all of them, the last maybe short).
  int64_t chunk_blocks() const { return (chunk_steps + block_steps() - 1) / block_steps(); }
  // Steps of chunk c (the last chunk may be shorter).
  int64_t chunk_length(int64_t c) const { return c + 1 < n_chunks() ? chunk_steps : k_steps - c * chunk_steps; }
  // Entry (32 channels) of tile t's per-group values for group grp in the kernels' copies of
  // scales, constants and zero points: [tile][group] in layout 1; in layout 2, where a chunk
  // holds whole groups, chunk by chunk as the planes (a tile's groups of a chunk together).
  // (Two divisions: a kernel should step through entries rather than call this per block.)
  int64_t group_entry(int64_t t, int64_t grp) const {
    const int64_t chunk_k = chunk_blocks() * block_k;
    if (chunk_steps == k_steps || chunk_k % group_size) return t * n_groups + grp;
    const int64_t per_chunk = chunk_k / group_size, first = grp / per_chunk * per_chunk;
    return first * n_tiles + t * std::min(per_chunk, n_groups - first) + (grp - first);
  }
  // Step s of tile t; steps s.. of the same chunk follow it.
  int64_t step_offset(int64_t t, int64_t s) const {
    const int64_t c = s / chunk_steps;
    return (c * n_tiles * chunk_steps + t * chunk_length(c) + (s - c * chunk_steps)) * step_bytes();
  }
  // Steps of a whole block (layout 3: the block padded with zero weights to whole steps).
  int64_t block_steps() const { return triples ? (block_k + kTripleStepK - 1) / kTripleStepK : block_k / kStepK; }
  int64_t group_of_block(int64_t b) const { return (b * block_k) / group_size; }
  // Blocks never straddle groups: a group is one block, a whole number of blocks, or the row
  // (the last group may have fewer blocks).
  int64_t blocks_per_group() const { return group_size == K ? n_blocks : group_size / block_k; }
};

// The inverse of SlotOf (below) for the first quad of a step: where plane p of channel c sits
// (the second quad's nibble is 16 bytes further on).
struct NibblePosition {
  int byte = 0;
  bool high = false;
};

// Positions indexed [plane * kTileN + channel], planes 0..bits-1.
using NibbleMap = std::array<NibblePosition, 4 * kTileN>;

struct NibbleSlot {
  int plane;
  int channel;  // 0..31 within the tile
};

// The functions have internal linkage: this header is included by the kernels' files, each
// compiled with its own ISA flags, and an inline function with external linkage would be a
// weak symbol the linker merges across them (custom_ops/tests/kernel_check.sh checks).
namespace {

// The group of block b and where its per-group values sit (Geometry::group_entry) for any
// tile, moved along block by block: set up once per call for its first block and copied for
// each tile, it costs no division per block or tile (a 4-bit tile's part of a 512-wide chunk
// is ~1000 cycles, and the divisions of group_entry per tile cost 7% of it).
//
// The block counts are kept, not asked of the Geometry: its blocks_per_group() and
// chunk_blocks() divide, and at group 32 every block changes group (Zen 4, 2-bit 4096x4096
// GEMV at group 32: two 64-bit divisions a block held about 6% of `perf`'s samples; kept
// here, the GEMV took 0.94-0.96x the time, 0.97-0.98x with zero points).
class GroupCursor {
 public:
  GroupCursor(const Geometry& g, int64_t b)
      : g_(&g), blocks_per_group_(g.blocks_per_group()), chunk_blocks_(g.chunk_blocks()),
        group_(g.group_of_block(b)), blocks_left_in_group_(blocks_per_group_ - (b - group_ * blocks_per_group_)),
        blocks_left_in_chunk_(chunk_blocks_ - b % chunk_blocks_) {
    Locate();
  }
  bool ChunkStart() const { return blocks_left_in_chunk_ == chunk_blocks_; }
  int64_t Entry(int64_t t) const { return base_ + t * stride_ + group_; }
  void NextBlock() {
    if (--blocks_left_in_group_ == 0) {
      ++group_;
      blocks_left_in_group_ = blocks_per_group_;
    }
    if (--blocks_left_in_chunk_ == 0) {
      blocks_left_in_chunk_ = chunk_blocks_;
      Locate();
    }
  }

 private:
  // Entry(t) = group_entry(t, group) for the groups of the current chunk: linear in t and group.
  void Locate() {
    base_ = g_->group_entry(0, group_) - group_;
    stride_ = g_->group_entry(1, group_) - g_->group_entry(0, group_);
  }
  const Geometry* g_;
  int64_t blocks_per_group_, chunk_blocks_;
  int64_t group_, blocks_left_in_group_, blocks_left_in_chunk_;
  int64_t base_ = 0, stride_ = 0;
};

// Step s of every tile: planes + first + t * stride (within one K-chunk the tiles' parts are
// equally long), found once for a call instead of with step_offset's divisions per tile.
struct StepOfTiles {
  int64_t first, stride;
  StepOfTiles(const Geometry& g, int64_t s) : first(g.step_offset(0, s)), stride(g.step_offset(1, s) - first) {}
  const uint8_t* In(const uint8_t* planes, int64_t t) const { return planes + first + t * stride; }
};

// Prefetches into L1 the `bytes` of planes after tile t's steps up to s1: its next block, or
// at the tile's end the next tile's first (nothing after the last tile).  The int8 paths fetch
// a block while they multiply the one before: without it a decode waited on every block's
// first loads (AVX-512, M=8, 4096x4096, 4 bits: 29% of the samples on one load).
inline void PrefetchNextBlock(const Geometry& g, const uint8_t* planes, int64_t t, int64_t s1, int64_t bytes) {
  const bool last_block = s1 == g.k_steps;
  if (last_block && t + 1 == g.n_tiles) return;
  const uint8_t* next = planes + (last_block ? g.step_offset(t + 1, 0) : g.step_offset(t, s1));
  for (int64_t i = 0; i < bytes; i += 64) __builtin_prefetch(next + i, 0, 3);
}

// Fills `g` from K, N, bits and group size; returns nullptr or a message saying what is wrong.
inline const char* MakeGeometry(int64_t K, int64_t N, int64_t bits, int64_t group_size, Geometry* g,
                                int64_t layout_version = kLayoutVersion) {
  if (layout_version < kOldestLayoutVersion || layout_version > kNewestLayoutVersion)
    return "layout_version must be 1, 2 or 3";
  if (bits < 1 || bits > 4) return "bits must be 1, 2, 3 or 4";
  if (layout_version == kTernaryLayout && bits != 2) return "layout 3 holds ternary weights: bits must be 2";
  if (K <= 0 || N <= 0) return "K and N must be positive";
  if (K > (int64_t(1) << 31) || N > (int64_t(1) << 31)) return "K and N must be below 2^31";
  if (group_size <= 0) return "group_size must be positive";
  // The last group may be shorter than the others (K not a multiple of group_size), as in
  // MatMulNBits: n_groups = ceil(K / group_size).
  const bool whole_row = group_size == K;
  if (!whole_row && group_size % kStepK != 0) return "group_size must be a multiple of 8 (or equal K)";
  int64_t block_k;
  if (group_size <= kMaxBlockK && group_size % kStepK == 0) {
    block_k = group_size;
  } else if (group_size % kMaxBlockK == 0 || whole_row) {
    block_k = kMaxBlockK;
  } else {
    return "group_size above 256 must be a multiple of 256 (or equal K)";
  }
  g->K = K;
  g->N = N;
  g->bits = int(bits);
  g->group_size = group_size;
  g->K_pad = (K + kStepK - 1) / kStepK * kStepK;
  g->N_pad = (N + kTileN - 1) / kTileN * kTileN;
  g->n_tiles = g->N_pad / kTileN;
  g->k_steps = g->K_pad / kStepK;
  g->n_groups = (K + group_size - 1) / group_size;
  g->triples = layout_version == kTernaryLayout;
  if (g->triples && whole_row) block_k = kTripleRowBlockK;
  g->block_k = block_k;
  // (the same count from K_pad when block_k is a multiple of 8; 252 needs K: K = 252 has
  // K_pad = 256, which would make an empty second block)
  g->n_blocks = ((g->triples ? K : g->K_pad) + block_k - 1) / block_k;
  if (g->triples) {  // every block's k below K in whole steps; the last block may be shorter
    const int64_t last = K - (g->n_blocks - 1) * block_k;
    g->k_steps = (g->n_blocks - 1) * g->block_steps() + (last + kTripleStepK - 1) / kTripleStepK;
  }
  g->chunk_steps = layout_version == 1 ? g->k_steps : std::max<int64_t>(1, kChunkK / block_k) * g->block_steps();
  return nullptr;
}

// Where a 4-bit index lives inside one step of one tile (see docs/packed-format.md):
// planes are paired (2p, 2p+1) in "pair chunks" of 32 bytes covering 16 channels each;
// an odd top plane gets one "single chunk" covering all 32 channels.  Byte i of a chunk
// belongs to quad 2s + i/16 (the two 128-bit lanes hold the step's two quads).
inline int PairChunks(int bits) { return 2 * (bits / 2); }

// `byte` in [0, 32*bits) within a step, `high` selects the high nibble.
inline NibbleSlot SlotOf(int bits, int byte, bool high) {
  const int chunk = byte / 32;
  const int i = byte % 16;  // position inside the lane
  if (chunk < PairChunks(bits)) {
    const int pair = chunk / 2, half = chunk % 2;
    return {2 * pair + (i & 1), 16 * half + (high ? 8 : 0) + (i >> 1)};
  }
  return {bits - 1, (high ? 16 : 0) + (i & 1) * 8 + (i >> 1)};
}

inline int QuadInStep(int byte) { return (byte % 32) / 16; }

// Where each plane's nibble of each channel sits (see NibbleMap).
inline NibbleMap NibblePositions(int bits) {
  NibbleMap where{};
  for (int byte = 0; byte < kTileN * bits; ++byte) {
    if (QuadInStep(byte) != 0) continue;
    for (bool high : {false, true}) {
      const NibbleSlot slot = SlotOf(bits, byte, high);
      where[size_t(slot.plane) * kTileN + slot.channel] = {byte, high};
    }
  }
  return where;
}

// Layout 3: digit i (0..2) of a field, the q (0, 1, 2) of the triple's weight i.
constexpr int TripleDigit(int field, int i) { return (i == 0 ? field : i == 1 ? field / 3 : field / 9) % 3; }

// Layout 3: the field of channel c (0..31) and triple j (0..3) in a step's 80 bytes.
inline int TripleField(const uint8_t* step, int c, int j) {
  const int bit = 5 * (4 * (c % 16) + j), at = 40 * (c / 16) + bit / 8;
  const int two_bytes = step[at] | (bit % 8 > 3 ? step[at + 1] << 8 : 0);  // (a field spans two bytes only then)
  const int field = (two_bytes >> (bit % 8)) & 31;
  return field < kTripleFields ? field : 13;
}

// Layout 3: q[n, k] (0, 1, 2) read back from the triples.
inline int TripleQuantAt(const Geometry& g, const uint8_t* planes, int64_t n, int64_t k) {
  const int64_t b = k / g.block_k, in_block = k - b * g.block_k;
  const int64_t s = b * g.block_steps() + in_block / kTripleStepK;
  const int j = int(in_block % kTripleStepK) / kTripleK, digit = int(in_block % kTripleK);
  return TripleDigit(TripleField(planes + g.step_offset(n / kTileN, s), int(n % kTileN), j), digit);
}

// q[n, k] (0 .. 2^bits - 1) read back from the packed planes; `where` is NibblePositions(bits).
inline int QuantAt(const Geometry& g, const uint8_t* planes, const NibbleMap& where, int64_t n, int64_t k) {
  if (g.triples) return TripleQuantAt(g, planes, n, k);
  const uint8_t* step = planes + g.step_offset(n / kTileN, k / kStepK);
  const int lane = int(k % kStepK) / kQuadK, bit = int(k % kQuadK);
  int q = 0;
  for (int p = 0; p < g.bits; ++p) {
    const NibblePosition pos = where[size_t(p) * kTileN + n % kTileN];
    const uint8_t byte = step[pos.byte + 16 * lane];
    q |= (((pos.high ? byte >> 4 : byte & 15) >> bit) & 1) << p;
  }
  return q;
}

}  // namespace
}  // namespace tmac
