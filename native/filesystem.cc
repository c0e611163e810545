// Directories and what a filesystem says about a path, and the directory
// lock: a directory's fsync, statx's O_DIRECT alignment, free space
// (statvfs), the sizes of many files of one directory, and a non-blocking
// flock.
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common.h"

namespace seglog {

namespace {

// fsyncDir(path): makes creations, renames and unlinks in it durable.
Napi::Value FsyncDir(const Napi::CallbackInfo& info) {
  std::string path;
  if (!ArgString(info, 0, &path)) return info.Env().Undefined();
  Instance* in = Of(info.Env()).get();
  return RunIo(info.Env(), [in, path](std::vector<int64_t>*) -> int64_t {
    int fd;
    do fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return NegErrno();
    int fault = TakeFault(in, kFaultFsync);
    int64_t result = fault != 0 ? -fault : (fsync(fd) < 0 ? NegErrno() : 0);
    in->counters.fsyncCalls++;
    close(fd);
    return result;
  });
}

// statxDio(path) -> [0, memAlign, offsetAlign, devMajor, devMinor]; the
// alignments are 0 when the kernel or filesystem does not report them.
Napi::Value StatxDio(const Napi::CallbackInfo& info) {
  std::string path;
  if (!ArgString(info, 0, &path)) return info.Env().Undefined();
  return RunIo(info.Env(), [path](std::vector<int64_t>* extra) -> int64_t {
    struct statx stx;
    if (statx(AT_FDCWD, path.c_str(), 0, STATX_BASIC_STATS | STATX_DIOALIGN, &stx) < 0) return NegErrno();
    bool reported = (stx.stx_mask & STATX_DIOALIGN) != 0;
    extra->push_back(reported ? stx.stx_dio_mem_align : 0);
    extra->push_back(reported ? stx.stx_dio_offset_align : 0);
    extra->push_back(stx.stx_dev_major);
    extra->push_back(stx.stx_dev_minor);
    return 0;
  });
}

// freeBytes(path) -> bytes available to unprivileged writers (f_bavail * f_frsize),
// or -ENODATA when the filesystem reports no size at all (0 total blocks, as
// FUSE filesystems without statfs do): its free space is unknown, not zero.
Napi::Value FreeBytes(const Napi::CallbackInfo& info) {
  std::string path;
  if (!ArgString(info, 0, &path)) return info.Env().Undefined();
  return RunIo(info.Env(), [path](std::vector<int64_t>*) -> int64_t {
    struct statvfs st;
    int r;
    do r = statvfs(path.c_str(), &st);
    while (r < 0 && errno == EINTR);
    if (r < 0) return NegErrno();
    if (st.f_blocks == 0) return -ENODATA;
    return static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
  });
}

// statSizes(dir, names) -> [0, size or -errno per name]: one threadpool job
// for what would otherwise be one job per file (fstatat on the directory).
Napi::Value StatSizes(const Napi::CallbackInfo& info) {
  std::string dir;
  if (!ArgString(info, 0, &dir)) return info.Env().Undefined();
  if (info.Length() < 2 || !info[1].IsArray()) {
    TypeFail(info.Env(), "expected an array of names");
    return info.Env().Undefined();
  }
  auto array = info[1].As<Napi::Array>();
  std::vector<std::string> names(array.Length());
  for (uint32_t k = 0; k < names.size(); k++) {
    Napi::Value v = array.Get(k);
    if (!v.IsString()) {
      TypeFail(info.Env(), "expected an array of names");
      return info.Env().Undefined();
    }
    names[k] = v.As<Napi::String>().Utf8Value();
    if (names[k].find('\0') != std::string::npos) {
      TypeFail(info.Env(), "name contains a NUL byte");
      return info.Env().Undefined();
    }
  }
  return RunIo(info.Env(), [dir, names](std::vector<int64_t>* extra) -> int64_t {
    int dfd;
    do dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    while (dfd < 0 && errno == EINTR);
    if (dfd < 0) return NegErrno();
    extra->reserve(names.size());
    for (const std::string& name : names) {
      struct stat st;
      int r;
      do r = fstatat(dfd, name.c_str(), &st, 0);
      while (r < 0 && errno == EINTR);
      extra->push_back(r < 0 ? NegErrno() : static_cast<int64_t>(st.st_size));
    }
    close(dfd);
    return 0;
  });
}

// tryLockExclusive(fd) -> 1 locked, 0 held by another open file description,
// or -errno. flock with LOCK_NB never waits, so it runs on the calling thread.
Napi::Value TryLockExclusive(const Napi::CallbackInfo& info) {
  int64_t fd;
  if (!ArgInt(info, 0, &fd)) return info.Env().Undefined();
  int r;
  do r = flock(static_cast<int>(fd), LOCK_EX | LOCK_NB);
  while (r < 0 && errno == EINTR);
  int64_t result = r == 0 ? 1 : errno == EWOULDBLOCK ? 0 : NegErrno();
  return Napi::Number::New(info.Env(), static_cast<double>(result));
}

}  // namespace

void InitFilesystem(Napi::Env env, Napi::Object exports) {
  exports.Set("fsyncDir", Napi::Function::New(env, FsyncDir, "fsyncDir"));
  exports.Set("statxDio", Napi::Function::New(env, StatxDio, "statxDio"));
  exports.Set("freeBytes", Napi::Function::New(env, FreeBytes, "freeBytes"));
  exports.Set("statSizes", Napi::Function::New(env, StatSizes, "statSizes"));
  exports.Set("tryLockExclusive", Napi::Function::New(env, TryLockExclusive, "tryLockExclusive"));
}

}  // namespace seglog
