// File system calls. Each runs on the threadpool and resolves with >= 0 or
// -errno; loops on EINTR and on short reads/writes live here, nothing else.
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>

#include "common.h"

namespace seglog {

namespace {

int64_t WriteAll(Instance* in, int fd, const uint8_t* data, size_t length, int64_t position) {
  size_t done = 0;
  if (int e = TakeFault(in, kFaultPwrite)) {
    if (!FaultPartial(in, kFaultPwrite) || length < 2) return -e;
    int64_t half = WriteAll(in, fd, data, length / 2, position);
    return half < 0 ? half : -e;
  }
  while (done < length) {
    in->counters.pwriteCalls++;
    ssize_t n = pwrite(fd, data + done, length - done, position + static_cast<int64_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return NegErrno();
    }
    if (n == 0) return -EIO;  // no progress and no error: never spin
    done += static_cast<size_t>(n);
  }
  return static_cast<int64_t>(done);
}

int64_t ReadUpTo(Instance* in, int fd, uint8_t* data, size_t length, int64_t position) {
  size_t done = 0;
  while (done < length) {
    in->counters.preadCalls++;
    ssize_t n = pread(fd, data + done, length - done, position + static_cast<int64_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return NegErrno();
    }
    if (n == 0) break;  // end of file
    done += static_cast<size_t>(n);
  }
  return static_cast<int64_t>(done);
}

// Drops the first `bytes` bytes from an iovec list after a short transfer.
void Advance(std::vector<iovec>* iov, size_t* first, size_t bytes) {
  while (bytes > 0 && *first < iov->size()) {
    iovec& v = (*iov)[*first];
    if (bytes >= v.iov_len) {
      bytes -= v.iov_len;
      v.iov_len = 0;
      (*first)++;
    } else {
      v.iov_base = static_cast<uint8_t*>(v.iov_base) + bytes;
      v.iov_len -= bytes;
      bytes = 0;
    }
  }
  while (*first < iov->size() && (*iov)[*first].iov_len == 0) (*first)++;
}

// `write` selects pwritev (all bytes or an error) vs preadv (up to EOF).
int64_t TransferV(Instance* in, int fd, std::vector<iovec> iov, int64_t position, bool write) {
  size_t first = 0;
  int64_t done = 0;
  if (write) {
    if (int e = TakeFault(in, kFaultPwrite)) {
      if (!FaultPartial(in, kFaultPwrite) || iov.empty()) return -e;
      // Half of the first chunk reaches the file: a torn write.
      int64_t half = WriteAll(in, fd, static_cast<const uint8_t*>(iov[0].iov_base), iov[0].iov_len / 2, position);
      return half < 0 ? half : -e;
    }
  }
  Advance(&iov, &first, 0);
  while (first < iov.size()) {
    int count = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
    ssize_t n;
    if (write) {
      in->counters.pwriteCalls++;
      n = pwritev(fd, &iov[first], count, position + done);
    } else {
      in->counters.preadCalls++;
      n = preadv(fd, &iov[first], count, position + done);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      return NegErrno();
    }
    if (n == 0) {
      if (write) return -EIO;
      break;
    }
    done += n;
    Advance(&iov, &first, static_cast<size_t>(n));
  }
  return done;
}

int64_t Datasync(Instance* in, int fd) {
  if (int e = TakeFault(in, kFaultFdatasync)) return -e;
  int r = fdatasync(fd);
  // Counted once it has returned: tests compare it with when appends resolve.
  in->counters.fdatasyncCalls++;
  return r < 0 ? NegErrno() : 0;
}

bool ArgIovecs(const Napi::CallbackInfo& info, size_t i, std::vector<iovec>* iov, std::vector<Napi::Object>* keep) {
  if (i >= info.Length() || !info[i].IsArray()) return TypeFail(info.Env(), "expected an array of Uint8Array");
  auto array = info[i].As<Napi::Array>();
  uint32_t n = array.Length();
  iov->reserve(n);
  for (uint32_t k = 0; k < n; k++) {
    Napi::Value v = array.Get(k);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      return TypeFail(info.Env(), "expected an array of Uint8Array");
    }
    auto bytes = v.As<Napi::Uint8Array>();
    iov->push_back(iovec{bytes.ElementLength() == 0 ? nullptr : bytes.Data(), bytes.ElementLength()});
    keep->push_back(bytes);
  }
  return true;
}

// The arguments of the vectored calls, (fd, chunks, position); `keep` holds
// the chunks alive while a threadpool job uses their memory.
struct VectorArgs {
  int fd;
  std::vector<iovec> iov;
  std::vector<Napi::Object> keep;
  int64_t position;
};

bool ArgVector(const Napi::CallbackInfo& info, VectorArgs* a) {
  int64_t fd;
  if (!ArgInt(info, 0, &fd) || !ArgIovecs(info, 1, &a->iov, &a->keep) || !ArgInt(info, 2, &a->position)) return false;
  a->fd = static_cast<int>(fd);
  return true;
}

// open(path, flags, mode[, stat]) -> fd, or with stat 1 [fd, size]: the size
// in the same threadpool job (one round trip instead of two). A failed fstat
// closes the fd and fails the call. O_CLOEXEC always: child processes of the
// host must never inherit log files.
Napi::Value Open(const Napi::CallbackInfo& info) {
  std::string path;
  int64_t flags, mode, stat = 0;
  if (!ArgString(info, 0, &path) || !ArgInt(info, 1, &flags) || !ArgInt(info, 2, &mode) || (info.Length() > 3 && !ArgInt(info, 3, &stat))) {
    return info.Env().Undefined();
  }
  Instance* in = Of(info.Env()).get();
  return RunIo(info.Env(), [in, path, flags, mode, stat](std::vector<int64_t>* extra) -> int64_t {
    if (int e = TakeFault(in, kFaultOpen)) return -e;
    int fd;
    do fd = open(path.c_str(), static_cast<int>(flags) | O_CLOEXEC, static_cast<mode_t>(mode));
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return NegErrno();
    if (stat != 0) {
      struct stat st;
      if (fstat(fd, &st) < 0) {
        int64_t result = NegErrno();
        close(fd);
        return result;
      }
      extra->push_back(st.st_size);
    }
    std::lock_guard<std::mutex> lock(in->fdsLock);
    in->fds.insert(fd);
    return fd;
  });
}

// close(fd). EINTR is not retried: on Linux the fd is released regardless.
Napi::Value Close(const Napi::CallbackInfo& info) {
  int64_t fd;
  if (!ArgInt(info, 0, &fd)) return info.Env().Undefined();
  Instance* in = Of(info.Env()).get();
  return RunIo(info.Env(), [in, fd](std::vector<int64_t>*) -> int64_t {
    {
      // Forgotten before the close: once closed the number may be reused by another open.
      std::lock_guard<std::mutex> lock(in->fdsLock);
      in->fds.erase(static_cast<int>(fd));
    }
    if (close(static_cast<int>(fd)) < 0 && errno != EINTR) return NegErrno();
    return 0;
  });
}

Napi::Value FstatSize(const Napi::CallbackInfo& info) {
  int64_t fd;
  if (!ArgInt(info, 0, &fd)) return info.Env().Undefined();
  return RunIo(info.Env(), [fd](std::vector<int64_t>*) -> int64_t {
    struct stat st;
    if (fstat(static_cast<int>(fd), &st) < 0) return NegErrno();
    return st.st_size;
  });
}

// pwrite(fd, bytes, position) -> bytes written (always all of them).
Napi::Value Pwrite(const Napi::CallbackInfo& info) {
  int64_t fd, position;
  uint8_t* data;
  size_t length;
  if (!ArgInt(info, 0, &fd) || !ArgBytes(info, 1, &data, &length) || !ArgInt(info, 2, &position)) {
    return info.Env().Undefined();
  }
  Instance* in = Of(info.Env()).get();
  return RunIo(
      info.Env(),
      [in, fd, data, length, position](std::vector<int64_t>*) { return WriteAll(in, static_cast<int>(fd), data, length, position); },
      {info[1].As<Napi::Object>()});
}

// pread(fd, into, position) -> bytes read (fewer only at end of file).
Napi::Value Pread(const Napi::CallbackInfo& info) {
  int64_t fd, position;
  uint8_t* data;
  size_t length;
  if (!ArgInt(info, 0, &fd) || !ArgBytes(info, 1, &data, &length) || !ArgInt(info, 2, &position)) {
    return info.Env().Undefined();
  }
  Instance* in = Of(info.Env()).get();
  return RunIo(
      info.Env(),
      [in, fd, data, length, position](std::vector<int64_t>*) { return ReadUpTo(in, static_cast<int>(fd), data, length, position); },
      {info[1].As<Napi::Object>()});
}

Napi::Value Pwritev(const Napi::CallbackInfo& info) {
  VectorArgs a;
  if (!ArgVector(info, &a)) return info.Env().Undefined();
  Instance* in = Of(info.Env()).get();
  return RunIo(
      info.Env(),
      [in, fd = a.fd, iov = a.iov, position = a.position](std::vector<int64_t>*) { return TransferV(in, fd, iov, position, true); },
      a.keep);
}

// pwritevSync(fd, chunks, position) -> bytes written (all) or -errno, on the
// calling thread. For small writes into the page cache, where a threadpool
// round trip costs more than the copy; the caller decides when a write may
// run here (never an fdatasync, never O_DIRECT or O_DSYNC files).
Napi::Value PwritevSync(const Napi::CallbackInfo& info) {
  VectorArgs a;
  if (!ArgVector(info, &a)) return info.Env().Undefined();
  int64_t result = TransferV(Of(info.Env()).get(), a.fd, std::move(a.iov), a.position, true);
  return Napi::Number::New(info.Env(), static_cast<double>(result));
}

// pwritevDatasync(fd, buffers, position) -> bytes written, once an fdatasync
// made them durable: both in one threadpool job, with no trip to JS between.
Napi::Value PwritevDatasync(const Napi::CallbackInfo& info) {
  VectorArgs a;
  if (!ArgVector(info, &a)) return info.Env().Undefined();
  Instance* in = Of(info.Env()).get();
  return RunIo(
      info.Env(),
      [in, fd = a.fd, iov = a.iov, position = a.position](std::vector<int64_t>*) -> int64_t {
        int64_t written = TransferV(in, fd, iov, position, true);
        if (written < 0) return written;
        int64_t synced = Datasync(in, fd);
        return synced < 0 ? synced : written;
      },
      a.keep);
}

Napi::Value Preadv(const Napi::CallbackInfo& info) {
  VectorArgs a;
  if (!ArgVector(info, &a)) return info.Env().Undefined();
  Instance* in = Of(info.Env()).get();
  return RunIo(
      info.Env(),
      [in, fd = a.fd, iov = a.iov, position = a.position](std::vector<int64_t>*) { return TransferV(in, fd, iov, position, false); },
      a.keep);
}

Napi::Value Fsync(const Napi::CallbackInfo& info) {
  int64_t fd;
  if (!ArgInt(info, 0, &fd)) return info.Env().Undefined();
  Instance* in = Of(info.Env()).get();
  return RunIo(info.Env(), [in, fd](std::vector<int64_t>*) -> int64_t {
    if (int e = TakeFault(in, kFaultFsync)) return -e;
    int r = fsync(static_cast<int>(fd));
    in->counters.fsyncCalls++;
    return r < 0 ? NegErrno() : 0;
  });
}

Napi::Value Fdatasync(const Napi::CallbackInfo& info) {
  int64_t fd;
  if (!ArgInt(info, 0, &fd)) return info.Env().Undefined();
  Instance* in = Of(info.Env()).get();
  return RunIo(info.Env(), [in, fd](std::vector<int64_t>*) { return Datasync(in, static_cast<int>(fd)); });
}

// fallocate(fd, mode, offset, length); mode 0 or FALLOC_FL_KEEP_SIZE.
Napi::Value Fallocate(const Napi::CallbackInfo& info) {
  int64_t fd, mode, offset, length;
  if (!ArgInt(info, 0, &fd) || !ArgInt(info, 1, &mode) || !ArgInt(info, 2, &offset) || !ArgInt(info, 3, &length)) {
    return info.Env().Undefined();
  }
  return RunIo(info.Env(), [fd, mode, offset, length](std::vector<int64_t>*) -> int64_t {
    int r;
    do r = fallocate(static_cast<int>(fd), static_cast<int>(mode), offset, length);
    while (r < 0 && errno == EINTR);
    return r < 0 ? NegErrno() : 0;
  });
}

Napi::Value Ftruncate(const Napi::CallbackInfo& info) {
  int64_t fd, length;
  if (!ArgInt(info, 0, &fd) || !ArgInt(info, 1, &length)) return info.Env().Undefined();
  Instance* in = Of(info.Env()).get();
  return RunIo(info.Env(), [in, fd, length](std::vector<int64_t>*) -> int64_t {
    if (int e = TakeFault(in, kFaultFtruncate)) return -e;
    int r;
    do r = ftruncate(static_cast<int>(fd), length);
    while (r < 0 && errno == EINTR);
    return r < 0 ? NegErrno() : 0;
  });
}

// posix_fadvise returns the error number instead of setting errno.
Napi::Value Fadvise(const Napi::CallbackInfo& info) {
  int64_t fd, offset, length, advice;
  if (!ArgInt(info, 0, &fd) || !ArgInt(info, 1, &offset) || !ArgInt(info, 2, &length) || !ArgInt(info, 3, &advice)) {
    return info.Env().Undefined();
  }
  return RunIo(info.Env(), [fd, offset, length, advice](std::vector<int64_t>*) -> int64_t {
    int r = posix_fadvise(static_cast<int>(fd), offset, length, static_cast<int>(advice));
    return r == 0 ? 0 : -static_cast<int64_t>(r);
  });
}

Napi::Value SyncFileRange(const Napi::CallbackInfo& info) {
  int64_t fd, offset, length, flags;
  if (!ArgInt(info, 0, &fd) || !ArgInt(info, 1, &offset) || !ArgInt(info, 2, &length) || !ArgInt(info, 3, &flags)) {
    return info.Env().Undefined();
  }
  return RunIo(info.Env(), [fd, offset, length, flags](std::vector<int64_t>*) -> int64_t {
    int r;
    do r = sync_file_range(static_cast<int>(fd), offset, length, static_cast<unsigned>(flags));
    while (r < 0 && errno == EINTR);
    return r < 0 ? NegErrno() : 0;
  });
}

}  // namespace

