// Shared glue for the addon: argument extraction, the threadpool worker that
// resolves a promise with a syscall result, and the counters tests read.
#pragma once

#include <napi.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace seglog {

// Incremented by the syscall wrappers so tests and benchmarks can prove which
// system calls really ran (e.g. sendfile rather than read/write copies).
struct Counters {
  std::atomic<int64_t> preadCalls{0};
  std::atomic<int64_t> pwriteCalls{0};
  std::atomic<int64_t> fsyncCalls{0};
  std::atomic<int64_t> fdatasyncCalls{0};
  std::atomic<int64_t> sendfileCalls{0};
  std::atomic<int64_t> sendfileBytes{0};
  std::atomic<int64_t> sendfileWaits{0};
  std::atomic<int64_t> liveMappings{0};
  std::atomic<int64_t> liveAlignedBuffers{0};
  std::atomic<int64_t> liveSendfiles{0};
};
extern Counters counters;

// Test hooks: make the next calls at a point fail with an errno, so tests can
// drive every failure path of the layers above without a broken disk.
enum FaultPoint { kFaultPwrite, kFaultFsync, kFaultFdatasync, kFaultFtruncate, kFaultOpen, kFaultCount };
struct Fault {
  std::atomic<int> error{0};
  std::atomic<int64_t> skip{0};    // calls to let through first
  std::atomic<int64_t> remaining{0};  // calls to fail after that; -1 forever
  std::atomic<bool> partial{false};   // writes: write half the bytes, then fail
};
extern Fault faults[kFaultCount];
// The errno to fail this call with, or 0 to run it.
int TakeFault(FaultPoint point);

// Returns false after scheduling a TypeError; the caller returns undefined.
bool TypeFail(Napi::Env env, const char* message);

bool ArgInt(const Napi::CallbackInfo& info, size_t i, int64_t* out);
bool ArgString(const Napi::CallbackInfo& info, size_t i, std::string* out);
// A Uint8Array (Buffer) argument; a detached one yields {nullptr, 0}.
bool ArgBytes(const Napi::CallbackInfo& info, size_t i, uint8_t** data, size_t* length);

// Runs `work` on the libuv threadpool and resolves the returned promise with
// its result: >= 0 on success, -errno on failure. `extra`, when the work fills
// it, is appended so the promise resolves with [result, ...extra].
// Objects passed to Keep() stay alive until the work completes.
class IoWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<int64_t(std::vector<int64_t>* extra)>;
  IoWorker(Napi::Env env, Work work);
  Napi::Promise Queue();
  void Keep(Napi::Object value);

 protected:
  void Execute() override;
  void OnOK() override;

 private:
  Work work_;
  int64_t result_ = 0;
  std::vector<int64_t> extra_;
  std::vector<Napi::ObjectReference> kept_;
  Napi::Promise::Deferred deferred_;
};

// Runs `work` off the event loop; see IoWorker.
Napi::Value RunIo(Napi::Env env, IoWorker::Work work, std::vector<Napi::Object> keep = {});

inline int64_t NegErrno() { return -static_cast<int64_t>(errno); }

void InitFile(Napi::Env env, Napi::Object exports);
void InitMemory(Napi::Env env, Napi::Object exports);
void InitSendfile(Napi::Env env, Napi::Object exports);
void InitCrc32c(Napi::Env env, Napi::Object exports);

}  // namespace seglog
