// sendSlice()/sendParts(): file slices at their place in a stream's write
// order, zero-copy to sockets and by copying to anything else; what happens
// when the stream, the peer or the file goes away.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, openSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';
import { SeglogError } from '../src/errors.js';
import { File, stats } from '../src/native.js';
import { sendParts, sendSlice } from '../src/sendfile/send.js';
import { failure, readSlowly, socketPair, turns, until } from './helpers/sockets.js';
import { openFdCount, tempDir } from './helpers/tmp.js';

const MiB = 1 << 20;

async function dataFile(size: number): Promise<{ file: File; data: Buffer; path: string }> {
  const path = join(await tempDir(), 'data');
  const data = randomBytes(size);
  await writeFile(path, data);
  return { file: await File.open(path), data, path };
}

/** A Writable that takes each chunk on a later turn, with or without _writev. */
function collector(withWritev: boolean): Writable & { bytes(): Buffer } {
  const chunks: Buffer[] = [];
  const later = (cb: () => void) => setImmediate(cb);
  const w = new Writable({
    write(chunk: Buffer, _encoding, cb) {
      chunks.push(chunk);
      later(cb);
    },
    ...(withWritev
      ? {
          writev(batch: Array<{ chunk: Buffer }>, cb: () => void) {
            for (const c of batch) chunks.push(c.chunk);
            later(cb);
          },
        }
      : {}),
  });
  return Object.assign(w, { bytes: () => Buffer.concat(chunks) });
}

