import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { Log } from '../src/log/log.js';
import { LogStore } from '../src/store/store.js';
import { File, stats } from '../src/native.js';
import { readBatchHeader } from '../src/segment/batch.js';
import { injectFault } from './helpers/faults.js';
import { tempDir } from './helpers/tmp.js';
import { until } from './helpers/until.js';

afterEach(() => {
  for (const p of ['pwrite', 'fsync', 'fdatasync', 'ftruncate', 'open'] as const) injectFault(p, null);
});

const rec = (i: number) => [{ value: `record-${i}`, timestamp: 1000 + i }];

/**
 * Runs `work` with each .log creation, write and fdatasync recorded, in order, in the events it is
 * given and that are returned; fdatasync number n (from 0) first waits for `beforeSync(n)`.
 */
async function recorded(work: (events: string[]) => Promise<void>, beforeSync: (n: number) => Promise<unknown>): Promise<string[]> {
  const events: string[] = [];
  const { writev, writevNow, datasync } = File.prototype;
  const open = File.open;
  let syncs = 0;
  File.open = async function (path: string, options?: Parameters<typeof File.open>[1]) {
    if (path.endsWith('.log') && options?.create === true) events.push(`create ${path}`);
    return open.call(File, path, options);
  };
  // Small groups are written inline (writevNow), larger ones on the threadpool (writev).
  File.prototype.writev = async function (this: File, chunks: Uint8Array[], position: number) {
    const n = await writev.call(this, chunks, position);
    events.push(`write ${this.path}`);
    return n;
  };
  File.prototype.writevNow = function (this: File, chunks: Uint8Array[], position: number) {
    const n = writevNow.call(this, chunks, position);
    events.push(`write ${this.path}`);
    return n;
  };
  File.prototype.datasync = async function (this: File) {
    const n = syncs++;
    events.push(`sync start ${this.path}`);
    await beforeSync(n);
    await datasync.call(this);
    events.push(`sync end ${this.path}`);
  };
  try {
    await work(events);
  } finally {
    File.open = open;
    File.prototype.writev = writev;
    File.prototype.writevNow = writevNow;
    File.prototype.datasync = datasync;
  }
  return events;
}

/** Each write to a .log that no fdatasync of it, begun after the write and ended before a later .log was created, covered: a hole a power cut could leave. */
function unsyncedBeforeCreate(events: string[]): string[] {
  const problems: string[] = [];
  events.forEach((e, created) => {
    if (!e.startsWith('create ')) return;
    events.slice(0, created).forEach((w, written) => {
      if (!w.startsWith('write ')) return;
      const path = w.slice('write '.length);
      const covered = events.slice(written, created).some((s, i) => s === `sync start ${path}` && events.slice(written + i, created).includes(`sync end ${path}`));
      if (!covered) problems.push(`${w} (event ${written}) not synced before ${e} (event ${created})`);
    });
  });
  return problems;
}

