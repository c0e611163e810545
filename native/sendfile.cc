// sendfile(2) from a file to a connected non-blocking socket.
//
// The transfer alternates between two places: a threadpool job calls
// sendfile until the range is sent, the socket would block, or an error; on
// "would block" the event loop polls a dup() of the socket for writability
// (polling the original fd fails: libuv already watches it) and queues the
// next job. No thread ever waits on a slow receiver. The promise is settled
// from the job's completion callback, where promise reactions run normally.
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <new>

#include "common.h"

namespace seglog {

// Lives from sendfile() until its poll handle is closed, which can be after
// the environment's instance-data slot is gone: hence its own share.
struct Transfer {
  std::shared_ptr<Instance> instance;
  napi_env env;
  napi_deferred deferred;
  napi_async_work work = nullptr;
  uv_poll_t poll;
  int socketFd;  // our dup, closed as the transfer settles
  int fileFd;
  int64_t position;
  int64_t remaining;
  int64_t chunk;
  int64_t sent = 0;
  int error = 0;
  // The poll reported an error (libuv says UV_EBADF on EPOLLERR, whatever the
  // socket's real error is); the next sendfile call is made to learn it.
  int pollError = 0;
  bool done = false;  // the range was sent, or the file ended first
  bool wouldBlock = false;
  bool polling = false;
  std::atomic<bool> cancelled{false};
  int64_t id;
};

namespace {

void Execute(napi_env, void* data) {
  auto* t = static_cast<Transfer*>(data);
  t->wouldBlock = false;
  while (t->error == 0 && t->remaining > 0 && !t->cancelled.load()) {
    off_t offset = t->position;
    t->instance->counters.sendfileCalls++;
    ssize_t n = sendfile(t->socketFd, t->fileFd, &offset, static_cast<size_t>(std::min(t->remaining, t->chunk)));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        t->wouldBlock = true;
        return;
      }
      t->error = errno;
      return;
    }
    if (n == 0) {
      t->done = true;  // the file ended before the range did: a short transfer
      return;
    }
    t->instance->counters.sendfileBytes += n;
    t->position += n;
    t->remaining -= n;
    t->sent += n;
  }
  if (t->remaining == 0) t->done = true;
}

void Queue(Transfer* t);
void Finish(napi_env env, Transfer* t);

void OnWritable(uv_poll_t* handle, int status, int) {
  auto* t = static_cast<Transfer*>(handle->data);
  uv_poll_stop(handle);
  t->polling = false;
  if (status < 0) t->pollError = -status;
  Queue(t);
}

// The environment's teardown waits until the last closed poll handle is gone.
void OnPollClosed(uv_handle_t* handle) {
  auto* t = static_cast<Transfer*>(handle->data);
  std::shared_ptr<Instance> in = std::move(t->instance);
  delete t;
  in->closingPolls--;
  if (in->teardown != nullptr && in->closingPolls == 0 && in->transfers.empty()) {
    napi_remove_async_cleanup_hook(in->teardown);  // nothing to undo if it fails: the environment is going away
    in->teardown = nullptr;
  }
}

// Resolves `deferred` with [code, sent]; false if N-API refused (only while
// the environment shuts down, when no one can observe the promise).
bool Settle(napi_env env, napi_deferred deferred, int code, int64_t sent) {
  napi_value result, codeValue, sentValue;
  return napi_create_array_with_length(env, 2, &result) == napi_ok && napi_create_int32(env, code, &codeValue) == napi_ok &&
         napi_create_double(env, static_cast<double>(sent), &sentValue) == napi_ok &&
         napi_set_element(env, result, 0, codeValue) == napi_ok && napi_set_element(env, result, 1, sentValue) == napi_ok &&
         napi_resolve_deferred(env, deferred, result) == napi_ok;
}