describe('ordering', () => {
  test('zero-copy to a socket: writes before and after, corked batches, bytes and slices mixed', async () => {
    const { file, data } = await dataFile(6 * MiB);
    const pair = await socketPair();
    const s = pair.sender;
    const before = stats();
    s.write('a');
    const one = sendSlice(s, file, 0, 5 * MiB);
    s.cork();
    s.write('b');
    const two = sendParts(s, [Buffer.from('<'), { file, position: 100, length: 1000 }, new Uint8Array([62]), { file, position: 5 * MiB, length: MiB }]);
    s.write('c');
    s.uncork();
    s.end('d');
    readSlowly(pair);
    expect(await one).toBe(5 * MiB);
    expect(await two).toBe(2 + 1000 + MiB);
    await pair.ended;
    const wire = Buffer.concat([Buffer.from('a'), data.subarray(0, 5 * MiB), Buffer.from('b<'), data.subarray(100, 1100), Buffer.from('>'), data.subarray(5 * MiB), Buffer.from('cd')]);
    expect(Buffer.compare(pair.received(), wire)).toBe(0);
    expect(stats().sendfileBytes - before.sendfileBytes).toBe(6 * MiB + 1000);
    await file.close();
  });

  test.each([
    ['a Writable with _writev', true],
    ['a Writable without _writev', false],
    ['a PassThrough', undefined],
  ])('copying to %s: same bytes, same order, no sendfile(2)', async (_, withWritev) => {
    const { file, data } = await dataFile(MiB + 77);
    const w = withWritev === undefined ? new PassThrough() : collector(withWritev);
    const out: Buffer[] = [];
    if (w instanceof PassThrough) w.on('data', (c: Buffer) => out.push(c));
    const before = stats();
    w.write('a');
    const one = sendSlice(w, file, 10, MiB);
    w.cork();
    w.write('b');
    const two = sendParts(w, [Buffer.from('<'), { file, position: 0, length: 7 }]);
    w.write('c');
    w.uncork();
    w.end();
    expect(await one).toBe(MiB);
    expect(await two).toBe(8);
    await new Promise((resolve) => w.once('finish', resolve));
    const got = w instanceof PassThrough ? Buffer.concat(out) : (w as ReturnType<typeof collector>).bytes();
    expect(Buffer.compare(got, Buffer.concat([Buffer.from('a'), data.subarray(10, 10 + MiB), Buffer.from('b<'), data.subarray(0, 7), Buffer.from('c')]))).toBe(0);
    expect(stats().sendfileBytes).toBe(before.sendfileBytes);
    await file.close();
  });

  test('a socket still connecting: the transfer waits for the connection, then goes zero-copy', async () => {
    const { file, data } = await dataFile(100_000);
    const got: Buffer[] = [];
    const server = net.createServer((c) => c.on('data', (b: Buffer) => got.push(b)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const s = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    expect(s.connecting).toBe(true);
    const before = stats();
    s.write('a');
    const sent = sendSlice(s, file, 0, data.length);
    s.write('b');
    expect(await sent).toBe(data.length);
    await until(() => Buffer.concat(got).length >= data.length + 2, 'every byte');
    expect(Buffer.compare(Buffer.concat(got), Buffer.concat([Buffer.from('a'), data, Buffer.from('b')]))).toBe(0);
    expect(stats().sendfileBytes - before.sendfileBytes).toBe(data.length);
    s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await file.close();
  });

  test('a net.Socket over a pipe (not a socket for sendfile): copies instead', async () => {
    const { file, data } = await dataFile(300_000);
    const fifo = join(await tempDir(), 'fifo');
    await promisify(execFile)('mkfifo', [fifo]);
    // The read end first: opening the write end of a FIFO without a reader fails with ENXIO.
    const reader = new net.Socket({ fd: openSync(fifo, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK), readable: true, writable: false });
    const writer = new net.Socket({ fd: openSync(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK), readable: false, writable: true });
    const got: Buffer[] = [];
    reader.on('data', (b: Buffer) => got.push(b));
    const before = stats();
    writer.write('a');
    const sent = sendSlice(writer, file, 0, data.length);
    writer.end('b');
    expect(await sent).toBe(data.length);
    await new Promise((resolve) => reader.once('end', resolve));
    expect(Buffer.compare(Buffer.concat(got), Buffer.concat([Buffer.from('a'), data, Buffer.from('b')]))).toBe(0);
    expect(stats().sendfileBytes).toBe(before.sendfileBytes);
    reader.destroy();
    await file.close();
  });
});

describe('lifetime', () => {
  test.each([
    ['destroyed', undefined],
    ['destroyed with an error', new Error('boom')],
  ])('stream %s mid-transfer: this and the queued transfers reject with bytesSent, files unpin, nothing leaks', async (_, reason) => {
    const fdsBefore = await openFdCount();
    const { file, data } = await dataFile(8 * MiB);
    const pair = await socketPair();
    const before = stats();
    const first = sendSlice(pair.sender, file, 0, data.length);
    const queued = sendSlice(pair.sender, file, 0, 10);
    await until(() => stats().sendfileWaits > before.sendfileWaits, 'the socket to fill (sendfileWaits)');
    pair.sender.destroy(reason);
    const err = await failure<SeglogError>(first);
    expect(err).toBeInstanceOf(SeglogError);
    expect(err.code).toBe('ERR_STREAM_DESTROYED');
    if (reason !== undefined) expect(err.cause).toBe(reason);
    expect(err.bytesSent).toBeGreaterThan(0);
    expect(err.bytesSent).toBeLessThan(data.length);
    expect(await failure<SeglogError>(queued)).toMatchObject({ code: 'ERR_STREAM_DESTROYED', bytesSent: 0 });
    expect(stats().liveSendfiles).toBe(before.liveSendfiles);
    // Unpinned: close() has nothing to wait for.
    await file.close();
    await pair.close();
    await turns();
    // No dup of the socket survived.
    expect(await openFdCount()).toBe(fdsBefore);
  });

  test('a file closed while its transfer waits in the queue is still sent whole; close() waits for it', async () => {
    const big = await dataFile(8 * MiB);
    const small = await dataFile(100_000);
    const pair = await socketPair();
    const before = stats();
    const first = sendSlice(pair.sender, big.file, 0, big.data.length);
    const second = sendSlice(pair.sender, small.file, 0, small.data.length);
    await until(() => stats().sendfileWaits > before.sendfileWaits, 'the socket to fill (sendfileWaits)');
    let closed = false;
    const closing = small.file.close().then(() => (closed = true));
    await turns();
    expect(closed).toBe(false);
    readSlowly(pair);
    expect(await first).toBe(big.data.length);
    expect(await second).toBe(small.data.length);
    await closing;
    await until(() => pair.received().length >= big.data.length + small.data.length, 'every byte');
    expect(Buffer.compare(pair.received(), Buffer.concat([big.data, small.data]))).toBe(0);
    await big.file.close();
  });

  test.each([
    ['a socket (zero-copy)', true],
    ['a PassThrough (copying)', false],
  ])('a file shorter than its slice: ECORRUPT with bytesSent, and %s is destroyed', async (_, socket) => {
    const { file, data } = await dataFile(50_000);
    const pair = await socketPair();
    const w = socket ? pair.sender : new PassThrough();
    w.on('error', () => {});
    if (!socket) w.resume();
    const err = await failure<SeglogError>(sendSlice(w, file, 10_000, 60_000));
    expect(err).toBeInstanceOf(SeglogError);
    expect(err).toMatchObject({ code: 'ECORRUPT', path: file.path, position: data.length, bytesSent: data.length - 10_000 });
    await until(() => w.destroyed, 'the stream to be destroyed');
    await file.close();
  });

  test('a promise of parts that rejects fails the transfer and the stream', async () => {
    const pair = await socketPair();
    const boom = new SeglogError('ECORRUPT', 'bad range');
    const err = await failure<SeglogError>(sendParts(pair.sender, Promise.reject(boom)));
    expect(err).toMatchObject({ code: 'ECORRUPT', bytesSent: 0, cause: boom });
    await until(() => pair.sender.destroyed, 'the sender to be destroyed');
  });
});

describe('unhappy arguments', () => {
  test('bad arguments, closed files and ended streams reject at once and leave the stream as it was', async () => {
    const { file } = await dataFile(100);
    const closedFile = (await dataFile(10)).file;
    await closedFile.close();
    const pair = await socketPair();
    const s = pair.sender;
    const bad: Array<[() => Promise<unknown>, ErrorConstructor]> = [
      [() => sendSlice({} as Writable, file, 0, 1), TypeError],
      [() => sendSlice(null as unknown as Writable, file, 0, 1), TypeError],
      [() => sendSlice(s, 'file' as unknown as File, 0, 1), TypeError],
      [() => sendSlice(s, file, -1, 1), RangeError],
      [() => sendSlice(s, file, 0, 1.5), RangeError],
      [() => sendParts(s, 'parts' as never), TypeError],
      [() => sendParts(s, [42] as never), TypeError],
      [() => sendParts(s, [{ file, position: 0, length: -1 }]), RangeError],
    ];
    for (const [call, type] of bad) await expect(call()).rejects.toThrow(type);
    await expect(sendSlice(s, closedFile, 0, 1)).rejects.toMatchObject({ code: 'ECLOSED' });
    // A closed file among open ones: nothing is pinned, the open one still closes.
    await expect(sendParts(s, [{ file, position: 0, length: 1 }, { file: closedFile, position: 0, length: 1 }])).rejects.toMatchObject({ code: 'ECLOSED' });
    s.end('still fine');
    await expect(sendSlice(s, file, 0, 1)).rejects.toMatchObject({ code: 'ERR_STREAM_WRITE_AFTER_END', bytesSent: 0 });
    pair.receiver.resume();
    await pair.ended;
    expect(pair.received().toString()).toBe('still fine');
    expect(s.errored).toBeNull();
    await file.close();
  });
});