describe('flush policies', () => {
  test("'always': no append resolves before an fdatasync that began after its write has returned", async () => {
    // The order of events, seen through the File methods the log writes and syncs with.
    type Event = { kind: 'written'; path: string; offsets: number[] } | { kind: 'syncStart' | 'syncEnd'; path: string; sync: number } | { kind: 'acked'; offset: number };
    const events: Event[] = [];
    const { writev, writevNow, datasync } = File.prototype;
    let syncs = 0;
    const written = (path: string, chunks: Uint8Array[]) => {
      const offsets: number[] = [];
      for (const c of chunks) for (let p = 0; p < c.length; ) {
        const h = readBatchHeader(c, p);
        for (let o = h.baseOffset; o <= h.lastOffset; o++) offsets.push(o);
        p += h.size;
      }
      events.push({ kind: 'written', path, offsets });
    };
    // Small groups are written inline (writevNow), larger ones on the threadpool (writev).
    File.prototype.writev = async function (this: File, chunks: Uint8Array[], position: number) {
      const n = await writev.call(this, chunks, position);
      written(this.path, chunks);
      return n;
    };
    File.prototype.writevNow = function (this: File, chunks: Uint8Array[], position: number) {
      const n = writevNow.call(this, chunks, position);
      written(this.path, chunks);
      return n;
    };
    File.prototype.datasync = async function (this: File) {
      const sync = syncs++;
      events.push({ kind: 'syncStart', path: this.path, sync });
      await datasync.call(this);
      events.push({ kind: 'syncEnd', path: this.path, sync });
    };
    try {
      const log = await Log.open(await tempDir(), { flush: 'always' });
      await Promise.all(
        Array.from({ length: 40 }, async (_, i) => {
          const { baseOffset } = await log.append(rec(i));
          events.push({ kind: 'acked', offset: baseOffset });
        }),
      );
      expect(log.flushedOffset).toBe(40);
      await log.close();
    } finally {
      File.prototype.writev = writev;
      File.prototype.writevNow = writevNow;
      File.prototype.datasync = datasync;
    }
    // For each append: the write of its batch returned (W), then an fdatasync of that file started (S) and returned (E), then it resolved (A).
    const proofs = Array.from({ length: 40 }, (_, offset) => {
      const acked = events.findIndex((e) => e.kind === 'acked' && e.offset === offset);
      const written = events.findIndex((e) => e.kind === 'written' && e.offsets.includes(offset));
      if (acked < 0 || written < 0 || written > acked) return `offset ${offset}: written at ${written}, acknowledged at ${acked}`;
      const path = (events[written] as { path: string }).path;
      const ok = events.some((s, start) => {
        if (start <= written || s.kind !== 'syncStart' || s.path !== path) return false;
        const end = events.findIndex((e) => e.kind === 'syncEnd' && e.sync === s.sync);
        return end < acked;
      });
      return ok ? 'ok' : `offset ${offset}: no fdatasync of ${path} began after its write (event ${written}) and returned before it was acknowledged (event ${acked})`;
    });
    expect(proofs.filter((p) => p !== 'ok')).toEqual([]);
    expect(events.filter((e) => e.kind === 'acked')).toHaveLength(40);
  });

  test("'always' pipelines: the next group is written while the previous fdatasync runs, and waits for its own; acks in order", async () => {
    const events: string[] = [];
    const { writev, writevNow, datasync } = File.prototype;
    // Small groups are written inline (writevNow), larger ones on the threadpool (writev).
    File.prototype.writev = async function (this: File, chunks: Uint8Array[], position: number) {
      events.push(`write ${readBatchHeader(chunks[0]!, 0).baseOffset}`);
      return writev.call(this, chunks, position);
    };
    File.prototype.writevNow = function (this: File, chunks: Uint8Array[], position: number) {
      events.push(`write ${readBatchHeader(chunks[0]!, 0).baseOffset}`);
      return writevNow.call(this, chunks, position);
    };
    File.prototype.datasync = async function (this: File) {
      events.push('sync start');
      // Slow enough that the second append is queued, numbered and written meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 50));
      await datasync.call(this);
      events.push('sync end');
    };
    try {
      const log = await Log.open(await tempDir(), { flush: 'always' });
      const first = log.append(rec(0)).then(() => events.push('ack 0'));
      await until(() => events.includes('sync start'));
      const second = log.append(rec(1)).then(() => events.push('ack 1'));
      await Promise.all([first, second]);
      await log.close();
    } finally {
      File.prototype.writev = writev;
      File.prototype.writevNow = writevNow;
      File.prototype.datasync = datasync;
    }
    expect(events.filter((e) => e.startsWith('write'))).toEqual(['write 0', 'write 1']);
    // The second write lands inside the first fdatasync; each ack follows the end of an fdatasync begun after its write.
    const at = (e: string, from = 0) => events.indexOf(e, from);
    const firstEnd = at('sync end');
    const secondStart = at('sync start', at('write 1'));
    expect(at('write 1')).toBeGreaterThan(at('sync start'));
    expect(at('write 1')).toBeLessThan(firstEnd);
    expect(at('ack 0')).toBeGreaterThan(firstEnd);
    expect(secondStart).toBeGreaterThan(firstEnd);
    expect(at('ack 1')).toBeGreaterThan(at('sync end', secondStart));
    expect(at('ack 1')).toBeGreaterThan(at('ack 0'));
  });

  test("'always': a group written during an fdatasync that fails is never acknowledged, even if a later fdatasync succeeds", async () => {
    const dir = await tempDir();
    const log = await Log.open(dir, { flush: 'always', maxMessageBytes: 8 << 20 });
    await log.append(rec(0));
    const { writev, datasync } = File.prototype;
    let threadpoolWrites = 0;
    // The second group is too big to write inline, so it goes to the threadpool (writev), and that write
    // returns only after the first fdatasync failed: its group is pushed to a failed log.
    File.prototype.writev = async function (this: File, chunks: Uint8Array[], position: number) {
      threadpoolWrites++;
      await until(() => log.failure !== undefined);
      return writev.call(this, chunks, position);
    };
    let syncs = 0;
    File.prototype.datasync = async function (this: File) {
      // The first one waits for the second group to be on its way, then fails (EIO, once: a later one would succeed).
      if (syncs++ === 0) await until(() => threadpoolWrites === 1);
      return datasync.call(this);
    };
    injectFault('fdatasync', 'EIO', { count: 1 });
    try {
      const first = log.append(rec(1));
      await until(() => syncs === 1);
      const second = log.append([{ value: Buffer.alloc(3 * 1024 * 1024, 2) }]);
      const third = second.catch(() => undefined).then(() => log.append(rec(3)));
      const results = await Promise.allSettled([first, second, third]);
      expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
      expect(results.map((r) => (r as PromiseRejectedResult).reason)).toMatchObject([{ code: 'EIO' }, { code: 'EIO' }, { code: 'EIO' }]);
      expect(log.endOffset).toBe(1);
      expect(log.flushedOffset).toBe(1);
      await log.close();
    } finally {
      File.prototype.writev = writev;
      File.prototype.datasync = datasync;
    }
  });

  test("'always' rolls leave no hole: a segment's last fdatasync returned before the next segment's file is created", async () => {
    const dir = await tempDir();
    const events = await recorded(
      async () => {
        const log = await Log.open(dir, { flush: 'always', segmentBytes: 2048 });
        // Many producers, so groups are written while fdatasyncs run, across many rolls.
        await Promise.all(
          Array.from({ length: 8 }, async (_, p) => {
            for (let i = 0; i < 20; i++) await log.append([{ value: Buffer.alloc(200, p) }]);
          }),
        );
        expect(log.segmentCount).toBeGreaterThan(10);
        await log.close();
      },
      () => new Promise((resolve) => setTimeout(resolve, 5)),
    );
    expect(events.filter((e) => e.startsWith('write ')).length).toBeGreaterThanOrEqual(20);
    expect(unsyncedBeforeCreate(events)).toEqual([]);
  });

  describe('a full segment of 16 MiB or more', () => {
    const MiB = 1024 * 1024;
    const OPTIONS = { segmentBytes: 16 * MiB, maxMessageBytes: 2 * MiB };
    // A little under 1 MiB of batch per append: 16 fill a segment, 2 more reach its eighth of slack.
    const big = [{ value: Buffer.alloc(MiB - 4096, 7) }];
    const firstLog = (dir: string) => join(dir, '00000000000000000000.log');
    /** A hook for recorded() that holds the first fdatasync until release() is called. */
    const holdFirstSync = () => {
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      return { hook: (n: number) => (n === 0 ? held : Promise.resolve()), release };
    };

    test("its fdatasync begins when it fills, off the append path; appends go on into it meanwhile, and it rolls once that is done, leaving no hole", async () => {
      const dir = await tempDir();
      const { hook, release } = holdFirstSync();
      const events = await recorded(async (events) => {
        const log = await Log.open(dir, OPTIONS);
        while (!events.includes(`sync start ${firstLog(dir)}`)) await log.append(big);
        // The full segment takes more while its fdatasync runs, up to an eighth of segmentBytes more.
        await log.append(big);
        expect(log.segmentCount).toBe(1);
        expect((await stat(firstLog(dir))).size).toBeGreaterThan(16 * MiB);
        release();
        await until(() => events.includes(`sync end ${firstLog(dir)}`));
        // Done: the next append rolls, after an fdatasync of what came since.
        await log.append(big);
        expect(log.segmentCount).toBe(2);
        expect((await stat(firstLog(dir))).size).toBeLessThanOrEqual(18 * MiB);
        await log.close();
      }, hook);
      expect(events.filter((e) => e === `sync start ${firstLog(dir)}`).length).toBeGreaterThanOrEqual(2);
      expect(unsyncedBeforeCreate(events)).toEqual([]);
    });

    test('an fdatasync slower than the slack holds the append that would pass it until the roll has synced the segment', async () => {
      const dir = await tempDir();
      const { hook, release } = holdFirstSync();
      const events = await recorded(async (events) => {
        const log = await Log.open(dir, OPTIONS);
        while (log.segmentCount === 1) await log.append(big);
        // The first fdatasync is still held: the roll waited for one of its own.
        expect(events.filter((e) => e === `sync end ${firstLog(dir)}`)).toHaveLength(1);
        expect((await stat(firstLog(dir))).size).toBeGreaterThan(16 * MiB);
        expect((await stat(firstLog(dir))).size).toBeLessThanOrEqual(18 * MiB);
        release();
        await log.close();
      }, hook);
      expect(unsyncedBeforeCreate(events)).toEqual([]);
    });

    test('a failed fdatasync begun ahead of the roll stops the log', async () => {
      const log = await Log.open(await tempDir(), OPTIONS);
      injectFault('fdatasync', 'EIO');
      // The append that fills the segment begins the fdatasync; the ones after it may meet the failure.
      for (let i = 0; i < 18 && log.failure === undefined; i++) await log.append(big).catch(() => undefined);
      await until(() => log.failure !== undefined);
      expect(log.segmentCount).toBe(1);
      expect(log.failure).toMatchObject({ code: 'EIO', syscall: 'fdatasync' });
      await expect(log.append(big)).rejects.toMatchObject({ code: 'EIO' });
      await log.close();
    });

    test("under 'always' it rolls at segmentBytes, as every segment below 16 MiB does", async () => {
      const dir = await tempDir();
      const log = await Log.open(dir, { ...OPTIONS, flush: 'always' });
      while (log.segmentCount === 1) await log.append(big);
      expect((await stat(firstLog(dir))).size).toBeLessThanOrEqual(16 * MiB);
      await log.close();
    });
  });

  test("'always' gathers producers that await each append: the ones one fdatasync acknowledged share the next", async () => {
    const log = await Log.open(await tempDir(), { flush: 'always' });
    const producers = 16;
    const rounds = 10;
    const before = stats();
    await Promise.all(
      Array.from({ length: producers }, async (_, p) => {
        for (let i = 0; i < rounds; i++) await log.append([{ value: `p${p}-${i}` }]);
      }),
    );
    const syncs = stats().fdatasyncCalls - before.fdatasyncCalls;
    expect(log.endOffset).toBe(producers * rounds);
    // One fdatasync per round; a drain that took only the first producer woken would need two (1 + 15).
    expect(syncs).toBeGreaterThanOrEqual(rounds);
    expect(syncs).toBeLessThanOrEqual(rounds + 2);
    await log.close();
  });

  test("'always' group-commits concurrent appends: far fewer fdatasyncs than appends", async () => {
    const log = await Log.open(await tempDir(), { flush: 'always' });
    await log.append(rec(0));
    const before = stats();
    await Promise.all(Array.from({ length: 200 }, (_, i) => log.append(rec(i + 1))));
    const after = stats();
    const syncs = after.fdatasyncCalls - before.fdatasyncCalls;
    const writes = after.pwriteCalls - before.pwriteCalls;
    expect(syncs).toBeGreaterThanOrEqual(1);
    // The first append goes alone; everything queued behind it shares the next group.
    expect(syncs).toBeLessThanOrEqual(3);
    expect(writes).toBe(syncs);
    expect(log.endOffset).toBe(201);
    await log.close();
  });

  test("'none' never calls fdatasync on append; flush() does and advances flushedOffset", async () => {
    const log = await Log.open(await tempDir());
    const before = stats().fdatasyncCalls;
    for (let i = 0; i < 20; i++) await log.append(rec(i));
    expect(stats().fdatasyncCalls).toBe(before);
    expect(log.flushedOffset).toBe(0);
    await log.flush();
    expect(stats().fdatasyncCalls).toBe(before + 1);
    expect(log.flushedOffset).toBe(20);
    await log.close();
  });

  test('after an unclean shutdown the recovered tail is not called durable until a flush; a store checkpoints no recovery point past it', async () => {
    // A clean reopen: everything was synced by close.
    const dir = await tempDir();
    let log = await Log.open(dir, { segmentBytes: 1024 });
    for (let i = 0; i < 20; i++) await log.append(rec(i));
    await log.close();
    log = await Log.open(dir, { segmentBytes: 1024 });
    expect(log.flushedOffset).toBe(20);
    await log.close();
    // As after a crash: recovery scanned what the page cache may hold alone; a standalone log has no recovery point.
    await rm(join(dir, '.clean-shutdown'));
    log = await Log.open(dir, { segmentBytes: 1024 });
    expect(log.flushedOffset).toBe(0);
    await log.flush();
    expect(log.flushedOffset).toBe(20);
    await log.close();
    // In a store: the recovery point it checkpointed, and no further, until a flush.
    const dataDir = await tempDir();
    let store = await LogStore.open(dataDir, { segmentBytes: 1024 });
    let inStore = await store.log('t');
    for (let i = 0; i < 10; i++) await inStore.append(rec(i));
    await inStore.flush();
    for (let i = 10; i < 20; i++) await inStore.append(rec(i));
    await store.checkpoint();
    const checkpoint = join(dataDir, 'recovery-point-offset-checkpoint');
    expect(await readFile(checkpoint, 'utf8')).toBe('0\n1\nt 10\n');
    await store.close();
    // As after a crash: neither the store's marker nor the log's, and the last checkpoint before the second flush.
    await rm(join(dataDir, '.clean-shutdown'));
    await rm(join(dataDir, 't', '.clean-shutdown'));
    await writeFile(checkpoint, '0\n1\nt 10\n');
    store = await LogStore.open(dataDir, { segmentBytes: 1024 });
    inStore = await store.log('t');
    expect([inStore.flushedOffset, inStore.endOffset]).toEqual([10, 20]);
    await store.checkpoint();
    expect(await readFile(checkpoint, 'utf8')).toBe('0\n1\nt 10\n');
    await inStore.flush();
    await store.checkpoint();
    expect(await readFile(checkpoint, 'utf8')).toBe('0\n1\nt 20\n');
    await store.close();
  });

  test('messages and bytes thresholds trigger background flushes', async () => {
    const log = await Log.open(await tempDir(), { flush: { messages: 5 } });
    const before = stats().fdatasyncCalls;
    for (let i = 0; i < 4; i++) await log.append(rec(i));
    // Below the threshold: no fdatasync, nothing flushed.
    expect(stats().fdatasyncCalls).toBe(before);
    expect(log.flushedOffset).toBe(0);
    // The fifth message crosses it: a flush starts in the background, nobody calls flush().
    await log.append(rec(4));
    await until(() => log.flushedOffset >= 5);
    expect(stats().fdatasyncCalls).toBeGreaterThan(before);
    for (let i = 5; i < 12; i++) await log.append(rec(i));
    // The tenth crosses it again; the last two stay below it.
    await until(() => log.flushedOffset >= 10);
    expect(log.flushedOffset).toBeLessThanOrEqual(12);
    await log.flush(); // waits for any pass under way, then one more
    expect(log.flushedOffset).toBe(12);
    await log.close();
    const byBytes = await Log.open(await tempDir(), { flush: { bytes: 1 } });
    const beforeBytes = stats().fdatasyncCalls;
    await byBytes.append(rec(0));
    await until(() => byBytes.flushedOffset === 1);
    expect(stats().fdatasyncCalls).toBeGreaterThan(beforeBytes);
    expect(byBytes.flushedOffset).toBe(1);
    await byBytes.close();
  });

  test('interval policy flushes on a timer', async () => {
    const log = await Log.open(await tempDir(), { flush: { intervalMs: 10 } });
    await log.append(rec(0));
    await until(() => log.flushedOffset >= 1);
    expect(log.flushedOffset).toBe(1);
    await log.close();
  });

  test('bad policies are rejected', async () => {
    const dir = await tempDir();
    await expect(Log.open(dir, { flush: 'sometimes' as never })).rejects.toThrow(RangeError);
    await expect(Log.open(dir, { flush: {} })).rejects.toThrow(RangeError);
    await expect(Log.open(dir, { flush: { intervalMs: 0 } })).rejects.toThrow(RangeError);
    await expect(Log.open(dir, { flush: 5 as never })).rejects.toThrow(TypeError);
  });

  test('backpressure: appends beyond maxPendingBytes wait their turn and keep their order', async () => {
    const log = await Log.open(await tempDir(), { maxPendingBytes: 2048 });
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => log.append([{ value: Buffer.alloc(500, i) }])));
    expect(results.map((r) => r.baseOffset)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    await log.close();
  });
});

