// CRC-32C (Castagnoli), as Kafka's RecordBatch v2 uses it. The SSE4.2 crc32
// instruction when the CPU has it, else slicing-by-8 tables; both exported
// so tests can check one against the other.
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
__attribute__((target("sse4.2"))) uint32_t HardwareSerial(uint32_t crc, const uint8_t* p, size_t n) {
  uint64_t c = crc;
  while (n >= 8) {
    uint64_t word;
    memcpy(&word, p, 8);
    c = _mm_crc32_u64(c, word);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n--) c32 = _mm_crc32_u8(c32, *p++);
  return c32;
}

// Multiplication of two polynomials modulo P (bit-reflected, as the CRC keeps them).
uint32_t MultiplyModP(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (int i = 0; i < 32; i++) {
    if (a & 0x80000000u) product ^= b;
    a <<= 1;
    b = (b & 1) ? (b >> 1) ^ kPoly : b >> 1;
  }
  return product;
}

// Shifting a CRC over kLane zero bytes is a multiplication by x^(8*kLane) mod P;
// a table per byte of the CRC turns it into four lookups.
constexpr size_t kLane = 4096;
struct ShiftTables {
  uint32_t t[4][256];
  ShiftTables() {
    uint32_t x = 0x80000000u;  // x^0
    for (size_t bit = 0; bit < 8 * kLane; bit++) x = (x & 1) ? (x >> 1) ^ kPoly : x >> 1;
    for (int k = 0; k < 4; k++) {
      for (uint32_t i = 0; i < 256; i++) t[k][i] = MultiplyModP(i << (8 * k), x);
    }
  }
};
const ShiftTables shift;

uint32_t Shift(uint32_t crc) {
  return shift.t[0][crc & 0xFF] ^ shift.t[1][(crc >> 8) & 0xFF] ^ shift.t[2][(crc >> 16) & 0xFF] ^ shift.t[3][crc >> 24];
}

// Three independent crc32 streams over adjacent lanes keep the instruction's
// three-cycle latency busy; the lanes are then joined by shifting.
__attribute__((target("sse4.2"))) uint32_t Hardware(uint32_t crc, const uint8_t* p, size_t n) {
  while (n >= 3 * kLane) {
    uint64_t a = crc, b = 0, c = 0;
    for (size_t i = 0; i < kLane; i += 8) {
      uint64_t wa, wb, wc;
      memcpy(&wa, p + i, 8);
      memcpy(&wb, p + kLane + i, 8);
      memcpy(&wc, p + 2 * kLane + i, 8);
      a = _mm_crc32_u64(a, wa);
      b = _mm_crc32_u64(b, wb);
      c = _mm_crc32_u64(c, wc);
    }
    crc = Shift(Shift(static_cast<uint32_t>(a)) ^ static_cast<uint32_t>(b)) ^ static_cast<uint32_t>(c);
    p += 3 * kLane;
    n -= 3 * kLane;
  }
  return HardwareSerial(crc, p, n);
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
