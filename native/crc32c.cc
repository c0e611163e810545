// CRC-32C (Castagnoli), as Kafka's RecordBatch v2 uses it. The SSE4.2 crc32
// instruction when the CPU has it (three streams at a time over long
// inputs), else slicing-by-8 tables; both exported so tests can check one
// against the other.
#include <cstring>

#include "common.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace seglog {

namespace {

constexpr uint32_t kPoly = 0x82F63B78;  // reflected Castagnoli polynomial

struct Tables {
  uint32_t t[8][256];
  Tables() {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
      for (int s = 1; s < 8; s++) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
    }
  }
};
const Tables tables;

uint32_t Software(uint32_t crc, const uint8_t* p, size_t n) {
  while (n >= 8) {
    uint64_t word;
    memcpy(&word, p, 8);  // little-endian host assumed (x86-64, arm64)
    word ^= crc;
    crc = tables.t[7][word & 0xFF] ^ tables.t[6][(word >> 8) & 0xFF] ^ tables.t[5][(word >> 16) & 0xFF] ^
          tables.t[4][(word >> 24) & 0xFF] ^ tables.t[3][(word >> 32) & 0xFF] ^ tables.t[2][(word >> 40) & 0xFF] ^
          tables.t[1][(word >> 48) & 0xFF] ^ tables.t[0][word >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) crc = (crc >> 8) ^ tables.t[0][(crc ^ *p++) & 0xFF];
  return crc;
}

#if defined(__x86_64__)
// The crc32 instruction has a latency of 3 cycles and a throughput of 1: three
// independent streams over three adjacent stripes keep it busy. The register
// is linear in its start value, so the stripes' results are joined by
// advancing one over the next stripe's length (as if that many zero bytes
// followed) and xoring in the next.
constexpr size_t kStripe = 1024;
constexpr size_t kPrefetchAhead = 2 * 3 * kStripe;

__attribute__((target("sse4.2"))) uint64_t Stream(uint64_t c, const uint8_t* p, size_t n) {
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t word;
    memcpy(&word, p, 8);
    c = _mm_crc32_u64(c, word);
  }
  return c;
}

// Advancing a register over kStripe zero bytes, as four byte-indexed tables.
struct Advance {
  uint32_t t[4][256];
  Advance() {
    static const uint8_t zeros[kStripe] = {};
    uint32_t column[32];
    for (int bit = 0; bit < 32; bit++) column[bit] = static_cast<uint32_t>(StreamIfHardware(uint32_t{1} << bit, zeros));
    for (int k = 0; k < 4; k++) {
      for (uint32_t b = 0; b < 256; b++) {
        uint32_t v = 0;
        for (int bit = 0; bit < 8; bit++) {
          if (b & (1u << bit)) v ^= column[k * 8 + bit];
        }
        t[k][b] = v;
      }
    }
  }
  uint32_t operator()(uint32_t c) const { return t[0][c & 0xFF] ^ t[1][(c >> 8) & 0xFF] ^ t[2][(c >> 16) & 0xFF] ^ t[3][c >> 24]; }
  // Without SSE4.2 the tables are never used; Software gives the same register.
  static uint64_t StreamIfHardware(uint32_t c, const uint8_t* zeros) {
    return __builtin_cpu_supports("sse4.2") ? Stream(c, zeros, kStripe) : Software(c, zeros, kStripe);
  }
};
const Advance advance;

__attribute__((target("sse4.2"))) uint32_t Hardware(uint32_t crc, const uint8_t* p, size_t n) {
  uint64_t c = crc;
  for (; n >= 3 * kStripe; p += 3 * kStripe, n -= 3 * kStripe) {
    // Asks for the lines kPrefetchAhead bytes on now: the hardware prefetcher stops at page boundaries,
    // and a batch in the page cache is pages scattered in memory, so cold input ran at about half the speed.
    for (size_t k = kPrefetchAhead; k < kPrefetchAhead + 3 * kStripe && k < n; k += 64) __builtin_prefetch(p + k);
    uint64_t a = c, b = 0, d = 0;
    for (size_t i = 0; i < kStripe; i += 8) {
      uint64_t wa, wb, wd;
      memcpy(&wa, p + i, 8);
      memcpy(&wb, p + kStripe + i, 8);
      memcpy(&wd, p + 2 * kStripe + i, 8);
      a = _mm_crc32_u64(a, wa);
      b = _mm_crc32_u64(b, wb);
      d = _mm_crc32_u64(d, wd);
    }
    c = advance(advance(static_cast<uint32_t>(a)) ^ static_cast<uint32_t>(b)) ^ static_cast<uint32_t>(d);
  }
  c = Stream(c, p, n);
  p += n & ~size_t{7};
  n &= 7;
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n--) c32 = _mm_crc32_u8(c32, *p++);
  return c32;
}
const bool hasHardware = __builtin_cpu_supports("sse4.2");
#else
uint32_t Hardware(uint32_t crc, const uint8_t* p, size_t n) { return Software(crc, p, n); }
const bool hasHardware = false;
#endif

// crc32c(bytes, seed) -> CRC of bytes, continuing from seed (0 to start).
template <bool kForceSoftware>
Napi::Value Crc32c(const Napi::CallbackInfo& info) {
  uint8_t* data;
  size_t length;
  int64_t seed;
  if (!ArgBytes(info, 0, &data, &length) || !ArgInt(info, 1, &seed)) return info.Env().Undefined();
  uint32_t crc = ~static_cast<uint32_t>(seed);
  crc = (!kForceSoftware && hasHardware) ? Hardware(crc, data, length) : Software(crc, data, length);
  return Napi::Number::New(info.Env(), static_cast<double>(~crc));
}

}  // namespace

void InitCrc32c(Napi::Env env, Napi::Object exports) {
  exports.Set("crc32c", Napi::Function::New(env, Crc32c<false>, "crc32c"));
  exports.Set("crc32cSoftware", Napi::Function::New(env, Crc32c<true>, "crc32cSoftware"));
  exports.Set("crc32cHardware", Napi::Boolean::New(env, hasHardware));
}

}  // namespace seglog
