// sendfile(2) from a file to a connected non-blocking socket.
//
// A sink is one dup() of a socket with a libuv poll handle on it, made once
// per socket and reused by each transfer to it (polling the original fd
// fails with EEXIST: libuv already watches it). A transfer runs in rounds:
// each calls sendfile until the range is sent, the socket would block, or an
// error; on "would block" the event loop polls the sink for writability and
// starts the next round. A round whose file pages are all in the page cache
// (cachestat(2)) runs on the JS thread: sendfile then copies nothing from the
// disk and stops at the socket's first EAGAIN, so it cannot block. Any other
// round runs on the threadpool, so a cold read never stalls the event loop.
// (A page evicted between the check and the call is read inline: a window of
// microseconds, against a threadpool round trip per fetch otherwise.)
// No thread ever waits on a slow receiver.
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <new>

#include "common.h"

#ifndef __NR_cachestat
#define __NR_cachestat 451  // the same number on every architecture (Linux 6.5)
#endif

namespace seglog {

struct Sink;

// One sendfile of a range, from the call until its promise settles.
struct Transfer {
  Sink* sink;
  napi_deferred deferred;
  napi_async_work work = nullptr;  // set while a round runs on the threadpool
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
  std::atomic<bool> cancelled{false};
  int64_t id;
};

// Lives from sendfileSink() until its poll handle is closed, which can be
// after the environment's instance-data slot is gone: hence its own share.
struct Sink {
  std::shared_ptr<Instance> instance;
  napi_env env;
  napi_async_context context = nullptr;  // poll callbacks settle promises inside it
  uv_poll_t poll;
  int fd;  // our dup, closed with the sink
  int64_t id;
  Transfer* active = nullptr;  // at most one transfer at a time
  bool polling = false;
  bool closing = false;  // closed by its owner: goes once no transfer runs
};

namespace {

// Bytes one JS-thread round sends at most before it lets the event loop run
// (the socket is then still writable, so the next round starts at once).
constexpr int64_t kInlineRoundBytes = 4 << 20;

// Whether every page of [position, position + length) of `fd` is in the page
// cache. False when unknown (no cachestat(2)): the round then goes to a thread.
bool Resident(int fd, int64_t position, int64_t length) {
  struct {
    uint64_t off, len;
  } range{static_cast<uint64_t>(position), static_cast<uint64_t>(length)};
  struct {
    uint64_t cache, dirty, writeback, evicted, recentlyEvicted;
  } stat{};
  if (length <= 0 || syscall(__NR_cachestat, fd, &range, &stat, 0) != 0) return false;
  const int64_t page = getpagesize();
  const int64_t pages = (position + length - 1) / page - position / page + 1;
  return static_cast<int64_t>(stat.cache) >= pages;
}

// Calls sendfile until `limit` bytes went, the range is sent, the socket would block or an error.
void Send(Transfer* t, int64_t limit) {
  Instance* in = t->sink->instance.get();
  t->wouldBlock = false;
  while (t->error == 0 && t->remaining > 0 && limit > 0 && !t->cancelled.load()) {
    off_t offset = t->position;
    in->counters.sendfileCalls++;
    ssize_t n = sendfile(t->sink->fd, t->fileFd, &offset, static_cast<size_t>(std::min({t->remaining, t->chunk, limit})));
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
    in->counters.sendfileBytes += n;
    t->position += n;
    t->remaining -= n;
    t->sent += n;
    limit -= n;
  }
  if (t->remaining == 0) t->done = true;
}

void Execute(napi_env, void* data) { Send(static_cast<Transfer*>(data), INT64_MAX); }

void Round(Transfer* t);
void AfterRound(Transfer* t);

void OnWritable(uv_poll_t* handle, int status, int) {
  auto* s = static_cast<Sink*>(handle->data);
  uv_poll_stop(handle);
  s->polling = false;
  Transfer* t = s->active;
  if (t == nullptr) return;
  if (status < 0) t->pollError = -status;
  // No JS is on the stack here: a callback scope makes the promise reactions
  // that settling may queue run when it closes, as after any I/O callback.
  napi_handle_scope handles;
  if (napi_open_handle_scope(s->env, &handles) != napi_ok) handles = nullptr;
  napi_value resource;
  napi_callback_scope scope = nullptr;
  if (napi_create_object(s->env, &resource) == napi_ok) napi_open_callback_scope(s->env, resource, s->context, &scope);
  Round(t);
  if (scope != nullptr) napi_close_callback_scope(s->env, scope);
  if (handles != nullptr) napi_close_handle_scope(s->env, handles);
}

// The environment's teardown waits until the last closed poll handle is gone.
void OnSinkClosed(uv_handle_t* handle) {
  auto* s = static_cast<Sink*>(handle->data);
  std::shared_ptr<Instance> in = std::move(s->instance);
  delete s;
  in->closingPolls--;
  if (in->teardown != nullptr && in->closingPolls == 0 && in->sinks.empty() && in->transfers.empty()) {
    napi_remove_async_cleanup_hook(in->teardown);  // nothing to undo if it fails: the environment is going away
    in->teardown = nullptr;
  }
}

// Closes a sink no transfer uses. uv_close takes the fd out of epoll at once,
// so the dup can be closed now: no extra reference to the socket remains (the
// peer sees the close when the caller closes its fd). EINTR is not retried:
// Linux releases the fd regardless.
void CloseSink(Sink* s) {
  Instance* in = s->instance.get();
  if (s->polling) uv_poll_stop(&s->poll);
  s->polling = false;
  in->sinks.erase(s->id);
  if (s->context != nullptr) napi_async_destroy(s->env, s->context);  // nothing to undo if it fails
  s->context = nullptr;
  in->closingPolls++;
  uv_close(reinterpret_cast<uv_handle_t*>(&s->poll), OnSinkClosed);
  close(s->fd);
  s->fd = -1;
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

// Settles the promise with [0 | -errno, bytesSent], frees the transfer and
// closes its sink if its owner closed it meanwhile.
void Finish(Transfer* t) {
  Sink* s = t->sink;
  Instance* in = s->instance.get();
  if (!in->stopping) {
    napi_handle_scope scope;
    if (napi_open_handle_scope(s->env, &scope) == napi_ok) {
      // A cancel that comes after the last byte went out changes nothing.
      int settled = t->error != 0 ? -t->error : (t->cancelled.load() && !t->done ? -ECANCELED : 0);
      Settle(s->env, t->deferred, settled, t->sent);
      napi_close_handle_scope(s->env, scope);
    }
  }
  in->transfers.erase(t->id);
  in->counters.liveSendfiles--;
  s->active = nullptr;
  delete t;
  if (s->closing) CloseSink(s);
}

void Complete(napi_env env, napi_status status, void* data) {
  auto* t = static_cast<Transfer*>(data);
  napi_delete_async_work(env, t->work);
  t->work = nullptr;
  if (status == napi_cancelled) t->cancelled = true;
  AfterRound(t);
}

// Runs a round on the threadpool. (A work item may be queued only once, so
// every round gets a new one.)
void Queue(Transfer* t) {
  napi_env env = t->sink->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) scope = nullptr;
  napi_value name;
  if (napi_create_string_utf8(env, "seglog:sendfile", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, nullptr, name, Execute, Complete, t, &t->work) != napi_ok || napi_queue_async_work(env, t->work) != napi_ok) {
    if (t->work != nullptr) napi_delete_async_work(env, t->work);
    t->work = nullptr;
    t->error = ENOMEM;  // only out of memory gets here
    Finish(t);
  } else {
    t->sink->instance->counters.sendfileQueued++;
  }
  if (scope != nullptr) napi_close_handle_scope(env, scope);
}

// Starts the next round: on this thread when its pages are cached, else on the threadpool.
void Round(Transfer* t) {
  if (t->cancelled.load() || t->sink->instance->stopping) return Finish(t);
  if (!Resident(t->fileFd, t->position, t->remaining)) return Queue(t);
  Send(t, kInlineRoundBytes);
  AfterRound(t);
}

// After a round: done, failed, or waits for the socket to take more.
void AfterRound(Transfer* t) {
  // The socket still "would block" after the poll failed: report the poll's error
  // rather than waiting on it again.
  if (t->error == 0 && t->wouldBlock && t->pollError != 0) t->error = t->pollError;
  t->pollError = 0;
  Sink* s = t->sink;
  if (t->error == 0 && !t->cancelled.load() && !s->instance->stopping && !t->done && t->remaining > 0) {
    if (t->wouldBlock) s->instance->counters.sendfileWaits++;
    int rc = uv_poll_start(&s->poll, UV_WRITABLE, OnWritable);
    if (rc == 0) {
      s->polling = true;
      return;
    }
    t->error = -rc;
  }
  Finish(t);
}

// The environment is going away (a worker terminated, or the process exits):
// stops every transfer and closes every sink, so no poll handle outlives its
// event loop. A transfer whose round is on the threadpool stops when the
// round completes.
void Teardown(napi_async_cleanup_hook_handle handle, void* data) {
  std::unique_ptr<std::shared_ptr<Instance>> share(static_cast<std::shared_ptr<Instance>*>(data));
  Instance* in = share->get();
  in->stopping = true;
  in->teardown = handle;
  std::vector<Sink*> sinks;
  for (auto& [id, s] : in->sinks) sinks.push_back(s);
  for (Sink* s : sinks) {
    s->closing = true;
    if (s->active == nullptr) {
      CloseSink(s);
      continue;
    }
    s->active->cancelled = true;
    if (s->active->work == nullptr) Finish(s->active);
  }
  if (in->closingPolls == 0 && in->sinks.empty() && in->transfers.empty()) {
    napi_remove_async_cleanup_hook(handle);  // nothing to undo if it fails: the environment is going away
    in->teardown = nullptr;
  }
}

// sendfileSink(socketFd) -> id > 0 of a new sink for the socket, or -errno.
Napi::Value SendfileSink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t socketFd;
  if (!ArgInt(info, 0, &socketFd)) return env.Undefined();
  auto fail = [&](int err) { return Napi::Number::New(env, -err); };
  // Only sockets: uv_poll_init would refuse regular files with a puzzling
  // EPERM, and would switch a shared pipe or tty to O_NONBLOCK.
  struct stat st;
  if (socketFd < 0 || socketFd > INT32_MAX) return fail(EBADF);
  if (fstat(static_cast<int>(socketFd), &st) < 0) return fail(errno);
  if (!S_ISSOCK(st.st_mode)) return fail(ENOTSOCK);
  uv_loop_t* loop;
  napi_value name;
  napi_async_context context;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || napi_create_string_utf8(env, "seglog:sendfile", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, nullptr, name, &context) != napi_ok) {
    return fail(ENOMEM);
  }
  auto* s = new (std::nothrow) Sink();
  int err = s == nullptr ? ENOMEM : 0;
  if (err == 0) {
    s->fd = fcntl(static_cast<int>(socketFd), F_DUPFD_CLOEXEC, 0);
    if (s->fd < 0) err = errno;
  }
  if (err == 0) {
    int rc = uv_poll_init(loop, &s->poll, s->fd);
    if (rc < 0) {
      err = -rc;
      close(s->fd);
    }
  }
  if (err != 0) {
    delete s;
    napi_async_destroy(env, context);  // nothing to undo if it fails
    return fail(err);
  }
  const std::shared_ptr<Instance>& in = Of(env);
  s->instance = in;
  s->env = env;
  s->context = context;
  s->poll.data = s;
  s->id = in->nextSinkId++;
  in->sinks[s->id] = s;
  return Napi::Number::New(env, static_cast<double>(s->id));
}

