#include "common.h"

#include <cmath>

namespace seglog {

Counters counters;
Fault faults[kFaultCount];

int TakeFault(FaultPoint point) {
  Fault& f = faults[point];
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
  Fault& f = faults[point];
  f.error = 0;
  f.skip = skip;
  f.remaining = count;
  f.partial = info[4].As<Napi::Boolean>().Value();
  f.error = static_cast<int>(error);
  return info.Env().Undefined();
}

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

IoWorker::IoWorker(Napi::Env env, Work work)
    : Napi::AsyncWorker(env, "seglog:io"), work_(std::move(work)), deferred_(Napi::Promise::Deferred::New(env)) {}

void IoWorker::Keep(Napi::Object value) { kept_.push_back(Napi::Persistent(value)); }

Napi::Promise IoWorker::Queue() {
  Napi::Promise promise = deferred_.Promise();
  Napi::AsyncWorker::Queue();
  return promise;
}

void IoWorker::Execute() { result_ = work_(&extra_); }

void IoWorker::OnOK() {
  Napi::Env env = Env();
  if (extra_.empty()) {
    deferred_.Resolve(Napi::Number::New(env, static_cast<double>(result_)));
    return;
  }
  Napi::Array out = Napi::Array::New(env, extra_.size() + 1);
  out.Set(uint32_t{0}, Napi::Number::New(env, static_cast<double>(result_)));
  for (size_t i = 0; i < extra_.size(); i++) {
    out.Set(static_cast<uint32_t>(i + 1), Napi::Number::New(env, static_cast<double>(extra_[i])));
  }
  deferred_.Resolve(out);
}

Napi::Value RunIo(Napi::Env env, IoWorker::Work work, std::vector<Napi::Object> keep) {
  // AsyncWorker deletes itself after OnOK.
  auto* worker = new IoWorker(env, std::move(work));
  for (auto& value : keep) worker->Keep(value);
  return worker->Queue();
}

static Napi::Value Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  auto put = [&](const char* name, const std::atomic<int64_t>& v) {
    out.Set(name, Napi::Number::New(env, static_cast<double>(v.load())));
  };
  put("preadCalls", counters.preadCalls);
  put("pwriteCalls", counters.pwriteCalls);
  put("fsyncCalls", counters.fsyncCalls);
  put("fdatasyncCalls", counters.fdatasyncCalls);
  put("sendfileCalls", counters.sendfileCalls);
  put("sendfileBytes", counters.sendfileBytes);
  put("sendfileWaits", counters.sendfileWaits);
  put("liveMappings", counters.liveMappings);
  put("liveAlignedBuffers", counters.liveAlignedBuffers);
  put("liveSendfiles", counters.liveSendfiles);
  return out;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitFile(env, exports);
  InitMemory(env, exports);
  InitSendfile(env, exports);
  InitCrc32c(env, exports);
  exports.Set("stats", Napi::Function::New(env, Stats, "stats"));
  exports.Set("injectFault", Napi::Function::New(env, InjectFault, "injectFault"));
  Napi::Object points = Napi::Object::New(env);
  points.Set("pwrite", static_cast<double>(kFaultPwrite));
  points.Set("fsync", static_cast<double>(kFaultFsync));
  points.Set("fdatasync", static_cast<double>(kFaultFdatasync));
  points.Set("ftruncate", static_cast<double>(kFaultFtruncate));
  points.Set("open", static_cast<double>(kFaultOpen));
  exports.Set("faultPoints", points);
  return exports;
}

}  // namespace seglog

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return seglog::Init(env, exports); }

NODE_API_MODULE(seglog, InitAddon)
