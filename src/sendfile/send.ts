// Sends file slices, and small buffers such as response headers, to a stream
// at their place in its write order (see write-order.ts). To a plain TCP or
// Unix socket the file bytes go with sendfile(2), never entering the JS heap;
// to anything else (TLS sockets, other Writables, sockets over pipes) they are
// read and written in chunks, with the same ordering and the same results.
import net from 'node:net';
import { Writable } from 'node:stream';
import tls from 'node:tls';
import { SeglogError } from '../errors.js';
import { File, SendfileSocket } from '../native.js';
import { checkInteger, checkOptions } from '../validate.js';
import { inWriteOrder, unlessAborted, type Slot } from './write-order.js';

/** [position, position+length) of `file`. */
export interface FileSlice {
  file: File;
  position: number;
  length: number;
}

/** What sendParts() sends: bytes as they are, or a slice of a file. */
export type Part = Uint8Array | FileSlice;

// Copies go through a fresh buffer per chunk (a stream may keep a chunk after
// taking it); 256 KiB keeps the pread and write hops per byte low.
const COPY_CHUNK = 256 * 1024;

/** sendParts() for one slice of a file. */
export function sendSlice(stream: Writable, file: File, position: number, length: number): Promise<number> {
  return sendParts(stream, [{ file, position, length }]);
}

/**
 * Sends `parts`, in order, to `stream` at this call's place in its write
 * order: `stream.write(header); sendParts(stream, body); stream.write(next)`
 * comes out in that order whether or not the caller awaits. `parts` may be a
 * promise: the place is taken now, the content sent when both it and the
 * place's turn have come.
 *
 * Each file is held open from the moment the parts are known until the
 * transfer ends, so closing it meanwhile (retention, truncation) waits instead
 * of breaking the transfer. Resolves with the bytes sent. Bad arguments and
 * files closed before the call reject without touching the stream. Any later
 * failure (the peer resets, the stream closes, a file is shorter than its
 * slice) rejects with a SeglogError carrying `bytesSent` and `cause`, and
 * destroys the stream as a failed write() does: the receiver would otherwise
 * take the bytes after it for the missing ones.
 *
 * A net.Socket's bytesWritten does not count bytes sent with sendfile(2).
 */
export function sendParts(stream: Writable, parts: readonly Part[] | PromiseLike<readonly Part[]>): Promise<number> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let ready: Part[] | Promise<Part[]>;
  try {
    if (!(stream instanceof Writable)) throw new TypeError('stream must be a stream.Writable (e.g. a net.Socket)');
    ready = isPromiseLike(parts) ? Promise.resolve(parts).then((p) => holdOpen(p, released)) : holdOpen(parts, released);
  } catch (err) {
    release();
    return Promise.reject(err);
  }
  // Reported when the place's turn comes, through the transfer's failure.
  if (ready instanceof Promise) ready.catch(() => undefined);
  let sent = 0;
  const count = (n: number) => {
    sent += n;
  };
  const transfer = inWriteOrder(stream, async (slot) => {
    for (const part of await ready) {
      if (!(part instanceof Uint8Array)) {
        await sendFileSlice(stream, slot, part, count);
      } else if (part.length > 0) {
        await slot.write(part);
        count(part.length);
      }
    }
  });
  return transfer
    .then(
      () => sent,
      (err: unknown) => {
        throw transferError(err, sent);
      },
    )
    .finally(release);
}

function isPromiseLike(value: unknown): value is PromiseLike<readonly Part[]> {
  return typeof (value as PromiseLike<unknown> | undefined)?.then === 'function';
}

/**
 * Checks `parts` and pins each file until `released` (a pinned File stays
 * usable even if close() is called meanwhile); ECLOSED if one is already closed.
 */