// Releases the transfer without settling its promise.
void Release(Transfer* t) {
  Instance* in = t->instance.get();
  in->transfers.erase(t->id);
  // uv_close takes the fd out of epoll at once, so the dup can be closed now:
  // once the promise settles no extra reference to the socket remains (the
  // peer sees the close when the caller closes its fd). EINTR is not retried:
  // Linux releases the fd regardless.
  in->closingPolls++;
  uv_close(reinterpret_cast<uv_handle_t*>(&t->poll), OnPollClosed);
  close(t->socketFd);
  t->socketFd = -1;
  in->counters.liveSendfiles--;
}

// Settles the promise with [0 | -errno, bytesSent] and releases the transfer.
void Finish(napi_env env, Transfer* t) {
  if (!t->instance->stopping) {
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) == napi_ok) {
      // A cancel that comes after the last byte went out changes nothing.
      int settled = t->error != 0 ? -t->error : (t->cancelled.load() && !t->done ? -ECANCELED : 0);
      Settle(env, t->deferred, settled, t->sent);
      napi_close_handle_scope(env, scope);
    }
  }
  Release(t);
}

// The environment is going away (a worker terminated, or the process exits):
// stops every transfer so no poll handle outlives its event loop. A transfer
// whose job is on the threadpool stops when the job completes.
void Teardown(napi_async_cleanup_hook_handle handle, void* data) {
  std::unique_ptr<std::shared_ptr<Instance>> share(static_cast<std::shared_ptr<Instance>*>(data));
  Instance* in = share->get();
  in->stopping = true;
  in->teardown = handle;
  std::vector<Transfer*> idle;
  for (auto& [id, t] : in->transfers) {
    t->cancelled = true;
    if (t->work == nullptr) idle.push_back(t);
  }
  for (Transfer* t : idle) {
    if (t->polling) uv_poll_stop(&t->poll);
    t->polling = false;
    Release(t);
  }
  if (in->closingPolls == 0 && in->transfers.empty()) {
    napi_remove_async_cleanup_hook(handle);  // nothing to undo if it fails: the environment is going away
    in->teardown = nullptr;
  }
}

void Complete(napi_env env, napi_status status, void* data) {
  auto* t = static_cast<Transfer*>(data);
  napi_delete_async_work(env, t->work);
  t->work = nullptr;
  if (status == napi_cancelled) t->cancelled = true;
  // The socket still "would block" after the poll failed: report the poll's error
  // rather than waiting on it again.
  if (t->error == 0 && t->wouldBlock && t->pollError != 0) t->error = t->pollError;
  t->pollError = 0;
  if (t->error == 0 && !t->cancelled.load() && !t->instance->stopping && t->wouldBlock && t->remaining > 0) {
    t->instance->counters.sendfileWaits++;
    int rc = uv_poll_start(&t->poll, UV_WRITABLE, OnWritable);
    if (rc == 0) {
      t->polling = true;
      return;
    }
    t->error = -rc;
  }
  Finish(env, t);
}

