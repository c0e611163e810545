// Reads served from the page cache on the calling thread: preadv2 with
// RWF_NOWAIT takes what is cached and refuses (EAGAIN) rather than wait for
// the disk, so it is safe on the event loop. The caller reads what is
// missing on the threadpool (File.readHot).
#include <errno.h>
#include <sys/uio.h>

#include "common.h"

namespace seglog {

namespace {

// preadNowait(fd, into, position) -> bytes read from the page cache: all of
// them, fewer where the uncached part begins or the file ends, or -EAGAIN
// when nothing was cached.
Napi::Value PreadNowait(const Napi::CallbackInfo& info) {
  int64_t fd, position;
  uint8_t* data;
  size_t length;
  if (!ArgInt(info, 0, &fd) || !ArgBytes(info, 1, &data, &length) || !ArgInt(info, 2, &position)) {
    return info.Env().Undefined();
  }
  Instance* in = Of(info.Env()).get();
  size_t done = 0;
  int64_t result = 0;
  while (done < length) {
    iovec v{data + done, length - done};
    in->counters.preadCalls++;
    ssize_t n = preadv2(static_cast<int>(fd), &v, 1, position + static_cast<int64_t>(done), RWF_NOWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      // What was read so far stands; the caller reads the rest the slow way.
      if (done == 0 || errno != EAGAIN) result = NegErrno();
      break;
    }
    if (n == 0) break;  // end of file
    done += static_cast<size_t>(n);
  }
  return Napi::Number::New(info.Env(), static_cast<double>(result < 0 ? result : static_cast<int64_t>(done)));
}

}  // namespace

void InitReadNowait(Napi::Env env, Napi::Object exports) {
  exports.Set("preadNowait", Napi::Function::New(env, PreadNowait, "preadNowait"));
}

}  // namespace seglog