function holdOpen(parts: unknown, released: Promise<void>): Part[] {
  if (!Array.isArray(parts)) throw new TypeError('parts must be an array of Uint8Array and { file, position, length }');
  const files = new Set<File>();
  parts.forEach((part: unknown, i) => {
    if (part instanceof Uint8Array) return;
    const s = checkOptions<FileSlice>(`parts[${i}]`, part);
    if (!(s.file instanceof File)) throw new TypeError(`parts[${i}] must be a Uint8Array or { file: File, position, length }`);
    const position = checkInteger(`parts[${i}].position`, s.position);
    checkInteger(`parts[${i}].length`, s.length, 0, Number.MAX_SAFE_INTEGER - position);
    files.add(s.file);
  });
  // Reading fd throws ECLOSED for a closed file: checked for all before any is pinned.
  for (const file of files) void file.fd;
  for (const file of files) void file.pin(() => released);
  return parts as Part[];
}

async function sendFileSlice(stream: Writable, slot: Slot, slice: FileSlice, count: (n: number) => void): Promise<void> {
  const socket = await zeroCopySocket(stream, slot.signal);
  if (socket === undefined) return copySlice(slot, slice, count);
  const sent = await socket.send(slice.file, slice.position, slice.length, { signal: slot.signal }).catch((err: SeglogError) => {
    count(err.bytesSent ?? 0);
    throw err;
  });
  count(sent);
  if (sent < slice.length) throw endedEarly(slice, sent);
}

/**
 * Each socket's SendfileSocket, opened at its first transfer and closed with
 * the socket; null for one sendfile(2) cannot write to (a net.Socket over a
 * pipe or a tty: the addon serves sockets only, so the bytes are copied).
 */
const sendfileSockets = new WeakMap<net.Socket, SendfileSocket | null>();

/** What sendfile(2) can write to once `stream` is connected, or undefined when the bytes must be copied. */
async function zeroCopySocket(stream: Writable, signal: AbortSignal): Promise<SendfileSocket | undefined> {
  if (!(stream instanceof net.Socket) || stream instanceof tls.TLSSocket) return undefined;
  if (stream.connecting) await unlessAborted(signal, (resolve) => stream.once('connect', resolve));
  let socket = sendfileSockets.get(stream);
  if (socket === undefined) {
    const fd = (stream as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) return undefined;
    // Not yet closed (the signal aborts on 'close'), so the listener below will run.
    signal.throwIfAborted();
    try {
      socket = SendfileSocket.open(fd);
    } catch (err) {
      if ((err as SeglogError).code !== 'ENOTSOCK') throw err;
      socket = null;
    }
    sendfileSockets.set(stream, socket);
    // The dup holds the socket open: it goes when the socket does.
    if (socket !== null) stream.once('close', () => socket!.close());
  }
  return socket ?? undefined;
}

async function copySlice(slot: Slot, slice: FileSlice, count: (n: number) => void): Promise<void> {
  for (let done = 0; done < slice.length; ) {
    slot.signal.throwIfAborted();
    const chunk = Buffer.allocUnsafe(Math.min(COPY_CHUNK, slice.length - done));
    const n = await slice.file.read(chunk, slice.position + done);
    if (n === 0) throw endedEarly(slice, done);
    await slot.write(chunk.subarray(0, n));
    done += n;
    count(n);
  }
}

function endedEarly(slice: FileSlice, sent: number): SeglogError {
  const at = slice.position + sent;
  return new SeglogError('ECORRUPT', `${slice.file.path} ended at ${at}, before the ${slice.position + slice.length} its slice needs`, {
    path: slice.file.path,
    position: at,
  });
}

/** The error a failed transfer rejects with: the cause's code and details, and the bytes sent in all. */
function transferError(cause: unknown, bytesSent: number): SeglogError {
  const e = cause as Partial<SeglogError> | undefined;
  const code = typeof e?.code === 'string' ? e.code : 'ERR_STREAM_DESTROYED';
  const message = typeof e?.message === 'string' ? e.message : String(cause);
  return new SeglogError(code, message, {
    ...(typeof e?.errno === 'number' ? { errno: e.errno } : {}),
    ...(typeof e?.syscall === 'string' ? { syscall: e.syscall } : {}),
    ...(typeof e?.path === 'string' ? { path: e.path } : {}),
    ...(typeof e?.position === 'number' ? { position: e.position } : {}),
    bytesSent,
    cause,
  });
}
