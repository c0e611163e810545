// API fuzz, seeded: every public function and method gets random arguments
// (wrong types, out-of-range and edge numbers, odd strings and buffers, valid
// values now and then so calls get past the first check). Each call must
// return, resolve, or fail with a TypeError, a RangeError or a SeglogError,
// within a few seconds; a crash would take the test process down with it.
// Paths are only ever inside the test's temp directory.
import { once } from 'node:events';
import { join } from 'node:path';
import net from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { afterAll, expect, onTestFinished, test } from 'vitest';
import {
  allocAligned,
  crc32c,
  directIOAlignment,
  File,
  freeAligned,
  freeBytes,
  fsyncDir,
  OffsetIndex,
  probeDirectIO,
  sendfile,
  stats,
  TimeIndex,
} from '../src/io.js';
import {
  BATCH_HEADER_SIZE,
  checkBatch,
  checkLogName,
  decodeBatch,
  encodeBatch,
  Log,
  LogStore,
  readBatchHeader,
  registerCodec,
  SeglogError,
  sendParts,
  sendSlice,
} from '../src/seglog.js';
import { Random } from './fixtures/random.js';
import { tempDir } from './helpers/tmp.js';

const rng = new Random(56);
const sockets: net.Socket[] = [];
afterAll(() => {
  for (const s of sockets) s.destroy();
});

/** Numbers at and around every boundary the API checks, but no valid huge size (a real 2 GiB allocation is no test). */
const NUMBERS = [0, 1, -1, 2, 7, 12, 61, 100, 4096, 65_536, 2 ** 31, 2 ** 32, 2 ** 53, -(2 ** 53), Number.MAX_SAFE_INTEGER, 0.5, -0, NaN, Infinity, -Infinity, Number.MAX_VALUE];
const STRINGS = ['', 'a', 'none', 'gzip', 'always', 'pagecache', 'own', 'x'.repeat(300), 'a\0b', 'é', '../x', 'topic-0', '.hidden'];

/** One random value; `extra` are candidates that make sense for this argument (valid ones, paths in the temp dir). */
function value(extra: unknown[] = [], depth = 0): unknown {
  const kind = rng.int(0, 13);
  if (extra.length > 0 && kind < 5) return rng.pick(extra);
  switch (kind) {
    case 5:
    case 6:
      return rng.pick(NUMBERS);
    case 7:
      return rng.pick(STRINGS);
    case 8:
      return rng.pick([undefined, null, true, false, 10n, Symbol('s'), () => 1, new Date(0)]);
    case 9:
      return rng.pick([Buffer.alloc(0), rng.bytes(rng.int(1, 200)), new Uint8Array(70), goodBatch(), Buffer.concat([goodBatch(), rng.bytes(5)])]);
    case 10:
      return depth > 2 ? [] : Array.from({ length: rng.int(0, 3) }, () => value(extra, depth + 1));
    case 11:
      return depth > 2 ? {} : randomObject(depth + 1);
    case 12:
      return rng.pick([AbortSignal.abort(), new AbortController().signal]);
    default:
      return rng.pick([{ value: 'v' }, { key: 'k', value: Buffer.from('v'), headers: [{ key: 'h', value: null }], timestamp: 5 }, { value: null }]);
  }
}

const KEYS = ['value', 'key', 'headers', 'timestamp', 'maxBytes', 'maxOffset', 'follow', 'signal', 'flush', 'segmentBytes', 'indexIntervalBytes', 'segmentIndexBytes', 'repair', 'compression', 'maxPendingBytes', 'minFreeBytes', 'fileDeleteDelayMs', 'retentionMs', 'retentionBytes', 'now', 'writable', 'create', 'write', 'truncate', 'exclusive', 'direct', 'dsync', 'mode', 'keepSize', 'logAppendTime', 'cache', 'baseOffset', 'partitionLeaderEpoch', 'producerId', 'producerEpoch', 'baseSequence', 'maxIndexBytes', 'chunkBytes', 'prefix', 'leaderEpoch', 'origin', 'maxMessageBytes', 'messageTimestampBeforeMaxMs', 'messageTimestampAfterMaxMs', 'messageTimestampType', 'checkpointIntervalMs', 'retentionCheckIntervalMs', 'intervalMs', 'bytes', 'messages', 'tailBytes', 'readAheadBytes', 'directIO', 'mode'];

function randomObject(depth: number): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (let i = rng.int(0, 4); i > 0; i--) o[rng.pick(KEYS)] = value([], depth);
  return o;
}

function goodBatch(): Buffer {
  return encodeBatch([{ value: 'fuzz', timestamp: 1000 }, { key: 'k', value: null, timestamp: 1001 }]);
}

/** Any function, callable with anything: the point is to pass what its types forbid. */
// What comes back is whatever the function returns, hence any.
const loose = (f: (...args: never[]) => unknown) => f as unknown as (...args: unknown[]) => any;