void InitFile(Napi::Env env, Napi::Object exports) {
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("fstatSize", Napi::Function::New(env, FstatSize, "fstatSize"));
  exports.Set("pwrite", Napi::Function::New(env, Pwrite, "pwrite"));
  exports.Set("pread", Napi::Function::New(env, Pread, "pread"));
  exports.Set("pwritev", Napi::Function::New(env, Pwritev, "pwritev"));
  exports.Set("pwritevSync", Napi::Function::New(env, PwritevSync, "pwritevSync"));
  exports.Set("pwritevDatasync", Napi::Function::New(env, PwritevDatasync, "pwritevDatasync"));
  exports.Set("preadv", Napi::Function::New(env, Preadv, "preadv"));
  exports.Set("fsync", Napi::Function::New(env, Fsync, "fsync"));
  exports.Set("fdatasync", Napi::Function::New(env, Fdatasync, "fdatasync"));
  exports.Set("fallocate", Napi::Function::New(env, Fallocate, "fallocate"));
  exports.Set("ftruncate", Napi::Function::New(env, Ftruncate, "ftruncate"));
  exports.Set("fadvise", Napi::Function::New(env, Fadvise, "fadvise"));
  exports.Set("syncFileRange", Napi::Function::New(env, SyncFileRange, "syncFileRange"));

  Napi::Object c = Napi::Object::New(env);
  c.Set("FALLOC_FL_KEEP_SIZE", FALLOC_FL_KEEP_SIZE);
  c.Set("POSIX_FADV_NORMAL", POSIX_FADV_NORMAL);
  c.Set("POSIX_FADV_SEQUENTIAL", POSIX_FADV_SEQUENTIAL);
  c.Set("POSIX_FADV_RANDOM", POSIX_FADV_RANDOM);
  c.Set("POSIX_FADV_WILLNEED", POSIX_FADV_WILLNEED);
  c.Set("POSIX_FADV_DONTNEED", POSIX_FADV_DONTNEED);
  c.Set("POSIX_FADV_NOREUSE", POSIX_FADV_NOREUSE);
  c.Set("SYNC_FILE_RANGE_WAIT_BEFORE", SYNC_FILE_RANGE_WAIT_BEFORE);
  c.Set("SYNC_FILE_RANGE_WRITE", SYNC_FILE_RANGE_WRITE);
  c.Set("SYNC_FILE_RANGE_WAIT_AFTER", SYNC_FILE_RANGE_WAIT_AFTER);
  c.Set("O_DIRECT", O_DIRECT);
  c.Set("O_DSYNC", O_DSYNC);
  exports.Set("constants", c);
}

}  // namespace seglog