// Runs the next sendfile round on the threadpool. Also called from the poll
// callback, where no JS is on the stack: hence the handle scope of its own.
// (A work item may be queued only once, so every round gets a new one.)
void Queue(Transfer* t) {
  napi_handle_scope scope;
  if (napi_open_handle_scope(t->env, &scope) != napi_ok) scope = nullptr;
  napi_value name;
  if (napi_create_string_utf8(t->env, "seglog:sendfile", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(t->env, nullptr, name, Execute, Complete, t, &t->work) != napi_ok ||
      napi_queue_async_work(t->env, t->work) != napi_ok) {
    if (t->work != nullptr) napi_delete_async_work(t->env, t->work);
    t->work = nullptr;
    t->error = ENOMEM;
    // Only out of memory gets here. From the poll callback the promise's
    // reactions then run at the next microtask checkpoint, not at once.
    Finish(t->env, t);
  }
  if (scope != nullptr) napi_close_handle_scope(t->env, scope);
}

// sendfile(socketFd, fileFd, position, length, chunk) -> Promise<[0 | -errno, bytesSent]>
// with an `id` property for sendfileCancel.
Napi::Value Sendfile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t socketFd, fileFd, position, length, chunk;
  if (!ArgInt(info, 0, &socketFd) || !ArgInt(info, 1, &fileFd) || !ArgInt(info, 2, &position) ||
      !ArgInt(info, 3, &length) || !ArgInt(info, 4, &chunk)) {
    return env.Undefined();
  }
  if (position < 0 || length < 0 || chunk <= 0) {
    TypeFail(env, "invalid sendfile range");
    return env.Undefined();
  }
  napi_value promise;
  napi_deferred deferred;
  if (napi_create_promise(env, &deferred, &promise) != napi_ok) return env.Undefined();
  auto reject = [&](int err) {
    if (!Settle(env, deferred, -err, 0)) {
      Napi::Error::New(env, "cannot settle the sendfile promise").ThrowAsJavaScriptException();
      return Napi::Object();
    }
    Napi::Object p(env, promise);
    p.Set("id", Napi::Number::New(env, 0));  // matches no transfer: cancelling it is a no-op
    return p;
  };
  // Only sockets: uv_poll_init would refuse regular files with a puzzling
  // EPERM, and would switch a shared pipe or tty to O_NONBLOCK.
  struct stat st;
  if (socketFd < 0 || socketFd > INT32_MAX) return reject(EBADF);
  if (fstat(static_cast<int>(socketFd), &st) < 0) return reject(errno);
  if (!S_ISSOCK(st.st_mode)) return reject(ENOTSOCK);
  int dupFd = fcntl(static_cast<int>(socketFd), F_DUPFD_CLOEXEC, 0);
  if (dupFd < 0) return reject(errno);
  auto* t = new (std::nothrow) Transfer();
  if (t == nullptr) {
    close(dupFd);
    return reject(ENOMEM);
  }
  const std::shared_ptr<Instance>& in = Of(env);
  t->instance = in;
  t->env = env;
  t->deferred = deferred;
  t->socketFd = dupFd;
  t->fileFd = static_cast<int>(fileFd);
  t->position = position;
  t->remaining = length;
  t->chunk = chunk;
  uv_loop_t* loop;
  int rc = napi_get_uv_event_loop(env, &loop) == napi_ok ? uv_poll_init(loop, &t->poll, dupFd) : -EINVAL;
  if (rc < 0) {
    close(dupFd);
    delete t;
    return reject(-rc);
  }
  t->poll.data = t;
  int64_t id = in->nextTransferId++;
  t->id = id;
  in->transfers[id] = t;
  in->counters.liveSendfiles++;
  Queue(t);
  Napi::Object p(env, promise);
  p.Set("id", Napi::Number::New(env, static_cast<double>(id)));
  return p;
}

// sendfileCancel(id): stops a transfer; it resolves with -ECANCELED and the
// bytes sent so far. A transfer inside sendfile stops after that call returns.
Napi::Value SendfileCancel(const Napi::CallbackInfo& info) {
  int64_t id;
  if (!ArgInt(info, 0, &id)) return info.Env().Undefined();
  auto& transfers = Of(info.Env())->transfers;
  auto it = transfers.find(id);
  if (it == transfers.end()) return Napi::Boolean::New(info.Env(), false);
  Transfer* t = it->second;
  t->cancelled = true;
  if (t->polling) {
    uv_poll_stop(&t->poll);
    t->polling = false;
    Queue(t);
  }
  return Napi::Boolean::New(info.Env(), true);
}

}  // namespace

bool InitSendfile(Napi::Env env, Napi::Object exports) {
  auto* share = new (std::nothrow) std::shared_ptr<Instance>(Of(env));
  napi_async_cleanup_hook_handle handle;
  if (share == nullptr || napi_add_async_cleanup_hook(env, Teardown, share, &handle) != napi_ok) {
    delete share;
    return false;
  }
  exports.Set("sendfile", Napi::Function::New(env, Sendfile, "sendfile"));
  exports.Set("sendfileCancel", Napi::Function::New(env, SendfileCancel, "sendfileCancel"));
  return true;
}

}  // namespace seglog