describe('failures', () => {
  test('a failed fdatasync fails the log stop: pending and later appends reject, durable data stays readable', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir, { flush: 'always' });
    await log.append(rec(0));
    injectFault('fdatasync', 'EIO', { count: -1 });
    const pending = Array.from({ length: 5 }, (_, i) => log.append(rec(i + 1)));
    const results = await Promise.allSettled(pending);
    expect(results.every((r) => r.status === 'rejected' && (r.reason as { code: string }).code === 'EIO')).toBe(true);
    injectFault('fdatasync', null);
    // Never retry-and-trust: the log stays failed even though fdatasync works again.
    await expect(log.append(rec(9))).rejects.toMatchObject({ code: 'EIO', syscall: 'fdatasync' });
    await expect(log.flush()).rejects.toMatchObject({ code: 'EIO' });
    expect(log.failure).toMatchObject({ code: 'EIO' });
    expect(log.endOffset).toBe(1);
    expect((await log.read(0)).nextOffset).toBe(1);
    await log.close();
    // No clean marker after a failure: reopening runs recovery.
    await expect(stat(join(dir, '.clean-shutdown'))).rejects.toMatchObject({ code: 'ENOENT' });
    const again = await Log.open(dir, { flush: 'always' });
    expect(again.endOffset).toBeGreaterThanOrEqual(1);
    await again.close();
  });

  test('a failed background flush fails the log too', async () => {
    const log = await Log.open(await tempDir(), { flush: { messages: 1 } });
    injectFault('fdatasync', 'EIO', { count: -1 });
    await log.append(rec(0));
    await until(() => log.failure !== undefined);
    expect(log.failure).toMatchObject({ code: 'EIO' });
    await expect(log.append(rec(1))).rejects.toMatchObject({ code: 'EIO' });
    injectFault('fdatasync', null);
    await log.close();
  });

  test.each(['ENOSPC', 'EIO'])('a failed write (%s) rejects that append, leaves no partial batch, and the log goes on', async (code) => {
    const dir = await tempDir();
    const log = await Log.open(dir);
    await log.append(rec(0));
    const file = join(dir, '00000000000000000000.log');
    const goodSize = (await stat(file)).size;
    injectFault('pwrite', code, { partial: true });
    await expect(log.append(rec(1))).rejects.toMatchObject({ code });
    expect((await stat(file)).size).toBe(goodSize);
    expect(log.endOffset).toBe(1);
    expect(log.failure).toBeUndefined();
    await log.append(rec(2));
    const all = [];
    for await (const r of log.records(0)) all.push([r.offset, r.value!.toString()]);
    expect(all).toEqual([
      [0, 'record-0'],
      [1, 'record-2'],
    ]);
    await log.close();
  });

  test('a failed write of a group too large to write inline (threadpool path) rejects that append alone too', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir, { maxMessageBytes: 8 << 20 });
    await log.append(rec(0));
    const big = [{ value: Buffer.alloc(3 * 1024 * 1024, 7) }];
    injectFault('pwrite', 'EIO', { partial: true });
    await expect(log.append(big)).rejects.toMatchObject({ code: 'EIO' });
    expect(log.endOffset).toBe(1);
    expect(log.failure).toBeUndefined();
    await log.append(big);
    expect((await stat(join(dir, '00000000000000000000.log')).then((s) => s.size)) > 3 * 1024 * 1024).toBe(true);
    await log.close();
  });

  test('small groups are written inline; big groups, a probe after a slow inline write, and writes for a while after a slow probe, on the threadpool', async () => {
    const where: string[] = [];
    const { writev, writevNow } = File.prototype;
    // A clock of the test's own: a write is slow when the test says so, never because the machine is busy.
    let clock = 0;
    const now = vi.spyOn(performance, 'now').mockImplementation(() => clock);
    /** An inline write is slow (a preempted event loop, or the disk); a threadpool write is slow only when the disk is. */
    let loopSlow = false;
    let diskSlow = false;
    File.prototype.writev = async function (this: File, chunks: Uint8Array[], position: number) {
      where.push('threadpool');
      if (diskSlow) clock += 10;
      return writev.call(this, chunks, position);
    };
    File.prototype.writevNow = function (this: File, chunks: Uint8Array[], position: number) {
      where.push('inline');
      if (loopSlow || diskSlow) clock += 10;
      return writevNow.call(this, chunks, position);
    };
    try {
      const log = await Log.open(await tempDir(), { maxMessageBytes: 8 << 20 });
      await log.append(rec(0));
      await log.append([{ value: Buffer.alloc(3 * 1024 * 1024, 7) }]);
      await log.append(rec(1));
      expect(where).toEqual(['inline', 'threadpool', 'inline']);
      // The event loop was held up, the disk was not: one probe on the threadpool, then inline again.
      where.length = 0;
      loopSlow = true;
      await log.append(rec(2));
      loopSlow = false;
      await log.append(rec(3));
      await log.append(rec(4));
      expect(where).toEqual(['inline', 'threadpool', 'inline']);
      // The disk holds writes: the probe is slow too, so writes stay on the threadpool for 50 ms.
      where.length = 0;
      diskSlow = true;
      await log.append(rec(5));
      await log.append(rec(6));
      diskSlow = false;
      await log.append(rec(7));
      expect(where).toEqual(['inline', 'threadpool', 'threadpool']);
      // Still slow when the 50 ms are over (inline, then its probe): 100 ms; a fast write after that resets it to 50.
      where.length = 0;
      clock += 55;
      diskSlow = true;
      await log.append(rec(8));
      await log.append(rec(9));
      diskSlow = false;
      clock += 60;
      await log.append(rec(10));
      clock += 50;
      await log.append(rec(11));
      diskSlow = true;
      await log.append(rec(12));
      await log.append(rec(13));
      diskSlow = false;
      clock += 55;
      await log.append(rec(14));
      expect(where).toEqual(['inline', 'threadpool', 'threadpool', 'inline', 'inline', 'threadpool', 'inline']);
      expect(log.endOffset).toBe(16);
      await log.close();
    } finally {
      now.mockRestore();
      File.prototype.writev = writev;
      File.prototype.writevNow = writevNow;
    }
  });

  test('appends written inline and awaited back to back still let the event loop turn', async () => {
    const { writevNow } = File.prototype;
    // Each inline write takes 1 ms of a clock of the test's own; without a turn, the immediate below would wait for all 100 appends.
    let clock = 0;
    const now = vi.spyOn(performance, 'now').mockImplementation(() => clock);
    File.prototype.writevNow = function (this: File, chunks: Uint8Array[], position: number) {
      clock += 1;
      return writevNow.call(this, chunks, position);
    };
    try {
      const log = await Log.open(await tempDir());
      let turned = -1;
      let appended = 0;
      setImmediate(() => (turned = appended));
      for (; appended < 100; appended++) await log.append(rec(appended));
      // The turn came once the loop had been held for over 5 ms of inline writes.
      expect(turned).toBeGreaterThan(0);
      expect(turned).toBeLessThan(10);
      expect(log.endOffset).toBe(100);
      await log.close();
    } finally {
      now.mockRestore();
      File.prototype.writevNow = writevNow;
    }
  });

  test('a failed write whose cleanup also fails stops the log', async () => {
    const log = await Log.open(await tempDir());
    await log.append(rec(0));
    injectFault('pwrite', 'EIO', { partial: true });
    injectFault('ftruncate', 'EIO');
    await expect(log.append(rec(1))).rejects.toMatchObject({ code: 'EIO' });
    expect(log.failure).toMatchObject({ code: 'EIO', syscall: 'ftruncate' });
    await expect(log.append(rec(2))).rejects.toMatchObject({ code: 'EIO', syscall: 'ftruncate' });
    await log.close();
  });

  test('new segments are followed by a directory fsync', async () => {
    const log = await Log.open(await tempDir(), { segmentBytes: 1024 });
    await log.append([{ value: Buffer.alloc(600) }]);
    const before = stats().fsyncCalls;
    await log.append([{ value: Buffer.alloc(600) }]);
    expect(log.segmentCount).toBe(2);
    expect(stats().fsyncCalls).toBeGreaterThan(before);
    // A failing directory fsync fails the roll and so the append.
    injectFault('fsync', 'EIO');
    await expect(log.append([{ value: Buffer.alloc(600) }])).rejects.toMatchObject({ code: 'EIO' });
    await log.close();
  });

  test.each([
    ['the time index', 1],
    ['the offset index', 0],
  ])('a seal whose trim of %s fails leaves the segment active, indexing and truncatable', async (_, skip) => {
    const dir = await tempDir();
    const log = await Log.open(dir, { segmentBytes: 4096, indexIntervalBytes: 1 });
    for (let i = 0; i < 5; i++) await log.append([{ value: Buffer.alloc(500, i), timestamp: 1000 + i }]);
    const mappings = stats().liveMappings;
    // The roll creates the next segment (its two index ftruncates), then seals: offset index trim, time index trim.
    injectFault('ftruncate', 'EIO', { skip: 2 + skip });
    await expect(log.append([{ value: Buffer.alloc(3000) }])).rejects.toMatchObject({ code: 'EIO', syscall: 'ftruncate' });
    expect(log.failure).toBeUndefined();
    expect(log.segmentCount).toBe(1);
    // Both indexes writable and mapped again: nothing leaked, nothing left read-only.
    expect(stats().liveMappings).toBe(mappings);
    await log.append([{ value: Buffer.alloc(100, 9), timestamp: 2000 }]);
    const tail = [];
    for await (const r of log.records(5)) tail.push(r.value![0]);
    expect(tail).toEqual([9]);
    await log.truncateTo(3);
    expect(log.endOffset).toBe(3);
    await log.append([{ value: Buffer.alloc(3000, 7) }]);
    expect(log.segmentCount).toBe(2);
    await log.close();
    const again = await Log.open(dir, { segmentBytes: 4096 });
    expect(again.endOffset).toBe(4);
    expect(await again.offsetForTimestamp(1002)).toBe(2);
    for await (const r of again.records(2)) {
      expect(r.value).toEqual(Buffer.alloc(500, 2));
      break;
    }
    await again.close();
  });

  test('rolling is refused below the free-space floor', async () => {
    const log = await Log.open(await tempDir(), { segmentBytes: 1024, minFreeBytes: Number.MAX_SAFE_INTEGER });
    await log.append([{ value: Buffer.alloc(600) }]);
    await expect(log.append([{ value: Buffer.alloc(600) }])).rejects.toMatchObject({ code: 'ENOSPC', message: expect.stringMatching(/minFreeBytes/) });
    expect(log.segmentCount).toBe(1);
    await log.close();
  });
});

