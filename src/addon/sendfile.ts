// sendfile(2) from a file to a socket, waiting on the event loop when the
// socket is full.
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
 * Sends [position, position+length) of `file` to the connected non-blocking
 * socket `socketFd` with sendfile(2). Resolves with the bytes sent (fewer than
 * `length` only if the file ends first); rejects with a SeglogError carrying
 * `bytesSent` on EPIPE, ECONNRESET and the like. Callers must not write to the
 * socket from JS while a transfer runs.
 */
export async function sendfile(socketFd: number, file: File, position: number, length: number, options?: SendfileOptions): Promise<number> {
  if (!(file instanceof File)) throw new TypeError('file must be a File');
  const transfer = checkSendfile(socketFd, file, position, length, options);
  return file.pin(transfer);
}

/** Checks sendfile()'s arguments; the result runs the transfer from an open descriptor of `file`. */
function checkSendfile(socketFd: number, file: File, position: number, length: number, options: SendfileOptions | undefined): (fd: number) => Promise<number> {
  checkInteger('socketFd', socketFd, 0, INT32_MAX);
  checkInteger('position', position);
  checkInteger('length', length, 0, MAX_OFFSET - position);
  const o = checkOptions<SendfileOptions>('options', options);
  const chunk = o.chunkBytes === undefined ? 1 << 20 : checkInteger('options.chunkBytes', o.chunkBytes, 1, INT32_MAX);
  const signal = o.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError('options.signal must be an AbortSignal');
  // An early abort fails like a late one, so callers check one error code.
  if (signal?.aborted) throw errnoError(-osConstants.errno.ECANCELED, 'sendfile', file.path, { bytesSent: 0 });
  return async (fd) => {
    const transfer = addon.sendfile(socketFd, fd, position, length, chunk);
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