// sendfileSinkClose(id): closes the sink now, or once its transfer settles
// (which the caller cancels if it must stop early). False for an unknown id.
Napi::Value SendfileSinkClose(const Napi::CallbackInfo& info) {
  int64_t id;
  if (!ArgInt(info, 0, &id)) return info.Env().Undefined();
  auto& sinks = Of(info.Env())->sinks;
  auto it = sinks.find(id);
  if (it == sinks.end() || it->second->closing) return Napi::Boolean::New(info.Env(), false);
  Sink* s = it->second;
  s->closing = true;
  if (s->active == nullptr) CloseSink(s);
  return Napi::Boolean::New(info.Env(), true);
}

// sendfile(sinkId, fileFd, position, length, chunk) -> Promise<[0 | -errno, bytesSent]>
// with an `id` property for sendfileCancel. EBADF for an unknown or closed
// sink, EBUSY while another transfer to it runs.
Napi::Value Sendfile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t sinkId, fileFd, position, length, chunk;
  if (!ArgInt(info, 0, &sinkId) || !ArgInt(info, 1, &fileFd) || !ArgInt(info, 2, &position) || !ArgInt(info, 3, &length) ||
      !ArgInt(info, 4, &chunk)) {
    return env.Undefined();
  }
  if (position < 0 || length < 0 || chunk <= 0 || fileFd < 0 || fileFd > INT32_MAX) {
    TypeFail(env, "invalid sendfile range");
    return env.Undefined();
  }
  napi_value promise;
  napi_deferred deferred;
  if (napi_create_promise(env, &deferred, &promise) != napi_ok) return env.Undefined();
  Napi::Object p(env, promise);
  const std::shared_ptr<Instance>& in = Of(env);
  auto it = in->sinks.find(sinkId);
  int refused = it == in->sinks.end() || it->second->closing ? EBADF : it->second->active != nullptr ? EBUSY : 0;
  auto* t = refused == 0 ? new (std::nothrow) Transfer() : nullptr;
  if (t == nullptr) {
    if (!Settle(env, deferred, -(refused != 0 ? refused : ENOMEM), 0)) {
      Napi::Error::New(env, "cannot settle the sendfile promise").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    p.Set("id", Napi::Number::New(env, 0));  // matches no transfer: cancelling it is a no-op
    return p;
  }
  t->sink = it->second;
  t->deferred = deferred;
  t->fileFd = static_cast<int>(fileFd);
  t->position = position;
  t->remaining = length;
  t->chunk = chunk;
  t->id = in->nextTransferId++;
  t->sink->active = t;
  in->transfers[t->id] = t;
  in->counters.liveSendfiles++;
  p.Set("id", Napi::Number::New(env, static_cast<double>(t->id)));
  Round(t);
  return p;
}

// sendfileCancel(id): stops a transfer; it resolves with -ECANCELED and the
// bytes sent so far. A round inside sendfile on the threadpool stops after that call returns.
Napi::Value SendfileCancel(const Napi::CallbackInfo& info) {
  int64_t id;
  if (!ArgInt(info, 0, &id)) return info.Env().Undefined();
  auto& transfers = Of(info.Env())->transfers;
  auto it = transfers.find(id);
  if (it == transfers.end()) return Napi::Boolean::New(info.Env(), false);
  Transfer* t = it->second;
  t->cancelled = true;
  if (t->sink->polling) {
    uv_poll_stop(&t->sink->poll);
    t->sink->polling = false;
    Finish(t);
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
  exports.Set("sendfileSink", Napi::Function::New(env, SendfileSink, "sendfileSink"));
  exports.Set("sendfileSinkClose", Napi::Function::New(env, SendfileSinkClose, "sendfileSinkClose"));
  exports.Set("sendfile", Napi::Function::New(env, Sendfile, "sendfile"));
  exports.Set("sendfileCancel", Napi::Function::New(env, SendfileCancel, "sendfileCancel"));
  return true;
}

}  // namespace seglog
