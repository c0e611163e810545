// Shared glue for the addon: the per-environment state, argument extraction
// and the threadpool worker that resolves a promise with a syscall result.
#pragma once

#include <napi.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace seglog {

// Incremented by the syscall wrappers so tests and benchmarks can prove which
// system calls really ran (e.g. sendfile rather than read/write copies).
// Atomic: threadpool jobs update them while the JS thread reads them.
struct Counters {
  std::atomic<int64_t> preadCalls{0};
  std::atomic<int64_t> pwriteCalls{0};
  std::atomic<int64_t> fsyncCalls{0};
  std::atomic<int64_t> fdatasyncCalls{0};
  std::atomic<int64_t> sendfileCalls{0};
  std::atomic<int64_t> sendfileBytes{0};
  std::atomic<int64_t> sendfileWaits{0};
  std::atomic<int64_t> sendfileQueued{0};  // sendfile rounds run on the threadpool
  std::atomic<int64_t> liveMappings{0};
  std::atomic<int64_t> liveAlignedBuffers{0};
  std::atomic<int64_t> liveSendfiles{0};
};

// Where the test build (target seglog_faults) can make calls fail.
enum FaultPoint { kFaultPwrite, kFaultFsync, kFaultFdatasync, kFaultFtruncate, kFaultOpen, kFaultCount };

#ifdef SEGLOG_FAULTS
// Test build only: make the next calls at a point fail with an errno, so
// tests can drive every failure path of the layers above without a broken disk.
struct Fault {
  std::atomic<int> error{0};
  std::atomic<int64_t> skip{0};       // calls to let through first
  std::atomic<int64_t> remaining{0};  // calls to fail after that; -1 forever
  std::atomic<bool> partial{false};   // writes: write half the bytes, then fail
};
#endif

struct Region;
struct Transfer;
struct Sink;

// Everything mutable the addon keeps, one per Node environment (the main
// thread and each worker_thread load the addon separately). The maps are
// touched only on that environment's JS thread; the counters (and faults)
// also from threadpool jobs, hence atomics.
// Owned through shared_ptr: regions and transfers can outlive the
// environment's instance-data slot during teardown, so each holds a share.
struct Instance {
  Counters counters;
  std::unordered_map<void*, Region*> regions;  // live mappings and aligned buffers by base address
  std::unordered_map<int64_t, Transfer*> transfers;  // live sendfile transfers by id
  int64_t nextTransferId = 1;
  std::unordered_map<int64_t, Sink*> sinks;  // open sendfile sinks (a socket's dup and poll handle) by id
  int64_t nextSinkId = 1;
  // Set once the environment tears down: transfers then stop without polling.
  napi_async_cleanup_hook_handle teardown = nullptr;
  bool stopping = false;
  int closingPolls = 0;  // poll handles closed whose close callback is still due
  // Descriptors opened through open() and not yet closed: closed when the
  // environment goes away (a terminated worker must not keep files or flocks).
  // Threadpool jobs open and close them, hence the lock.
  std::mutex fdsLock;
  std::unordered_set<int> fds;
#ifdef SEGLOG_FAULTS
  Fault faults[kFaultCount];
#endif
};

// The calling environment's state (set up by the module's Init).
const std::shared_ptr<Instance>& Of(Napi::Env env);

#ifdef SEGLOG_FAULTS
// The errno to fail this call with, or 0 to run it.
int TakeFault(Instance* in, FaultPoint point);
inline bool FaultPartial(Instance* in, FaultPoint point) { return in->faults[point].partial.load(); }
#else
// The production build has no faults; the compiler drops the checks.
inline int TakeFault(Instance*, FaultPoint) { return 0; }
inline bool FaultPartial(Instance*, FaultPoint) { return false; }
#endif

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
// `work` may use the environment's Instance through a plain pointer: Node
// waits for queued threadpool work before it tears an environment down.
class IoWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<int64_t(std::vector<int64_t>* extra)>;
  IoWorker(Napi::Env env, Work work, napi_deferred deferred);
  void Keep(Napi::Object value);

 protected:
  void Execute() override;
  void OnOK() override;

 private:
  Work work_;
  int64_t result_ = 0;
  std::vector<int64_t> extra_;
  std::vector<Napi::ObjectReference> kept_;
  napi_deferred deferred_;
};

// Runs `work` off the event loop; see IoWorker. Returns undefined with a
// pending exception if the promise cannot be made.
Napi::Value RunIo(Napi::Env env, IoWorker::Work work, std::vector<Napi::Object> keep = {});

inline int64_t NegErrno() { return -static_cast<int64_t>(errno); }

void InitFile(Napi::Env env, Napi::Object exports);
void InitFilesystem(Napi::Env env, Napi::Object exports);
void InitReadNowait(Napi::Env env, Napi::Object exports);
void InitMemory(Napi::Env env, Napi::Object exports);
bool InitSendfile(Napi::Env env, Napi::Object exports);
void InitCrc32c(Napi::Env env, Napi::Object exports);

}  // namespace seglog