describe('retention on a log', () => {
  test('deleteRecordsBefore moves the start durably and removes whole segments below it', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir, { segmentBytes: 1024, fileDeleteDelayMs: 0 });
    for (let i = 0; i < 30; i++) await log.append([{ value: Buffer.alloc(200, i) }]);
    const segments = log.segmentCount;
    expect(await log.deleteRecordsBefore(13)).toBe(13);
    expect(log.startOffset).toBe(13);
    expect(log.segmentCount).toBeLessThan(segments);
    await expect(log.read(12)).rejects.toMatchObject({ code: 'EOFFSETRANGE' });
    expect((await log.read(13, { maxBytes: 1 })).nextOffset).toBe(14);
    expect((await readFile(join(dir, '.log-start-offset'), 'utf8')).trim()).toBe('13');
    await expect(log.deleteRecordsBefore(31)).rejects.toMatchObject({ code: 'EOFFSETRANGE' });
    await log.close();
    const again = await Log.open(dir, { segmentBytes: 1024 });
    expect(again.startOffset).toBe(13);
    await again.close();
  });

  test('retention by bytes and by time never removes the active segment', async () => {
    const log = await Log.open(await tempDir(), { segmentBytes: 1024, fileDeleteDelayMs: 0 });
    for (let i = 0; i < 30; i++) await log.append([{ value: Buffer.alloc(200, i), timestamp: 1000 + i }]);
    const total = log.size;
    expect(await log.applyRetention({ retentionBytes: total - 1000 })).toBeGreaterThan(0);
    expect(log.size).toBeGreaterThanOrEqual(total - 1000);
    expect(await log.applyRetention({ retentionMs: 0, now: 10_000 })).toBeGreaterThan(0);
    expect(log.segmentCount).toBe(1);
    expect(log.endOffset).toBe(30);
    await log.append([{ value: 'after' }]);
    await log.close();
  });
});
