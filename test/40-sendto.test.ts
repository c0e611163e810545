// log.sendTo(): the range read() returns, sent with sendfile(2) across
// segment boundaries, in order with the socket's other writes, through
// backpressure, peer resets, truncation and retention, and by copying over TLS.
import { readdirSync, readlinkSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import net from 'node:net';
import { describe, expect, test } from 'vitest';
import { SeglogError } from '../src/errors.js';
import { Log, type LogOptions, type ReadOptions } from '../src/log/log.js';
import { stats } from '../src/native.js';
import { failure, readSlowly, selfSignedCert, socketPair, socketPairs, turns, until } from './helpers/sockets.js';
import { openFdCount, tempDir } from './helpers/tmp.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** A log of `bytes` or more in batches of `perBatch` records of `valueBytes`; each value names its offset. */
async function filledLog(bytes: number, options: LogOptions & { perBatch?: number; valueBytes?: number } = {}): Promise<{ log: Log; dir: string; bases: number[] }> {
  const { perBatch = 4, valueBytes = 200, ...logOptions } = options;
  const dir = await tempDir();
  const log = await Log.open(dir, logOptions);
  while (log.size < bytes) {
    const base = log.endOffset;
    await log.append(Array.from({ length: perBatch }, (_, i) => ({ value: Buffer.alloc(valueBytes, (base + i) % 251).fill(`offset ${base + i};`, 0, 16) })));
  }
  const bases = (await readdir(dir))
    .filter((n) => n.endsWith('.log'))
    .map((n) => Number(n.slice(0, 20)))
    .sort((a, b) => a - b);
  return { log, dir, bases };
}

/** A length-prefixed frame header, as a broker might write before each response. */
const header = (tag: number, bytes = 0) => Buffer.from(`[${tag}:${bytes}]`);

/** sendTo's prefix option writing that header. */
const prefixed = (tag: number) => ({ prefix: ({ bytes }: { bytes: number }) => header(tag, bytes) });

describe('log.sendTo', () => {
  test('sends byte for byte what read() returns, across segment boundaries; sendfile(2) moves every batch byte', async () => {
    const segmentBytes = 16 * KiB;
    const { log, bases } = await filledLog(300 * KiB, { segmentBytes });
    expect(bases.length).toBeGreaterThan(10);
    const cases: Array<[number, ReadOptions]> = [
      [0, { maxBytes: 1 }],
      [0, { maxBytes: 40 * KiB }],
      [1, { maxBytes: 5000 }], // inside the first batch: the whole batch
      [bases[3]!, { maxBytes: 3 * segmentBytes }], // from a segment's first batch, across three boundaries
      [bases[3]! - 1, { maxBytes: 2 * segmentBytes }], // from a segment's last batch
      [bases[5]! + 2, { maxBytes: MiB }], // everything from here on
      [7, { maxBytes: MiB, maxOffset: bases[4]! + 3 }],
      [log.endOffset - 1, {}],
      [log.endOffset, {}], // the end: nothing but the prefix
    ];
    const expected = await Promise.all(cases.map(([offset, options]) => log.read(offset, options)));
    // The cases must really cross boundaries.
    expect(expected[3]!.bytes.length).toBeGreaterThan(2 * segmentBytes);
    expect(expected[5]!.bytes.length).toBeGreaterThan(log.size / 2);
    const pair = await socketPair();
    const before = stats();
    // Not awaited: each response takes its place in the write order at the call.
    const sending = cases.map(([offset, options], i) => log.sendTo(pair.sender, offset, { ...options, ...prefixed(i) }));
    pair.sender.write('[end]');
    readSlowly(pair);
    expect(await Promise.all(sending)).toEqual(expected.map((e) => ({ bytes: e.bytes.length, nextOffset: e.nextOffset })));
    const wire = Buffer.concat([...expected.flatMap((e, i) => [header(i, e.bytes.length), e.bytes]), Buffer.from('[end]')]);
    await until(() => pair.received().length >= wire.length, 'every response');
    expect(Buffer.compare(pair.received(), wire)).toBe(0);
    const batchBytes = expected.reduce((n, e) => n + e.bytes.length, 0);
    expect(stats().sendfileBytes - before.sendfileBytes).toBe(batchBytes);
    // The log's pages are cached: every sendfile round ran on the JS thread, none took a threadpool round trip.
    expect(stats().sendfileQueued).toBe(before.sendfileQueued);
    expect(stats().liveSendfiles).toBe(before.liveSendfiles);
    await log.close();
  });

  test.each([
    ['loopback TCP', false],
    ['a Unix socket (small buffers)', true],
  ])('header, body, next header stay in order while a slow reader keeps %s full', async (_, unix) => {
    const { log, bases } = await filledLog(12 * MiB, { segmentBytes: 2 * MiB, perBatch: 16, valueBytes: 4000 });
    // Each bigger than what the socket absorbs while its reader is paused.
    const first = await log.read(100, { maxBytes: 6 * MiB });
    const second = await log.read(first.nextOffset, { maxBytes: 5 * MiB });
    expect(bases.length).toBeGreaterThan(5);
    const pair = await socketPair({ unix });
    const before = stats();
    const s = pair.sender;
    s.write(header(1, first.bytes.length));
    const a = log.sendTo(s, 100, { maxBytes: 6 * MiB });
    s.write(header(2, second.bytes.length));
    // Corked writes reach _writev as one batch, the next transfer's place among them.
    s.cork();
    s.write('x');
    s.write('y');
    const b = log.sendTo(s, first.nextOffset, { maxBytes: 5 * MiB });
    s.write('[end]');
    s.uncork();
    // The receiver reads nothing yet: the first transfer parks on the full socket...
    await until(() => stats().sendfileWaits > before.sendfileWaits, 'the socket to fill (sendfileWaits)');
    // ...while the writes made after it wait in the stream's own buffer.
    expect(s.writableLength).toBeGreaterThan(0);
    readSlowly(pair);
    expect(await a).toEqual({ bytes: first.bytes.length, nextOffset: first.nextOffset });
    expect(await b).toEqual({ bytes: second.bytes.length, nextOffset: second.nextOffset });
    const wire = Buffer.concat([header(1, first.bytes.length), first.bytes, header(2, second.bytes.length), Buffer.from('xy'), second.bytes, Buffer.from('[end]')]);
    await until(() => pair.received().length >= wire.length, 'every byte');
    expect(pair.received().length).toBe(wire.length);
    expect(Buffer.compare(pair.received(), wire)).toBe(0);
    expect(stats().sendfileBytes - before.sendfileBytes).toBe(first.bytes.length + second.bytes.length);
    await log.close();
  });

  test('200 concurrent slow sockets each get their own responses, in order, and release everything', async () => {
    // Unix sockets: with their small buffers a few hundred KiB per socket keep every transfer waiting.
    const { log } = await filledLog(2 * MiB, { segmentBytes: 256 * KiB, perBatch: 8, valueBytes: 1000 });
    const count = 200;
    const fetches = 4;
    const maxBytes = 128 * KiB;
    const plans: Array<Array<{ offset: number; bytes: Buffer; nextOffset: number }>> = [];
    for (let i = 0; i < count; i++) {
      const plan = [];
      let offset = (i * 97) % (log.endOffset - 1000);
      for (let f = 0; f < fetches; f++) {
        const r = await log.read(offset, { maxBytes });
        plan.push({ offset, ...r });
        offset = r.nextOffset;
      }
      plans.push(plan);
    }
    const pairs = await socketPairs(count, { unix: true });
    const before = stats();
    const sending = pairs.map((p, i) => {
      const all = plans[i]!.map((f, n) => log.sendTo(p.sender, f.offset, { maxBytes, ...prefixed(n) }));
      p.sender.write('[end]');
      return Promise.all(all);
    });
    await until(() => stats().sendfileWaits > before.sendfileWaits, 'transfers to meet full sockets');
    for (const p of pairs) readSlowly(p);
    const results = await Promise.all(sending);
    results.forEach((r, i) => expect(r).toEqual(plans[i]!.map((f) => ({ bytes: f.bytes.length, nextOffset: f.nextOffset }))));
    const wires = plans.map((plan) => Buffer.concat([...plan.flatMap((f, n) => [header(n, f.bytes.length), f.bytes]), Buffer.from('[end]')]));
    await until(() => pairs.every((p, i) => p.received().length >= wires[i]!.length), 'every socket’s bytes');
    pairs.forEach((p, i) => expect(Buffer.compare(p.received(), wires[i]!), `socket ${i}`).toBe(0));
    expect(stats().sendfileBytes - before.sendfileBytes).toBe(plans.flat().reduce((n, f) => n + f.bytes.length, 0));
    expect(stats().liveSendfiles).toBe(before.liveSendfiles);
    // One dup per socket, reused by its four fetches, held while the socket is open...
    const senders = pairs.map((p) => readlinkSync(`/proc/self/fd/${(p.sender as unknown as { _handle: { fd: number } })._handle.fd}`));
    let open = openTargets();
    senders.forEach((t, i) => expect(open.get(t), `socket ${i}`).toBe(2));
    // ...and closed with it: destroying the senders leaves no descriptor of theirs behind.
    await Promise.all(pairs.map((p) => new Promise((resolve) => p.sender.destroy().once('close', resolve))));
    open = openTargets();
    senders.forEach((t, i) => expect(open.get(t), `socket ${i}`).toBeUndefined());
    await log.close();
  });

  test.each([
    ['Node reads the sender too', false],
    ['the sender is idle in Node', true],
  ])('peer reset mid-transfer (%s): rejects with the error and bytesSent, leaks nothing', async (_, senderIdle) => {
    const { log } = await filledLog(8 * MiB, { segmentBytes: 2 * MiB, perBatch: 16, valueBytes: 4000 });
    const expected = await log.read(0, { maxBytes: 8 * MiB });
    const fdsBefore = await openFdCount();
    const pair = await socketPair({ senderIdle });
    const before = stats();
    const sending = log.sendTo(pair.sender, 0, { maxBytes: 8 * MiB });
    await until(() => stats().sendfileWaits > before.sendfileWaits, 'the socket to fill (sendfileWaits)');
    pair.receiver.resetAndDestroy();
    const err = await failure<SeglogError>(sending);
    expect(err).toBeInstanceOf(SeglogError);
    expect(['ECONNRESET', 'EPIPE']).toContain(err.code);
    expect(err.bytesSent).toBeGreaterThanOrEqual(0);
    expect(err.bytesSent).toBeLessThan(expected.bytes.length);
    expect(err.cause).toBeDefined();
    expect(stats().liveSendfiles).toBe(before.liveSendfiles);
    // A failed transfer fails the socket, as a failed write() does.
    await until(() => pair.sender.destroyed, 'the sender to be destroyed');
    await pair.close();
    await turns();
    expect(await openFdCount()).toBe(fdsBefore);
    // Nothing stays pinned: the log closes.
    await log.close();
  });

  test('truncation deleting the segments being sent: the transfer completes with the old bytes', async () => {
    const { log, dir, bases } = await filledLog(12 * MiB, { segmentBytes: 2 * MiB, perBatch: 16, valueBytes: 4000 });
    expect(bases.length).toBeGreaterThanOrEqual(6);
    const from = bases[2]! + 5;
    const expected = await log.read(from, { maxBytes: 7 * MiB });
    const pair = await socketPair();
    const before = stats();
    const sending = log.sendTo(pair.sender, from, { maxBytes: 7 * MiB, ...prefixed(0) });
    await until(() => stats().sendfileWaits > before.sendfileWaits, 'the socket to fill (sendfileWaits)');
    // Deletes every segment of the transfer. Not awaited: it finishes once the transfer lets go of them.
    const truncating = log.truncateTo(bases[1]! + 3);
    readSlowly(pair);
    expect(await sending).toEqual({ bytes: expected.bytes.length, nextOffset: expected.nextOffset });
    const wire = Buffer.concat([header(0, expected.bytes.length), expected.bytes]);
    await until(() => pair.received().length >= wire.length, 'every byte');
    expect(Buffer.compare(pair.received(), wire)).toBe(0);
    const end = await truncating;
    expect(end).toBeLessThanOrEqual(bases[1]! + 3);
    const left = (await readdir(dir)).filter((n) => n.endsWith('.log'));
    expect(left.map((n) => Number(n.slice(0, 20)))).toEqual(bases.slice(0, 2));
    await expect(log.sendTo(pair.sender, from)).rejects.toMatchObject({ code: 'EOFFSETRANGE' });
    expect(stats().liveSendfiles).toBe(before.liveSendfiles);
    await log.close();
  });

  test('retention removing the segments being sent: files are unlinked, the transfer completes from the open fds', async () => {
    const { log, dir, bases } = await filledLog(12 * MiB, { segmentBytes: 2 * MiB, perBatch: 16, valueBytes: 4000, fileDeleteDelayMs: 0 });
    const expected = await log.read(0, { maxBytes: 7 * MiB });
    const pair = await socketPair();
    const before = stats();
    const sending = log.sendTo(pair.sender, 0, { maxBytes: 7 * MiB });
    await until(() => stats().sendfileWaits > before.sendfileWaits, 'the socket to fill (sendfileWaits)');
    // Retention closes the segments without waiting for readers: the later
    // slices of this transfer start after their File's close() began.
    expect(await log.applyRetention({ retentionBytes: 1 })).toBe(bases.length - 1);
    // Unlinked, yet still open: the transfer holds the three segments it sends from.
    await until(() => readdirSync(dir).every((n) => !/^0{20}\./.test(n)), 'the first segment’s files to be unlinked');
    expect(unlinkedButOpen(dir).length).toBeGreaterThanOrEqual(4);
    readSlowly(pair);
    expect(await sending).toEqual({ bytes: expected.bytes.length, nextOffset: expected.nextOffset });
    await until(() => pair.received().length >= expected.bytes.length, 'every byte');
    expect(Buffer.compare(pair.received(), expected.bytes)).toBe(0);
    // Once the transfer lets go, the removed segments' fds close.
    await until(() => unlinkedButOpen(dir).length === 0, 'the removed segments’ fds to close');
    expect(stats().liveSendfiles).toBe(before.liveSendfiles);
    await log.close();
  });

  test('TLS: the copying fallback delivers the same bytes, in the same order, without sendfile(2)', async () => {
    const { log, bases } = await filledLog(600 * KiB, { segmentBytes: 64 * KiB });
    const pair = await socketPair({ tls: await selfSignedCert() });
    const cases: Array<[number, ReadOptions]> = [
      [0, { maxBytes: 300 * KiB }],
      [bases[2]! + 1, { maxBytes: MiB }],
      [5, { maxBytes: 1 }],
    ];
    const expected = await Promise.all(cases.map(([offset, options]) => log.read(offset, options)));
    const before = stats();
    const sending = cases.map(([offset, options], i) => log.sendTo(pair.sender, offset, { ...options, ...prefixed(i) }));
    pair.sender.write('[end]');
    expect(await Promise.all(sending)).toEqual(expected.map((e) => ({ bytes: e.bytes.length, nextOffset: e.nextOffset })));
    const wire = Buffer.concat([...expected.flatMap((e, i) => [header(i, e.bytes.length), e.bytes]), Buffer.from('[end]')]);
    await until(() => pair.received().length >= wire.length, 'every byte');
    expect(Buffer.compare(pair.received(), wire)).toBe(0);
    expect(stats().sendfileBytes).toBe(before.sendfileBytes);
    expect(stats().sendfileCalls).toBe(before.sendfileCalls);
    await log.close();
  });

  describe('unhappy arguments', () => {
    test('bad arguments and offsets outside the log reject at once and leave the socket usable', async () => {
      const { log } = await filledLog(10 * KiB);
      const pair = await socketPair();
      const bad: Array<[() => Promise<unknown>, unknown]> = [
        [() => log.sendTo({} as net.Socket, 0), TypeError],
        [() => log.sendTo(pair.sender, -1), RangeError],
        [() => log.sendTo(pair.sender, '0' as unknown as number), TypeError],
        [() => log.sendTo(pair.sender, 0, { maxBytes: 0 }), RangeError],
        [() => log.sendTo(pair.sender, 0, 'x' as never), TypeError],
        [() => log.sendTo(pair.sender, 0, { prefix: 'x' as never }), TypeError],
      ];
      for (const [call, type] of bad) await expect(call()).rejects.toThrow(type as ErrorConstructor);
      await expect(log.sendTo(pair.sender, log.endOffset + 1)).rejects.toMatchObject({ code: 'EOFFSETRANGE' });
      // Nothing was queued on the socket: the next write is the next thing on the wire.
      pair.sender.end('still fine');
      pair.receiver.resume();
      await pair.ended;
      expect(pair.received().toString()).toBe('still fine');
      await log.close();
      await expect(log.sendTo(pair.sender, 0)).rejects.toMatchObject({ code: 'ECLOSED' });
    });
  });
});

/** What each of this process's fds points at (e.g. 'socket:[12345]', the same for every dup of one socket). */
function fdTargets(): string[] {
  const targets: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      targets.push(readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // Closed between listing and reading.
    }
  }
  return targets;
}

/** How many of this process's fds point at each target. */
function openTargets(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const t of fdTargets()) counts.set(t, (counts.get(t) ?? 0) + 1);
  return counts;
}

/** This process's fds onto files in `dir` that were unlinked. */
function unlinkedButOpen(dir: string): string[] {
  return fdTargets().filter((t) => t.startsWith(`${dir}/`) && t.endsWith(' (deleted)'));
}
