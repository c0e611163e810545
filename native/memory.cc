// Native memory handed to JS: file mappings and aligned buffers. Each region
// is exposed as one external ArrayBuffer. Releasing it explicitly frees the
// memory and detaches that ArrayBuffer, so every Buffer viewing it reads as
// length 0 instead of touching freed memory; otherwise its finalizer frees it.
// Private read mappings (mapPrivate) remember their file, so that a truncate
// can first turn their pages past the new end into zeros (coverMappings):
// touching a mapped page wholly past the end of a file raises SIGBUS.
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "common.h"

namespace seglog {

enum class Kind { kMapping, kAligned };

// Its finalizer may run after the environment's instance-data slot is gone
// (teardown), so it holds its own share of the Instance.
struct Region {
  std::shared_ptr<Instance> instance;
  Kind kind;
  uint8_t* base;
  size_t length;
  bool released = false;
  // Private read mappings only (see mapPrivate): the file, and where in it the mapping starts.
  bool cached = false;
  dev_t dev = 0;
  ino_t ino = 0;
  int64_t fileOffset = 0;
};

namespace {

int64_t ReleaseMemory(Region* r) {
  if (r->released) return 0;
  r->released = true;
  Instance* in = r->instance.get();
  in->regions.erase(r->base);
  if (r->kind == Kind::kMapping) {
    in->counters.liveMappings--;
    if (munmap(r->base, r->length) < 0) return NegErrno();
  } else {
    in->counters.liveAlignedBuffers--;
    free(r->base);
  }
  return 0;
}

void Finalize(napi_env, void*, void* hint) {
  auto* r = static_cast<Region*>(hint);
  ReleaseMemory(r);
  delete r;
}

// Wraps fresh memory in a Region and an external ArrayBuffer; on failure
// releases the memory and returns -errno.
Napi::Value Expose(Napi::Env env, Kind kind, uint8_t* base, size_t length, Region** out = nullptr) {
  const std::shared_ptr<Instance>& in = Of(env);
  auto* r = new (std::nothrow) Region{in, kind, base, length};
  if (out != nullptr) *out = r;
  if (r == nullptr) {
    if (kind == Kind::kMapping) munmap(base, length);
    else free(base);
    return Napi::Number::New(env, -ENOMEM);
  }
  (kind == Kind::kMapping ? in->counters.liveMappings : in->counters.liveAlignedBuffers)++;
  in->regions[base] = r;
  napi_value ab;
  if (napi_create_external_arraybuffer(env, base, length, Finalize, r, &ab) != napi_ok) {
    Finalize(env, base, r);
    return Napi::Number::New(env, -ENOMEM);
  }
  return Napi::Value(env, ab);
}

// Finds the live region an ArrayBuffer argument exposes, or fails with a TypeError.
bool ArgRegion(const Napi::CallbackInfo& info, size_t i, Kind kind, Napi::ArrayBuffer* ab, Region** out) {
  if (i >= info.Length() || !info[i].IsArrayBuffer()) return TypeFail(info.Env(), "expected an ArrayBuffer");
  *ab = info[i].As<Napi::ArrayBuffer>();
  auto& regions = Of(info.Env())->regions;
  auto it = regions.find(ab->Data());
  if (ab->Data() == nullptr || it == regions.end() || it->second->kind != kind) {
    return TypeFail(info.Env(), kind == Kind::kMapping ? "not a live mapping" : "not a live aligned buffer");
  }
  *out = it->second;
  return true;
}

bool ArgRange(const Napi::CallbackInfo& info, size_t i, Region* r, int64_t* offset, int64_t* length) {
  if (!ArgInt(info, i, offset) || !ArgInt(info, i + 1, length)) return false;
  if (*offset < 0 || *length < 0 || static_cast<uint64_t>(*offset + *length) > r->length) {
    return TypeFail(info.Env(), "range outside the mapping");
  }
  return true;
}

// mmap(fd, offset, length, writable) -> ArrayBuffer, or -errno.
Napi::Value Mmap(const Napi::CallbackInfo& info) {
  int64_t fd, offset, length;
  if (!ArgInt(info, 0, &fd) || !ArgInt(info, 1, &offset) || !ArgInt(info, 2, &length)) return info.Env().Undefined();
  if (info.Length() < 4 || !info[3].IsBoolean()) {
    TypeFail(info.Env(), "expected a boolean");
    return info.Env().Undefined();
  }
  bool writable = info[3].As<Napi::Boolean>().Value();
  if (length <= 0) return Napi::Number::New(info.Env(), -EINVAL);
  void* addr = mmap(nullptr, static_cast<size_t>(length), PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED,
                    static_cast<int>(fd), offset);
  if (addr == MAP_FAILED) return Napi::Number::New(info.Env(), static_cast<double>(NegErrno()));
  return Expose(info.Env(), Kind::kMapping, static_cast<uint8_t*>(addr), static_cast<size_t>(length));
}

// Detaches first so no JS view can reach the memory once it is gone.
Napi::Value ReleaseRegion(const Napi::CallbackInfo& info, Kind kind) {
  Napi::ArrayBuffer ab;
  Region* r;
  if (!ArgRegion(info, 0, kind, &ab, &r)) return info.Env().Undefined();
  if (napi_detach_arraybuffer(info.Env(), ab) != napi_ok) {
    TypeFail(info.Env(), "ArrayBuffer cannot be detached");
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), static_cast<double>(ReleaseMemory(r)));
}

Napi::Value Munmap(const Napi::CallbackInfo& info) { return ReleaseRegion(info, Kind::kMapping); }

// mapPrivate(fd, offset, length) -> ArrayBuffer over [offset, offset+length) of the file,
// mapped private (writes to it never reach the file), or -errno. `length`
// may reach past the end of the file, which may grow into it: touching a
// page wholly past the end raises SIGBUS, so the caller touches only what
// the file holds, and only what resident() says the page cache has (a page
// that is not would fault in from the disk).
Napi::Value MapPrivate(const Napi::CallbackInfo& info) {
  int64_t fd, offset, length;
  if (!ArgInt(info, 0, &fd) || !ArgInt(info, 1, &offset) || !ArgInt(info, 2, &length)) return info.Env().Undefined();
  Napi::Env env = info.Env();
  if (offset < 0 || offset % sysconf(_SC_PAGESIZE) != 0 || length <= 0) return Napi::Number::New(env, -EINVAL);
  struct stat st;
  if (fstat(static_cast<int>(fd), &st) < 0) return Napi::Number::New(env, static_cast<double>(NegErrno()));
  void* addr = mmap(nullptr, static_cast<size_t>(length), PROT_READ | PROT_WRITE, MAP_PRIVATE, static_cast<int>(fd), offset);
  if (addr == MAP_FAILED) return Napi::Number::New(env, static_cast<double>(NegErrno()));
  Region* r = nullptr;
  Napi::Value ab = Expose(env, Kind::kMapping, static_cast<uint8_t*>(addr), static_cast<size_t>(length), &r);
  if (ab.IsArrayBuffer()) {
    r->cached = true;
    r->dev = st.st_dev;
    r->ino = st.st_ino;
    r->fileOffset = offset;
  }
  return ab;
}

// resident(ab, offset, length) -> 1 when every page of the range is in
// memory (mincore), 0 when not, or -errno. It answers for this moment: a
// page evicted right after can still fault in from the disk.
Napi::Value Resident(const Napi::CallbackInfo& info) {
  Napi::ArrayBuffer ab;
  Region* r;
  int64_t offset, length;
  if (!ArgRegion(info, 0, Kind::kMapping, &ab, &r) || !ArgRange(info, 1, r, &offset, &length)) {
    return info.Env().Undefined();
  }
  Instance* in = Of(info.Env()).get();
  in->counters.preadCalls++;  // it stands for the read a mapping saves, so it counts as one
  if (length == 0) return Napi::Number::New(info.Env(), 1);
  int64_t page = sysconf(_SC_PAGESIZE);
  int64_t start = offset / page * page;
  size_t span = static_cast<size_t>(offset + length - start);
  unsigned char small[64];
  std::vector<unsigned char> big;
  size_t pages = (span + page - 1) / page;
  unsigned char* vec = small;
  if (pages > sizeof small) {
    big.resize(pages);
    vec = big.data();
  }
  if (mincore(r->base + start, span, vec) < 0) return Napi::Number::New(info.Env(), static_cast<double>(NegErrno()));
  for (size_t i = 0; i < pages; i++) {
    if ((vec[i] & 1) == 0) return Napi::Number::New(info.Env(), 0);
  }
  return Napi::Number::New(info.Env(), 1);
}

// coverMappings(fd, length) -> 0 or -errno: before the file is cut to
// `length`, every live mapPrivate mapping of it gets anonymous zero pages in
// place of the pages wholly past the cut (the kernel zeroes the rest of the
// page the cut falls in), so views of them read zeros instead of faulting.
Napi::Value CoverMappings(const Napi::CallbackInfo& info) {
  int64_t fd, length;
  if (!ArgInt(info, 0, &fd) || !ArgInt(info, 1, &length)) return info.Env().Undefined();
  Napi::Env env = info.Env();
  if (length < 0) return Napi::Number::New(env, -EINVAL);
  struct stat st;
  if (fstat(static_cast<int>(fd), &st) < 0) return Napi::Number::New(env, static_cast<double>(NegErrno()));
  int64_t page = sysconf(_SC_PAGESIZE);
  int64_t cut = (length + page - 1) / page * page;
  for (auto& [base, r] : Of(env)->regions) {
    if (!r->cached || r->dev != st.st_dev || r->ino != st.st_ino) continue;
    int64_t end = r->fileOffset + static_cast<int64_t>(r->length);
    int64_t from = std::max(cut, r->fileOffset);
    if (from >= end) continue;
    void* at = r->base + (from - r->fileOffset);
    void* got = mmap(at, static_cast<size_t>(end - from), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (got == MAP_FAILED) return Napi::Number::New(env, static_cast<double>(NegErrno()));
  }
  return Napi::Number::New(env, 0);
}
Napi::Value FreeAligned(const Napi::CallbackInfo& info) { return ReleaseRegion(info, Kind::kAligned); }

// msync(ab, offset, length) on the threadpool: it writes pages back to disk.
// offset is rounded down to the page, as msync requires.
Napi::Value Msync(const Napi::CallbackInfo& info) {
  Napi::ArrayBuffer ab;
  Region* r;
  int64_t offset, length;
  if (!ArgRegion(info, 0, Kind::kMapping, &ab, &r) || !ArgRange(info, 1, r, &offset, &length)) {
    return info.Env().Undefined();
  }
  int64_t page = sysconf(_SC_PAGESIZE);
  uint8_t* start = r->base + (offset / page) * page;
  size_t span = static_cast<size_t>(r->base + offset + length - start);
  return RunIo(
      info.Env(), [start, span](std::vector<int64_t>*) -> int64_t { return msync(start, span, MS_SYNC) < 0 ? NegErrno() : 0; },
      {ab});
}

Napi::Value Madvise(const Napi::CallbackInfo& info) {
  Napi::ArrayBuffer ab;
  Region* r;
  int64_t offset, length, advice;
  if (!ArgRegion(info, 0, Kind::kMapping, &ab, &r) || !ArgRange(info, 1, r, &offset, &length) ||
      !ArgInt(info, 3, &advice)) {
    return info.Env().Undefined();
  }
  int64_t page = sysconf(_SC_PAGESIZE);
  uint8_t* start = r->base + (offset / page) * page;
  size_t span = static_cast<size_t>(r->base + offset + length - start);
  int rc = madvise(start, span, static_cast<int>(advice));
  return Napi::Number::New(info.Env(), rc < 0 ? static_cast<double>(NegErrno()) : 0);
}

// residentPages(fd, offset, length) -> pages of the file range in the page
// cache, or -errno. Maps the range without touching it: mincore faults
// nothing in, so measuring does not change the answer.
Napi::Value ResidentPages(const Napi::CallbackInfo& info) {
  int64_t fd, offset, length;
  if (!ArgInt(info, 0, &fd) || !ArgInt(info, 1, &offset) || !ArgInt(info, 2, &length)) return info.Env().Undefined();
  Napi::Env env = info.Env();
  if (length == 0) return Napi::Number::New(env, 0);
  int64_t page = sysconf(_SC_PAGESIZE);
  if (offset < 0 || length < 0 || offset % page != 0) return Napi::Number::New(env, -EINVAL);
  void* addr = mmap(nullptr, static_cast<size_t>(length), PROT_READ, MAP_SHARED, static_cast<int>(fd), offset);
  if (addr == MAP_FAILED) return Napi::Number::New(env, static_cast<double>(NegErrno()));
  size_t pages = static_cast<size_t>((length + page - 1) / page);
  std::vector<unsigned char> vec(pages);
  int64_t result;
  if (mincore(addr, static_cast<size_t>(length), vec.data()) < 0) {
    result = NegErrno();
  } else {
    result = 0;
    for (unsigned char v : vec) result += v & 1;
  }
  munmap(addr, static_cast<size_t>(length));
  return Napi::Number::New(env, static_cast<double>(result));
}

// allocAligned(length, alignment) -> zeroed ArrayBuffer, or -errno.
Napi::Value AllocAligned(const Napi::CallbackInfo& info) {
  int64_t length, alignment;
  if (!ArgInt(info, 0, &length) || !ArgInt(info, 1, &alignment)) return info.Env().Undefined();
  if (length <= 0 || alignment <= 0 || (alignment & (alignment - 1)) != 0) return Napi::Number::New(info.Env(), -EINVAL);
  void* p = nullptr;
  int rc = posix_memalign(&p, static_cast<size_t>(std::max<int64_t>(alignment, sizeof(void*))), static_cast<size_t>(length));
  if (rc != 0) return Napi::Number::New(info.Env(), -rc);
  memset(p, 0, static_cast<size_t>(length));
  return Expose(info.Env(), Kind::kAligned, static_cast<uint8_t*>(p), static_cast<size_t>(length));
}

// Address of a typed array's first byte, for alignment checks in TS.
Napi::Value AddressOf(const Napi::CallbackInfo& info) {
  uint8_t* data;
  size_t length;
  if (!ArgBytes(info, 0, &data, &length)) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), static_cast<double>(reinterpret_cast<uintptr_t>(data)));
}

}  // namespace

void InitMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("mmap", Napi::Function::New(env, Mmap, "mmap"));
  exports.Set("munmap", Napi::Function::New(env, Munmap, "munmap"));
  exports.Set("mapPrivate", Napi::Function::New(env, MapPrivate, "mapPrivate"));
  exports.Set("resident", Napi::Function::New(env, Resident, "resident"));
  exports.Set("coverMappings", Napi::Function::New(env, CoverMappings, "coverMappings"));
  exports.Set("msync", Napi::Function::New(env, Msync, "msync"));
  exports.Set("madvise", Napi::Function::New(env, Madvise, "madvise"));
  exports.Set("residentPages", Napi::Function::New(env, ResidentPages, "residentPages"));
  exports.Set("allocAligned", Napi::Function::New(env, AllocAligned, "allocAligned"));
  exports.Set("freeAligned", Napi::Function::New(env, FreeAligned, "freeAligned"));
  exports.Set("addressOf", Napi::Function::New(env, AddressOf, "addressOf"));
  Napi::Object c = exports.Get("constants").As<Napi::Object>();
  c.Set("PAGE_SIZE", static_cast<double>(sysconf(_SC_PAGESIZE)));
  c.Set("MADV_NORMAL", MADV_NORMAL);
  c.Set("MADV_RANDOM", MADV_RANDOM);
  c.Set("MADV_SEQUENTIAL", MADV_SEQUENTIAL);
  c.Set("MADV_WILLNEED", MADV_WILLNEED);
  c.Set("MADV_DONTNEED", MADV_DONTNEED);
}

}  // namespace seglog
