// sendfile(2) to sockets: byte-exact transfers over loopback TCP, the
// would-block/poll path, peer failures, cancellation, ranges, bad arguments,
// and proof (counters and strace) that the kernel's sendfile moved the bytes.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import { SeglogError } from '../src/errors.js';
import { File, sendfile, SendfileSocket, stats } from '../src/native.js';
import { openFdCount, tempDir } from './helpers/tmp.js';

const MiB = 1 << 20;
const ECANCELED = -osConstants.errno.ECANCELED;
const ADDON = fileURLToPath(new URL('../build/Release/seglog.node', import.meta.url));

// ------------------------------------------------------------------ helpers

interface Pair {
  /** Connected client socket; its fd is handed to sendfile, JS never writes to it. */
  sender: net.Socket;
  /** Server side; starts paused so nothing is read until resume(). */
  receiver: net.Socket;
  fd: number;
  /** Every byte the receiver has read so far. */
  received(): Buffer;
  /** Resolves once the receiver saw end or close. */
  ended: Promise<void>;
}

// Sockets and servers to tear down after each test, so a failing test does
// not leave the loop alive or leak fds into the next one.
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function closed(socket: net.Socket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

/**
 * `count` connected loopback TCP pairs behind one server. With senderIdle,
 * Node never reads from the sender, so only sendfile's own poll can notice a
 * failing peer; otherwise Node's read sees it too and closes the sender's fd
 * while the transfer still holds its dup.
 */
async function socketPairs(count: number, { senderIdle = false } = {}): Promise<Pair[]> {
  const accepted = new Map<number, net.Socket>();
  const waiting = new Map<number, (s: net.Socket) => void>();
  // pauseOnConnect: the kernel receive buffer fills until the test resumes.
  const server = net.createServer({ pauseOnConnect: true }, (s) => {
    s.on('error', () => {});
    const port = s.remotePort!;
    const w = waiting.get(port);
    if (w !== undefined) w(s);
    else accepted.set(port, s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const pairs: Pair[] = [];
  const all: net.Socket[] = [];
  cleanups.push(async () => {
    for (const s of all) s.destroy();
    await Promise.all(all.map(closed));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as net.AddressInfo;
  for (let i = 0; i < count; i++) {
    const sender = net.connect(port, '127.0.0.1');
    // Paused before connecting: Node then never starts reading it.
    if (senderIdle) sender.pause();
    all.push(sender);
    // A reset peer surfaces as a read error on the sender too; the test checks sendfile's report instead.
    sender.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      sender.once('connect', resolve);
      sender.once('error', reject);
    });
    const local = sender.localPort!;
    const receiver = accepted.get(local) ?? (await new Promise<net.Socket>((resolve) => waiting.set(local, resolve)));
    all.push(receiver);
    // pause() first: adding a 'data' listener to a stream never paused would start reading.
    receiver.pause();
    const chunks: Buffer[] = [];
    receiver.on('data', (c: Buffer) => chunks.push(c));
    const ended = new Promise<void>((resolve) => {
      receiver.once('end', resolve);
      receiver.once('close', resolve);
    });
    const fd = (sender as any)._handle.fd as number;
    expect(fd).toBeGreaterThanOrEqual(0);
    pairs.push({ sender, receiver, fd, received: () => Buffer.concat(chunks), ended });
  }
  return pairs;
}

async function socketPair(options?: { senderIdle?: boolean }): Promise<Pair> {
  return (await socketPairs(1, options))[0]!;
}

/** Resumes the receiver and waits until it has read `bytes` bytes in all. */
async function receiveAll(pair: Pair, bytes: number): Promise<Buffer> {
  pair.receiver.resume();
  await until(() => pair.received().length >= bytes, `receiver to read ${bytes} bytes`);
  return pair.received();
}

/**
 * Waits for a condition driven by I/O. The bound only keeps a broken build
 * from hanging; it is not an assertion about speed.
 */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (cond()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A few loop turns: Node closes a destroyed socket's fd and a server's handle asynchronously. */
async function turns(n = 3): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** What /proc/self/fd says `fd` is, e.g. 'socket:[12345]': the same for every dup of it. */
const fdTarget = (fd: number) => readlink(`/proc/self/fd/${fd}`);

/** How many of this process's fds refer to `target` (from fdTarget). */
async function fdsSharing(target: string): Promise<number> {
  let n = 0;
  for (const name of await readdir('/proc/self/fd')) {
    try {
      if ((await readlink(`/proc/self/fd/${name}`)) === target) n++;
    } catch {
      // The fd closed (e.g. readdir's own) between listing and reading.
    }
  }
  return n;
}

async function dataFile(size: number): Promise<{ file: File; data: Buffer; path: string }> {
  const path = join(await tempDir(), 'data');
  const data = randomBytes(size);
  await writeFile(path, data);
  const file = await File.open(path);
  cleanups.push(() => file.close());
  return { file, data, path };
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Settles `p` without throwing, so a test can inspect the rejection. */
async function failure(p: Promise<unknown>): Promise<SeglogError> {
  const r = await p.then(
    (v) => ({ ok: true as const, v }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  if (r.ok) throw new Error(`expected a rejection, got ${String(r.v)}`);
  return r.e as SeglogError;
}

// ------------------------------------------------------------------ tests

describe('sendfile', () => {
  test('8 MiB to a slow receiver: waits on a full socket, then every byte arrives', async () => {
    const { file, data } = await dataFile(8 * MiB);
    const pair = await socketPair();
    const before = stats();
    const sending = sendfile(pair.fd, file, 0, data.length, { chunkBytes: 256 * 1024 });
    // The receiver reads nothing yet, so the socket buffers must fill and the
    // transfer must park on the poll handle; waiting for that is the proof.
    await until(() => stats().sendfileWaits > before.sendfileWaits, 'the socket to fill (sendfileWaits)');
    expect(stats().liveSendfiles).toBe(before.liveSendfiles + 1);
    // Read slowly: stop after every chunk and continue on a later turn, so
    // the sender keeps meeting a full socket.
    pair.receiver.on('data', () => {
      pair.receiver.pause();
      setImmediate(() => pair.receiver.resume());
    });
    const received = await receiveAll(pair, data.length);
    expect(await sending).toBe(data.length);
    expect(received.length).toBe(data.length);
    expect(sha256(received)).toBe(sha256(data));
    expect(Buffer.compare(received, data)).toBe(0);
    const after = stats();
    expect(after.sendfileBytes - before.sendfileBytes).toBe(data.length);
    expect(after.sendfileWaits).toBeGreaterThan(before.sendfileWaits);
    // Settled means released: no tick needed.
    expect(after.liveSendfiles).toBe(before.liveSendfiles);
  });

  test('counters: sendfileBytes grows by exactly the bytes sent, sendfileCalls by at least one per chunk', async () => {
    const { file, data } = await dataFile(3 * MiB + 123);
    const pair = await socketPair();
    pair.receiver.resume();
    const chunk = 64 * 1024;
    const before = stats();
    expect(await sendfile(pair.fd, file, 0, data.length, { chunkBytes: chunk })).toBe(data.length);
    const after = stats();
    expect(after.sendfileBytes - before.sendfileBytes).toBe(data.length);
    // One call can never move more than a chunk; calls that met a full socket add to the count.
    expect(after.sendfileCalls - before.sendfileCalls).toBeGreaterThanOrEqual(Math.ceil(data.length / chunk));
    expect(Buffer.compare(await receiveAll(pair, data.length), data)).toBe(0);
  });

  test('cached pages are sent on the JS thread; evicted ones on the threadpool, with the same bytes', async () => {
    const { file, data } = await dataFile(4 * MiB);
    const pair = await socketPair();
    pair.receiver.resume();
    const received = receiveAll(pair, 2 * data.length);
    const socket = SendfileSocket.open(pair.fd);
    try {
      // writeFile left every page cached: no round goes to a thread.
      expect(file.residentPages(0, data.length).resident).toBe(file.residentPages(0, data.length).total);
      let before = stats();
      expect(await socket.send(file, 0, data.length)).toBe(data.length);
      expect(stats().sendfileQueued).toBe(before.sendfileQueued);
      // Evicted, the first round must not run on the event loop: it would wait for the disk there.
      await file.datasync();
      await file.advise(0, 0, 'dontneed');
      expect(file.residentPages(0, data.length).resident).toBeLessThan(file.residentPages(0, data.length).total);
      before = stats();
      expect(await socket.send(file, 0, data.length)).toBe(data.length);
      expect(stats().sendfileQueued).toBeGreaterThan(before.sendfileQueued);
    } finally {
      socket.close();
    }
    expect(Buffer.compare(await received, Buffer.concat([data, data]))).toBe(0);
  });

  test('a SendfileSocket holds one dup of the socket until closed, refuses a second transfer while one runs, and EBADF after close', async () => {
    const { file, data } = await dataFile(8 * MiB);
    const pair = await socketPair();
    const fds = await openFdCount();
    const live = stats().liveSendfiles;
    const socket = SendfileSocket.open(pair.fd);
    expect(await openFdCount()).toBe(fds + 1);
    // The receiver is paused: the first transfer waits on a full socket.
    const first = socket.send(file, 0, data.length);
    expect(await failure(socket.send(file, 0, 10))).toMatchObject({ code: 'EBUSY', bytesSent: 0 });
    const received = receiveAll(pair, data.length);
    expect(await first).toBe(data.length);
    expect(Buffer.compare(await received, data)).toBe(0);
    expect(await openFdCount()).toBe(fds + 1);
    socket.close();
    expect(await openFdCount()).toBe(fds);
    expect(await failure(socket.send(file, 0, 10))).toMatchObject({ code: 'EBADF', bytesSent: 0 });
    expect(stats().liveSendfiles).toBe(live);
  });

  test('strace shows sendfile(2) moving the bytes, with no read/write copies of the data', async () => {
    const strace = ['/usr/bin/strace', '/bin/strace'].find((p) => existsSync(p));
    // Not a skip: without strace this proof cannot be made, and CI must say so.
    if (strace === undefined) throw new Error('strace not found: install it (apt-get install strace); this test needs it to prove sendfile(2) is used');
    const dir = await tempDir();
    const size = 2 * MiB + 17;
    const chunk = 256 * 1024;
    const path = join(dir, 'data');
    const data = randomBytes(size);
    await writeFile(path, data);
    // The child only sends; the receiver lives here, so every data syscall in
    // the trace belongs to the sending side.
    const script = join(dir, 'send.mjs');
    await writeFile(
      script,
      `import { createRequire } from 'node:module';
import { openSync } from 'node:fs';
import net from 'node:net';
const addon = createRequire(import.meta.url)(${JSON.stringify(ADDON)});
const [port, path, size, chunk] = process.argv.slice(2);
const fileFd = openSync(path, 'r');
const socket = net.connect(Number(port), '127.0.0.1', async () => {
  const socketFd = socket._handle.fd;
  const sink = addon.sendfileSink(socketFd);
  const [code, sent] = await addon.sendfile(sink, fileFd, 0, Number(size), Number(chunk));
  addon.sendfileSinkClose(sink);
  process.stdout.write(JSON.stringify({ socketFd, fileFd, code, sent, stats: addon.stats() }));
  socket.end();
});
`,
    );
    const chunks: Buffer[] = [];
    const server = net.createServer((s) => {
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('error', () => {});
    });
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    const trace = join(dir, 'trace.txt');
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(
        strace,
        ['-f', '-qq', '-yy', '-e', 'trace=sendfile,read,write', '-o', trace, process.execPath, script, String(port), path, String(size), String(chunk)],
        (err, out, errOut) => (err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out)),
      );
    });
    const result = JSON.parse(stdout) as { socketFd: number; fileFd: number; code: number; sent: number; stats: { sendfileBytes: number } };
    expect(result).toMatchObject({ code: 0, sent: size });
    expect(result.stats.sendfileBytes).toBe(size);
    await until(() => chunks.reduce((n, c) => n + c.length, 0) >= size, 'the child’s bytes');
    expect(Buffer.compare(Buffer.concat(chunks), data)).toBe(0);

    const lines = (await readFile(trace, 'utf8')).split('\n');
    // -yy prints each fd as N<what>: the socket as TCP:[child:port->127.0.0.1:port]
    // (sendfile runs on a dup of the socket fd, so the number differs), the file by path.
    const socketTag = `<TCP:\\[127\\.0\\.0\\.1:\\d+->127\\.0\\.0\\.1:${port}\\]>`;
    const fileTag = `<${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}>`;
    // With -f a call can be split into "<unfinished ...>" and "<... sendfile resumed>" lines.
    const starts = lines.filter((l) => /\bsendfile\(/.test(l));
    expect(starts.length).toBeGreaterThanOrEqual(Math.ceil(size / chunk));
    for (const l of starts) {
      expect(l).toMatch(new RegExp(`sendfile\\(\\d+${socketTag}, ${result.fileFd}${fileTag}, `));
      // The count argument: never more than chunkBytes per call.
      const count = /, (\d+)(?:\)| <unfinished)/.exec(l);
      expect(count, l).not.toBeNull();
      expect(Number(count![1])).toBeLessThanOrEqual(chunk);
    }
    let moved = 0;
    for (const l of lines) {
      const m = /(?:\bsendfile\(|<\.\.\. sendfile resumed>).*\)\s+=\s+(\d+)$/.exec(l);
      if (m !== null) moved += Number(m[1]);
    }
    expect(moved).toBe(size);
    // The bytes never went through user space: no write() to the socket, no read() of the file.
    const copies = lines.filter((l) => new RegExp(`\\b(?:write\\(\\d+${socketTag}|read\\(\\d+${fileTag}),`).test(l));
    expect(copies).toEqual([]);
  });

  const reset = (s: net.Socket) => s.resetAndDestroy();
  const close = (s: net.Socket) => s.destroy();
  test.each([
    ['resets (RST)', reset, false],
    ['closes with unread data', close, false],
    ['resets (RST), sender idle in Node', reset, true],
    ['closes with unread data, sender idle in Node', close, true],
  ])('peer %s mid-transfer: rejects with EPIPE/ECONNRESET and bytesSent, leaks nothing', async (_, kill, senderIdle) => {
    const { file, data } = await dataFile(8 * MiB);
    const fdsBefore = await openFdCount();
    const pair = await socketPair({ senderIdle });
    const socketTarget = await fdTarget(pair.fd);
    const before = stats();
    const sending = sendfile(pair.fd, file, 0, data.length, { chunkBytes: 256 * 1024 });
    await until(() => stats().sendfileWaits > before.sendfileWaits, 'the socket to fill (sendfileWaits)');
    kill(pair.receiver);
    const err = await failure(sending);
    expect(err).toBeInstanceOf(SeglogError);
    expect(['EPIPE', 'ECONNRESET']).toContain(err.code);
    expect(err.errno).toBe(-osConstants.errno[err.code as 'EPIPE']);
    expect(err.syscall).toBe('sendfile');
    expect(err.path).toBe(file.path);
    expect(err.bytesSent).toBeGreaterThanOrEqual(0);
    expect(err.bytesSent).toBeLessThan(data.length);
    expect(stats().liveSendfiles).toBe(before.liveSendfiles);
    // The dup is closed: only the sender's own fd still refers to the socket,
    // and not even that once Node, whose read saw the reset too, closed it.
    if (!senderIdle) await closed(pair.sender);
    expect(await fdsSharing(socketTarget)).toBe(senderIdle ? 1 : 0);
    // The file is still usable and unpinned.
    expect(await file.size()).toBe(data.length);
    await cleanups.pop()!();
    await turns();
    expect(await openFdCount()).toBe(fdsBefore);
  });

  test('AbortSignal cancels a transfer parked on a full socket: ECANCELED, exact bytesSent, no leak', async () => {
    const { file, data } = await dataFile(8 * MiB);
    const fdsBefore = await openFdCount();
    const pair = await socketPair();
    const before = stats();
    const ac = new AbortController();
    const sending = sendfile(pair.fd, file, 0, data.length, { chunkBytes: 256 * 1024, signal: ac.signal });
    await until(() => stats().sendfileWaits > before.sendfileWaits, 'the socket to fill (sendfileWaits)');
    // While parked, the transfer holds a dup of the socket.
    const socketTarget = await fdTarget(pair.fd);
    expect(await fdsSharing(socketTarget)).toBe(2);
    expect(stats().liveSendfiles).toBe(before.liveSendfiles + 1);
    ac.abort();
    const err = await failure(sending);
    expect(err).toBeInstanceOf(SeglogError);
    expect(err).toMatchObject({ code: 'ECANCELED', errno: ECANCELED, syscall: 'sendfile' });
    expect(err.bytesSent).toBeGreaterThan(0);
    expect(err.bytesSent).toBeLessThan(data.length);
    // Released as it settled: no tick needed.
    expect(stats().liveSendfiles).toBe(before.liveSendfiles);
    expect(await fdsSharing(socketTarget)).toBe(1);
    // bytesSent is exact: the receiver gets precisely that prefix, then EOF.
    pair.sender.end();
    pair.receiver.resume();
    await pair.ended;
    expect(Buffer.compare(pair.received(), data.subarray(0, err.bytesSent))).toBe(0);
    await cleanups.pop()!();
    await turns();
    expect(await openFdCount()).toBe(fdsBefore);
  });

  test('an already aborted signal rejects with ECANCELED and sends nothing', async () => {
    const { file } = await dataFile(4096);
    const pair = await socketPair();
    const before = stats();
    const err = await failure(sendfile(pair.fd, file, 0, 4096, { signal: AbortSignal.abort() }));
    expect(err).toBeInstanceOf(SeglogError);
    expect(err).toMatchObject({ code: 'ECANCELED', errno: ECANCELED, syscall: 'sendfile', bytesSent: 0 });
    expect(stats().sendfileCalls).toBe(before.sendfileCalls);
  });

  test('32 concurrent transfers on different sockets each deliver their exact bytes', async () => {
    const { file, data } = await dataFile(2 * MiB);
    const pairs = await socketPairs(32);
    const before = stats();
    // Each sends a different range; receivers stay paused at first so the
    // transfers that do not fit the socket buffers pile up on full sockets together.
    const ranges = pairs.map((_, i) => ({ position: i * 7919, length: MiB + i * 4099 }));
    const sending = pairs.map((p, i) => sendfile(p.fd, file, ranges[i]!.position, ranges[i]!.length, { chunkBytes: 128 * 1024 }));
    const received = await Promise.all(pairs.map((p, i) => receiveAll(p, ranges[i]!.length)));
    expect(await Promise.all(sending)).toEqual(ranges.map((r) => r.length));
    received.forEach((r, i) => {
      const { position, length } = ranges[i]!;
      expect(r.length, `pair ${i}`).toBe(length);
      expect(Buffer.compare(r, data.subarray(position, position + length)), `pair ${i}`).toBe(0);
    });
    expect(stats().sendfileBytes - before.sendfileBytes).toBe(ranges.reduce((n, r) => n + r.length, 0));
    expect(stats().liveSendfiles).toBe(before.liveSendfiles);
  });

  test('ranges: position and length are honoured; past the end sends less; length 0 sends nothing', async () => {
    const size = 100_000;
    const { file, data } = await dataFile(size);
    const pair = await socketPair();
    pair.receiver.resume();
    const expected: Buffer[] = [];
    const send = async (position: number, length: number, result: number) => {
      expect(await sendfile(pair.fd, file, position, length, { chunkBytes: 4096 })).toBe(result);
      expected.push(data.subarray(position, position + result));
    };
    await send(1000, 5000, 5000);
    await send(size - 100, 1000, 100); // the file ends first: a short transfer, not an error
    await send(size, 10, 0);
    await send(size + 5000, 10, 0);
    await send(0, 0, 0);
    await send(12345, 1, 1);
    pair.sender.end();
    await pair.ended;
    expect(Buffer.compare(pair.received(), Buffer.concat(expected))).toBe(0);
  });

  test('the file stays open while a transfer runs: close() waits for it to settle', async () => {
    const { file, data } = await dataFile(4 * MiB);
    const pair = await socketPair();
    const before = stats();
    const order: string[] = [];
    const sending = sendfile(pair.fd, file, 0, data.length).then((n) => (order.push('sent'), n));
    await until(() => stats().sendfileWaits > before.sendfileWaits, 'the socket to fill (sendfileWaits)');
    const closing = file.close().then(() => order.push('closed'));
    expect(file.closed).toBe(true);
    await turns();
    expect(order).toEqual([]);
    const received = await receiveAll(pair, data.length);
    expect(await sending).toBe(data.length);
    await closing;
    expect(order).toEqual(['sent', 'closed']);
    expect(Buffer.compare(received, data)).toBe(0);
    // Once the pins are gone the file refuses new work.
    await expect(sendfile(pair.fd, file, 0, 1)).rejects.toMatchObject({ code: 'ECLOSED' });
  });

  describe('unhappy arguments', () => {
    test('wrong types and ranges are TypeError/RangeError before any syscall', async () => {
      const { file } = await dataFile(10);
      const pair = await socketPair();
      const before = stats();
      const bad: Array<[() => Promise<number>, ErrorConstructor]> = [
        [() => sendfile('3' as any, file, 0, 1), TypeError],
        [() => sendfile(undefined as any, file, 0, 1), TypeError],
        [() => sendfile(-1, file, 0, 1), RangeError],
        [() => sendfile(1.5, file, 0, 1), RangeError],
        [() => sendfile(pair.fd, {} as any, 0, 1), TypeError],
        [() => sendfile(pair.fd, 3 as any, 0, 1), TypeError],
        [() => sendfile(pair.fd, file, -1, 1), RangeError],
        [() => sendfile(pair.fd, file, 0, -1), RangeError],
        [() => sendfile(pair.fd, file, Number.NaN, 1), RangeError],
        [() => sendfile(pair.fd, file, '0' as any, 1), TypeError],
        [() => sendfile(pair.fd, file, 0, 1, { chunkBytes: 0 }), RangeError],
        [() => sendfile(pair.fd, file, 0, 1, { signal: {} as any }), TypeError],
        [() => sendfile(pair.fd, file, 0, 1, 'x' as any), TypeError],
      ];
      for (const [call, type] of bad) await expect(call()).rejects.toThrow(type);
      expect(stats().sendfileCalls).toBe(before.sendfileCalls);
      expect(stats().liveSendfiles).toBe(before.liveSendfiles);
    });

    test('a closed File rejects with ECLOSED', async () => {
      const { file } = await dataFile(10);
      const pair = await socketPair();
      await file.close();
      await expect(sendfile(pair.fd, file, 0, 10)).rejects.toMatchObject({ name: 'SeglogError', code: 'ECLOSED' });
    });

    test('an fd that is not a socket, or not open, rejects with an OS error and never crashes', async () => {
      const { file, path } = await dataFile(10);
      const other = await File.open(path);
      cleanups.push(() => other.close());
      const devNull = await File.open('/dev/null');
      cleanups.push(() => devNull.close());
      // A socket, but a listening one: sendfile itself must refuse it.
      const server = net.createServer();
      cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const before = stats();
      const fdsBefore = await openFdCount();
      // 2^31-1 is a valid fd number that is never open.
      const cases: Array<[number, string[]]> = [
        [other.fd, ['ENOTSOCK', 'EINVAL']],
        [devNull.fd, ['ENOTSOCK', 'EINVAL']],
        [file.fd, ['ENOTSOCK', 'EINVAL']],
        [0x7fffffff, ['EBADF']],
        [(server as any)._handle.fd, ['ENOTCONN', 'EPIPE', 'EINVAL']],
      ];
      for (const [fd, codes] of cases) {
        const err = await failure(sendfile(fd, file, 0, 10));
        expect(err, `fd ${fd}`).toBeInstanceOf(SeglogError);
        expect(codes, `fd ${fd}`).toContain(err.code);
        expect(err.errno).toBeLessThan(0);
        expect(err.syscall).toBe('sendfile');
        expect(err.bytesSent).toBe(0);
      }
      expect(stats().liveSendfiles).toBe(before.liveSendfiles);
      expect(await openFdCount()).toBe(fdsBefore);
    });
  });
});
