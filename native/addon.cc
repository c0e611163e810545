#include <unistd.h>

#include <cmath>
#include <new>

#include "common.h"

namespace seglog {

const std::shared_ptr<Instance>& Of(Napi::Env env) { return *env.GetInstanceData<std::shared_ptr<Instance>>(); }

#ifdef SEGLOG_FAULTS
int TakeFault(Instance* in, FaultPoint point) {
  Fault& f = in->faults[point];
  if (f.error.load() == 0) return 0;
  if (f.skip.load() > 0 && f.skip.fetch_sub(1) > 0) return 0;
  int64_t left = f.remaining.load();
  if (left == 0) return 0;
  if (left > 0 && f.remaining.fetch_sub(1) <= 0) return 0;
  return f.error.load();
}

// injectFault(point, errno, skip, count, partial); errno 0 clears the point.
static Napi::Value InjectFault(const Napi::CallbackInfo& info) {
  int64_t point, error, skip, count;
  if (!ArgInt(info, 0, &point) || !ArgInt(info, 1, &error) || !ArgInt(info, 2, &skip) || !ArgInt(info, 3, &count)) {
    return info.Env().Undefined();
  }
  if (point < 0 || point >= kFaultCount || info.Length() < 5 || !info[4].IsBoolean()) {
    TypeFail(info.Env(), "invalid fault");
    return info.Env().Undefined();
  }
  Fault& f = Of(info.Env())->faults[point];
  f.error = 0;
  f.skip = skip;
  f.remaining = count;
  f.partial = info[4].As<Napi::Boolean>().Value();
  f.error = static_cast<int>(error);
  return info.Env().Undefined();
}

static void InitFaults(Napi::Env env, Napi::Object exports) {
  exports.Set("injectFault", Napi::Function::New(env, InjectFault, "injectFault"));
  Napi::Object points = Napi::Object::New(env);
  points.Set("pwrite", static_cast<double>(kFaultPwrite));
  points.Set("fsync", static_cast<double>(kFaultFsync));
  points.Set("fdatasync", static_cast<double>(kFaultFdatasync));
  points.Set("ftruncate", static_cast<double>(kFaultFtruncate));
  points.Set("open", static_cast<double>(kFaultOpen));
  exports.Set("faultPoints", points);
}
#endif

bool TypeFail(Napi::Env env, const char* message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return false;
}

bool ArgInt(const Napi::CallbackInfo& info, size_t i, int64_t* out) {
  if (i >= info.Length() || !info[i].IsNumber()) return TypeFail(info.Env(), "expected an integer argument");
  double v = info[i].As<Napi::Number>().DoubleValue();
  // 2^53: beyond it a double no longer holds every integer.
  if (!std::isfinite(v) || std::trunc(v) != v || std::fabs(v) > 9007199254740991.0) {
    return TypeFail(info.Env(), "expected a safe integer argument");
  }
  *out = static_cast<int64_t>(v);
  return true;
}

bool ArgString(const Napi::CallbackInfo& info, size_t i, std::string* out) {
  if (i >= info.Length() || !info[i].IsString()) return TypeFail(info.Env(), "expected a string argument");
  *out = info[i].As<Napi::String>().Utf8Value();
  if (out->find('\0') != std::string::npos) return TypeFail(info.Env(), "string argument contains a NUL byte");
  return true;
}

bool ArgBytes(const Napi::CallbackInfo& info, size_t i, uint8_t** data, size_t* length) {
  if (i >= info.Length() || !info[i].IsTypedArray()) return TypeFail(info.Env(), "expected a Uint8Array argument");
  auto array = info[i].As<Napi::TypedArray>();
  if (array.TypedArrayType() != napi_uint8_array) return TypeFail(info.Env(), "expected a Uint8Array argument");
  auto bytes = array.As<Napi::Uint8Array>();
  *length = bytes.ElementLength();
  *data = *length == 0 ? nullptr : bytes.Data();
  return true;
}

IoWorker::IoWorker(Napi::Env env, Work work, napi_deferred deferred)
    : Napi::AsyncWorker(env, "seglog:io"), work_(std::move(work)), deferred_(deferred) {}

void IoWorker::Keep(Napi::Object value) { kept_.push_back(Napi::Persistent(value)); }

void IoWorker::Execute() { result_ = work_(&extra_); }

// Plain N-API calls with their status checked: a job can complete while its
// environment shuts down (a worker terminated mid-call), when no promise can
// be settled any more and node-addon-api's error path would be fatal.
void IoWorker::OnOK() {
  napi_env env = Env();
  napi_value out;
  if (napi_create_double(env, static_cast<double>(result_), &out) != napi_ok) return;
  if (!extra_.empty()) {
    napi_value first = out;
    if (napi_create_array_with_length(env, extra_.size() + 1, &out) != napi_ok ||
        napi_set_element(env, out, 0, first) != napi_ok) {
      return;
    }
    for (size_t i = 0; i < extra_.size(); i++) {
      napi_value v;
      if (napi_create_double(env, static_cast<double>(extra_[i]), &v) != napi_ok ||
          napi_set_element(env, out, static_cast<uint32_t>(i + 1), v) != napi_ok) {
        return;
      }
    }
  }
  napi_resolve_deferred(env, deferred_, out);  // fails only while the environment shuts down
}

Napi::Value RunIo(Napi::Env env, IoWorker::Work work, std::vector<Napi::Object> keep) {
  napi_value promise;
  napi_deferred deferred;
  if (napi_create_promise(env, &deferred, &promise) != napi_ok) {
    Napi::Error::New(env, "cannot create a promise").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // AsyncWorker deletes itself after OnOK.
  auto* worker = new IoWorker(env, std::move(work), deferred);
  for (auto& value : keep) worker->Keep(value);
  worker->Queue();
  return Napi::Value(env, promise);
}

static Napi::Value Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Counters& c = Of(env)->counters;
  Napi::Object out = Napi::Object::New(env);
  auto put = [&](const char* name, const std::atomic<int64_t>& v) {
    out.Set(name, Napi::Number::New(env, static_cast<double>(v.load())));
  };
  put("preadCalls", c.preadCalls);
  put("pwriteCalls", c.pwriteCalls);
  put("fsyncCalls", c.fsyncCalls);
  put("fdatasyncCalls", c.fdatasyncCalls);
  put("sendfileCalls", c.sendfileCalls);
  put("sendfileBytes", c.sendfileBytes);
  put("sendfileWaits", c.sendfileWaits);
  put("sendfileQueued", c.sendfileQueued);
  put("liveMappings", c.liveMappings);
  put("liveAlignedBuffers", c.liveAlignedBuffers);
  put("liveSendfiles", c.liveSendfiles);
  return out;
}

// readCalls() -> preadCalls + sendfileCalls: what the read path counts per
// read, without building stats()' whole object each time.
static Napi::Value ReadCalls(const Napi::CallbackInfo& info) {
  const Counters& c = Of(info.Env())->counters;
  return Napi::Number::New(info.Env(), static_cast<double>(c.preadCalls.load() + c.sendfileCalls.load()));
}

// The environment's slot holds one share of its Instance.
static void DeleteInstance(napi_env, void* data, void*) { delete static_cast<std::shared_ptr<Instance>*>(data); }

// Closes the files the environment left open. Runs after Node has waited for
// its threadpool jobs, so no open() or close() is under way.
static void CloseFiles(void* data) {
  Instance* in = static_cast<Instance*>(data);
  std::lock_guard<std::mutex> lock(in->fdsLock);
  // EINTR is not retried: on Linux the fd is released regardless.
  for (int fd : in->fds) close(fd);
  in->fds.clear();
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* instance = new (std::nothrow) std::shared_ptr<Instance>(new (std::nothrow) Instance());
  if (instance == nullptr || *instance == nullptr) {
    delete instance;
    Napi::Error::New(env, "seglog: out of memory").ThrowAsJavaScriptException();
    return exports;
  }
  if (napi_set_instance_data(env, instance, DeleteInstance, nullptr) != napi_ok) {
    delete instance;
    Napi::Error::New(env, "seglog: cannot set instance data").ThrowAsJavaScriptException();
    return exports;
  }
  // Registered after the instance data, so it runs (hooks run last-in first-out) while the instance lives.
  if (napi_add_env_cleanup_hook(env, CloseFiles, instance->get()) != napi_ok || !InitSendfile(env, exports)) {
    Napi::Error::New(env, "seglog: cannot register cleanup hooks").ThrowAsJavaScriptException();
    return exports;
  }
  InitFile(env, exports);
  InitFilesystem(env, exports);
  InitReadNowait(env, exports);
  InitMemory(env, exports);
  InitCrc32c(env, exports);
  exports.Set("stats", Napi::Function::New(env, Stats, "stats"));
  exports.Set("readCalls", Napi::Function::New(env, ReadCalls, "readCalls"));
#ifdef SEGLOG_FAULTS
  InitFaults(env, exports);
#endif
  return exports;
}

}  // namespace seglog

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return seglog::Init(env, exports); }

NODE_API_MODULE(seglog, InitAddon)
