// sendfile(2) from a file to a socket, waiting on the event loop when the
// socket is full. Rounds whose file pages are cached run on the JS thread;
// the others on the threadpool (native/sendfile.cc).
import { constants as osConstants } from 'node:os';
import { errnoError } from '../errors.js';
import { checkInteger, checkOptions } from '../validate.js';
import { addon, INT32_MAX, MAX_OFFSET } from './load.js';
import { File } from './file.js';

export interface SendfileOptions {
  /** Most bytes one sendfile(2) call may move. Default 1 MiB. */
  chunkBytes?: number;
  /** Stops the transfer; it then rejects with ECANCELED and bytesSent. */
  signal?: AbortSignal;
}

/**
 * A connected non-blocking socket that sendfile(2) writes to, opened once
 * and used for transfer after transfer: a dup() of its fd polled for
 * writability (libuv already polls the fd itself). It holds the socket open
 * until close(), which the owner calls when the socket closes.
 */
export class SendfileSocket {
  #id: number;

  private constructor(id: number) {
    this.#id = id;
  }

  /** ENOTSOCK when `socketFd` is not a socket (a pipe, a tty, a file); the error carries `bytesSent: 0`, as a failed transfer's does. */
  static open(socketFd: number, path?: string): SendfileSocket {
    checkInteger('socketFd', socketFd, 0, INT32_MAX);
    const id = addon.sendfileSink(socketFd);
    if (id < 0) throw errnoError(id, 'sendfile', path, { bytesSent: 0 });
    return new SendfileSocket(id);
  }

  /**
   * Sends [position, position+length) of `file`. Resolves with the bytes
   * sent (fewer than `length` only if the file ends first); rejects with a
   * SeglogError carrying `bytesSent` on EPIPE, ECONNRESET and the like. One
   * transfer at a time (EBUSY otherwise); callers must not write to the
   * socket from JS while it runs.
   */
  send(file: File, position: number, length: number, options?: SendfileOptions): Promise<number> {
    try {
      if (!(file instanceof File)) throw new TypeError('file must be a File');
      const transfer = checkSendfile(() => this.#id, file, position, length, options);
      return file.pin(transfer);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Closes the dup now, or as soon as a transfer under way settles; later sends fail with EBADF. */
  close(): void {
    if (this.#id === 0) return;
    addon.sendfileSinkClose(this.#id);
    this.#id = 0;
  }
}

/**
 * Sends [position, position+length) of `file` to the connected non-blocking
 * socket `socketFd` with sendfile(2); see SendfileSocket.send. Opens and
 * closes a SendfileSocket per call: a caller that sends to a socket again
 * and again keeps one instead.
 */
export async function sendfile(socketFd: number, file: File, position: number, length: number, options?: SendfileOptions): Promise<number> {
  if (!(file instanceof File)) throw new TypeError('file must be a File');
  checkInteger('socketFd', socketFd, 0, INT32_MAX);
  checkSendfile(() => 0, file, position, length, options);
  // A closed file rejects before a socket is touched.
  void file.fd;
  const socket = SendfileSocket.open(socketFd, file.path);
  try {
    return await socket.send(file, position, length, options);
  } finally {
    socket.close();
  }
}

/** Checks a transfer's arguments; the result runs it from an open descriptor of `file` to the sink `sinkId()` names then. */
function checkSendfile(sinkId: () => number, file: File, position: number, length: number, options: SendfileOptions | undefined): (fd: number) => Promise<number> {
  checkInteger('position', position);
  checkInteger('length', length, 0, MAX_OFFSET - position);
  const o = checkOptions<SendfileOptions>('options', options);
  const chunk = o.chunkBytes === undefined ? 1 << 20 : checkInteger('options.chunkBytes', o.chunkBytes, 1, INT32_MAX);
  const signal = o.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError('options.signal must be an AbortSignal');
  // An early abort fails like a late one, so callers check one error code.
  if (signal?.aborted) throw errnoError(-osConstants.errno.ECANCELED, 'sendfile', file.path, { bytesSent: 0 });
  return async (fd) => {
    const transfer = addon.sendfile(sinkId(), fd, position, length, chunk);
    const abort = () => addon.sendfileCancel(transfer.id);
    signal?.addEventListener('abort', abort, { once: true });
    try {
      const [code, sent] = await transfer;
      if (code < 0) {
        throw errnoError(code, 'sendfile', file.path, { bytesSent: sent });
      }
      return sent;
    } finally {
      signal?.removeEventListener('abort', abort);
    }
  };
}