/** Calls `call` with `args`; anything but a value or an allowed error is returned as a problem. */
async function attempt(what: string, call: (...args: unknown[]) => unknown, args: unknown[]): Promise<string | undefined> {
  const describe = () => `${what}(${args.map((a) => (typeof a === 'bigint' || typeof a === 'symbol' ? String(a) : (JSON.stringify(a) ?? String(a))?.slice(0, 80))).join(', ')})`;
  let timer: NodeJS.Timeout | undefined;
  try {
    const result = call(...args);
    if (result instanceof Promise) {
      const hang = new Promise<'hang'>((resolve) => (timer = setTimeout(() => resolve('hang'), 5000)));
      if ((await Promise.race([result, hang])) === 'hang') return `${describe()} did not settle within 5 s`;
    }
    return undefined;
  } catch (err) {
    if (err instanceof TypeError || err instanceof RangeError || err instanceof SeglogError) return undefined;
    // An AbortSignal given already aborted: its reason is what the caller asked for.
    if ((err as Error)?.name === 'AbortError') return undefined;
    return `${describe()} threw ${(err as Error)?.stack ?? String(err)}`;
  } finally {
    clearTimeout(timer);
  }
}

test('random arguments to every public function: typed errors only, no crash, no hang', { timeout: 120_000 }, async () => {
  const dir = await tempDir();
  // Random strings reach path arguments too: relative paths must land in the temp dir, not the repo.
  const cwd = process.cwd();
  process.chdir(dir);
  onTestFinished(() => process.chdir(cwd));
  const paths = [join(dir, 'f1'), join(dir, 'f2'), join(dir, 'sub', 'f3'), dir, join(dir, 'log'), join(dir, 'idx.index')];
  const problems: string[] = [];
  const sink = new PassThrough().resume();
  const server = net.createServer((s) => s.resume());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  sockets.push(socket);
  await once(socket, 'connect');
  const socketFd = (socket as unknown as { _handle: { fd: number } })._handle.fd;

  const log = await Log.open(join(dir, 'log'), { segmentBytes: 2048, minFreeBytes: 0, fileDeleteDelayMs: 0 });
  for (let i = 0; i < 20; i++) await log.append([{ value: `seed-${i}`, timestamp: 1000 + i }]);
  const store = await LogStore.open(join(dir, 'store'), { minFreeBytes: 0 });
  const file = await File.open(join(dir, 'file'), { create: true });
  await file.write(Buffer.alloc(3 * 4096, 1), 0);
  const offsets = () => [log.startOffset, log.endOffset, log.endOffset - 1, 5];
  const streams = [sink, socket, new Writable({ write: (_c, _e, cb) => cb() })];

  type Target = [string, (...args: unknown[]) => unknown, () => unknown[][]];
  const targets: Target[] = [
    ['Log.open', (...a) => loose(Log.open)(...a).then((l: Log) => l.close()), () => [paths, [{ minFreeBytes: 0 }, { flush: 'always', minFreeBytes: 0 }]]],
    ['log.append', loose(log.append.bind(log)), () => [[[{ value: 'x' }], [{ value: 'a' }, { key: 'b', value: null }]], [{ timestamp: 5 }, { leaderEpoch: 3 }]]],
    ['log.appendBatches', loose(log.appendBatches.bind(log)), () => [[goodBatch()], [{ logAppendTime: 7 }, { leaderEpoch: 4 }, { origin: 'replication' }]]],
    ['log.endOffsetForEpoch', loose(log.endOffsetForEpoch.bind(log)), () => [[-1, 0, 3, 4]]],
    ['log.read', loose(log.read.bind(log)), () => [offsets(), [{ maxBytes: 10 }, { maxOffset: 3 }]]],
    ['log.sendTo', loose(log.sendTo.bind(log)), () => [streams, offsets(), [{ maxBytes: 100 }, { prefix: () => Buffer.from('p') }]]],
    [
      'log.records',
      async (...a) => {
        let n = 0;
        for await (const _ of loose(log.records.bind(log))(...a) as AsyncGenerator<unknown>) if (++n > 50) break;
      },
      () => [offsets(), [{ maxBytes: 1 }, { follow: false }]],
    ],
    ['log.offsetForTimestamp', loose(log.offsetForTimestamp.bind(log)), () => [[1000, 1010, -1]]],
    ['log.truncateTo', loose(log.truncateTo.bind(log)), () => [offsets()]],
    ['log.deleteRecordsBefore', loose(log.deleteRecordsBefore.bind(log)), () => [offsets()]],
    ['log.applyRetention', loose(log.applyRetention.bind(log)), () => [[{ retentionBytes: 4096 }, { retentionMs: 10, now: 5000 }]]],
    ['log.flush', () => log.flush(), () => []],
    ['log.roll', () => log.roll(), () => []],
    ['log.cacheStats', () => log.cacheStats(), () => []],
    ['log.residency', () => log.residency(), () => []],
    ['LogStore.open', (...a) => loose(LogStore.open)(...a).then((s: LogStore) => s.close()), () => [[join(dir, 'store2'), join(dir, 'store')], [{ minFreeBytes: 0 }]]],
    ['store.log', loose(store.log.bind(store)), () => [['a', 'b', 'topic-0'], [{ retentionBytes: 10 }]]],
    ['store.dropLog', loose(store.dropLog.bind(store)), () => [['a', 'b']]],
    ['store.checkpoint', () => store.checkpoint(), () => []],
    ['store.applyRetention', loose(store.applyRetention.bind(store)), () => [[Date.now()]]],
    ['checkLogName', loose(checkLogName), () => [['ok', 'a/b']]],
    ['encodeBatch', loose(encodeBatch), () => [[[{ value: 'x' }]], [{ compression: 'gzip' }, { baseOffset: 3 }]]],
    ['decodeBatch', loose(decodeBatch), () => [[goodBatch()]]],
    ['checkBatch', loose(checkBatch), () => [[goodBatch()], [0], [goodBatch().length], [BATCH_HEADER_SIZE]]],
    ['readBatchHeader', loose(readBatchHeader), () => [[goodBatch()], [0]]],
    ['registerCodec', loose(registerCodec), () => [['fuzz-codec'], [2], [{ compress: (d: Buffer) => d, decompress: (d: Buffer) => d }]]],
    ['crc32c', loose(crc32c), () => [[Buffer.from('abc')], [0, 123]]],
    ['allocAligned', (...a) => freeAligned(loose(allocAligned)(...a)), () => [[4096, 100], [512, 4096]]],
    ['freeAligned', loose(freeAligned), () => [[allocAligned(4096)]]],
    ['File.open', (...a) => loose(File.open)(...a).then((f: File) => f.close()), () => [paths, [{ create: true }, { write: true }, { create: true, exclusive: true }]]],
    ['file.write', loose(file.write.bind(file)), () => [[Buffer.from('w')], [0, 4096]]],
    ['file.writev', loose(file.writev.bind(file)), () => [[[Buffer.from('a'), Buffer.from('b')]], [0]]],
    ['file.read', loose(file.read.bind(file)), () => [[Buffer.alloc(10)], [0, 8000]]],
    ['file.readv', loose(file.readv.bind(file)), () => [[[Buffer.alloc(3)]], [0]]],
    ['file.truncate', loose(file.truncate.bind(file)), () => [[3 * 4096, 8192]]],
    ['file.allocate', loose(file.allocate.bind(file)), () => [[0], [4096], [{ keepSize: true }]]],
    ['file.advise', loose(file.advise.bind(file)), () => [[0], [0, 100], ['dontneed', 'random']]],
    ['file.syncRange', loose(file.syncRange.bind(file)), () => [[0], [0], [{ write: true }]]],
    ['file.residentPages', loose(file.residentPages.bind(file)), () => [[0, 4096], [4096]]],
    [
      'file.map',
      (...a) => {
        const m: ReturnType<File['map']> = loose(file.map.bind(file))(...a);
        // Reading the last byte would raise SIGBUS if the mapping ran past the end of the file.
        void m.buffer[m.length - 1];
        return m.sync(0, m.length).finally(() => m.unmap());
      },
      () => [[0, 4096], [4096, 2 * 4096, 3 * 4096, 1 << 20], [{ writable: true }]],
    ],
    ['file.sync', () => file.sync(), () => []],
    ['file.datasync', () => file.datasync(), () => []],
    ['sendfile', loose(sendfile), () => [[socketFd, -1, 2 ** 31], [file], [0], [100]]],
    ['sendParts', loose(sendParts), () => [streams, [[Buffer.from('x'), { file, position: 0, length: 10 }]]]],
    ['sendSlice', loose(sendSlice), () => [streams, [file], [0], [10]]],
    ['fsyncDir', loose(fsyncDir), () => [paths]],
    ['freeBytes', loose(freeBytes), () => [paths]],
    ['directIOAlignment', loose(directIOAlignment), () => [paths]],
    ['probeDirectIO', loose(probeDirectIO), () => [[dir]]],
    ['OffsetIndex.open', (...a) => loose(OffsetIndex.open)(...a).then((i: OffsetIndex) => i.close()), () => [[join(dir, 'idx.index')], [0, 10], [{ writable: true, maxIndexBytes: 4096 }, { writable: false }]]],
    ['TimeIndex.open', (...a) => loose(TimeIndex.open)(...a).then((i: TimeIndex) => i.close()), () => [[join(dir, 'idx.timeindex')], [0], [{ writable: true }]]],
    ['stats', () => stats(), () => []],
  ];

  // sendfile must never see an fd it does not own: only invalid numbers and the test's socket.
  const safe = (name: string, i: number, v: unknown) => name !== 'sendfile' || i !== 0 || (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 2 ** 31 - 1 ? true : v === socketFd);
  for (let round = 0; round < 40; round++) {
    for (const [name, call, candidates] of targets) {
      const extra = candidates();
      const args = Array.from({ length: Math.max(extra.length, rng.int(0, 3)) }, (_, i) => value(extra[i] ?? []));
      if (!args.every((v, i) => safe(name, i, v))) continue;
      const problem = await attempt(name, call, args);
      if (problem !== undefined) problems.push(problem);
    }
  }
  // Everything still works and closes after the barrage.
  await log.close();
  await store.close();
  await file.close();
  server.close();
  expect(problems).toEqual([]);
});
