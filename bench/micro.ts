// Micro benchmarks (tinybench): CRC-32C, batch encode/decode (plain and per
// codec) and index lookups, the CPU-bound pieces under every append and read. Each task's
// result is checked before it is timed (a known CRC, a decode that gives back
// what was encoded, lookups that agree with a plain binary search), so a
// broken fast path fails instead of looking fast.
//
//   npm run bench:micro [-- --time <ms per task>]
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Bench, type Task } from 'tinybench';
import { crc32c, crc32cHardware, OffsetIndex, TimeIndex } from '../src/io.js';
import { crc32cSoftware } from '../src/native.js';
import { decodeBatch, encodeBatch, type RecordInput } from '../src/seglog.js';
import { benchDir, describeMachine, formatBytes, formatMachine, formatMs, formatNumber, loadAverage, markdownTable, rng } from './common.js';

const USAGE = 'usage: npm run bench:micro [-- --time <ms per task, default 500>]';
const CRC_BYTES = 64 * 1024;
const RECORDS = 100;
const RECORD_BYTES = 1024;
const INDEX_ENTRIES = 100_000;
const CODECS = ['gzip', 'snappy', 'lz4', 'zstd'] as const;
/** Lookups per task call: one lookup is too short for the clock to time on its own. */
const LOOKUPS = 1000;

/** CRC-32C with a 256-entry table, one byte at a time: the textbook JS baseline. */
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32cJs(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`verification: ${what}`);
}

/** Entries like a segment's: one per 4 KiB of 1 KiB records, a few milliseconds apart. */
function entryAt(i: number): { offset: number; position: number; timestamp: number } {
  return { offset: i * 4, position: i * 4096, timestamp: 1_700_000_000_000 + i * 7 };
}

/** Index of the last entry whose key is <= target, by a plain binary search over entryAt: what every lookup must agree with. */
function expectedSlot(key: (i: number) => number, target: number): number {
  let lo = 0;
  let hi = INDEX_ENTRIES - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (key(mid) <= target) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

interface Figure {
  task: Task;
  /** Bytes or lookups one call handles, to turn calls/s into a throughput. */
  per: number;
  unit: 'B' | 'lookups';
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { time: { type: 'string', default: '500' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const time = Number(values.time);
  if (!(time > 0)) {
    console.error(USAGE);
    process.exit(2);
  }
  const dir = await benchDir();
  try {
    // ---- inputs, each checked
    const next = rng(1);
    const data = Buffer.from(Array.from({ length: CRC_BYTES }, () => Math.floor(next() * 256)));
    const known = Buffer.from('123456789');
    // 0xe3069283: the CRC-32C check value of "123456789" (RFC 3720, B.4).
    for (const [name, fn] of [['crc32c', crc32c], ['crc32cSoftware', crc32cSoftware], ['JS table', crc32cJs]] as const) {
      check(fn(known) === 0xe3069283, `${name}("123456789") is not 0xe3069283`);
    }
    const crc = crc32cJs(data);
    check(crc32c(data) === crc && crc32cSoftware(data) === crc, 'the CRC-32C paths disagree on 64 KiB of random bytes');

    const records: RecordInput[] = Array.from({ length: RECORDS }, (_, i) => ({ key: `key-${i}`, value: data.subarray(i * RECORD_BYTES, (i + 1) * RECORD_BYTES) }));
    const batch = encodeBatch(records, { baseOffset: 1000, now: 1_700_000_000_000 });
    const decoded = decodeBatch(batch);
    check(decoded.length === RECORDS, `decode gave ${decoded.length} records, ${RECORDS} were encoded`);
    decoded.forEach((r, i) => check(r.offset === 1000 + i && r.key?.toString() === `key-${i}` && r.value!.equals(records[i]!.value as Buffer), `record ${i} does not decode to what was encoded`));

    // Codecs get records that compress as JSON events do (random bytes would measure only their give-up paths).
    const events: RecordInput[] = Array.from({ length: RECORDS }, (_, i) => ({
      key: `user-${Math.floor(next() * 5000)}`,
      value: JSON.stringify({ id: i, at: 1_700_000_000_000 + i, kind: ['view', 'click', 'buy'][i % 3], items: Array.from({ length: 12 }, () => ({ sku: `sku-${Math.floor(next() * 900)}`, price: Math.floor(next() * 10_000) / 100 })) }),
    }));
    const eventsBatch = encodeBatch(events, { baseOffset: 1000, now: 1_700_000_000_000 });
    const eventsDecoded = decodeBatch(eventsBatch);
    const compressed = CODECS.map((name) => {
      const batch = encodeBatch(events, { baseOffset: 1000, now: 1_700_000_000_000, compression: name });
      const got = decodeBatch(batch);
      check(got.length === RECORDS && got.every((r, i) => r.value!.equals(eventsDecoded[i]!.value!) && r.key!.equals(eventsDecoded[i]!.key!)), `${name}: decode does not give back what was encoded`);
      return { name, batch };
    });

    const offsets = await OffsetIndex.open(join(dir.path, '00000000000000000000.index'), 0, { writable: true, maxIndexBytes: INDEX_ENTRIES * OffsetIndex.ENTRY_SIZE });
    const times = await TimeIndex.open(join(dir.path, '00000000000000000000.timeindex'), 0, { writable: true, maxIndexBytes: INDEX_ENTRIES * TimeIndex.ENTRY_SIZE });
    for (let i = 0; i < INDEX_ENTRIES; i++) {
      const e = entryAt(i);
      offsets.append(e.offset, e.position);
      times.append(e.timestamp, e.offset);
    }
    const targets = Array.from({ length: LOOKUPS }, () => Math.floor(next() * entryAt(INDEX_ENTRIES).offset));
    const timeTargets = Array.from({ length: LOOKUPS }, () => entryAt(0).timestamp + Math.floor(next() * (entryAt(INDEX_ENTRIES).timestamp - entryAt(0).timestamp)));
    targets.forEach((t, k) => {
      const want = entryAt(expectedSlot((i) => entryAt(i).offset, t));
      const got = offsets.lookup(t);
      check(got.offset === want.offset && got.position === want.position, `OffsetIndex.lookup(${t}) gave ${got.offset}@${got.position}`);
      const wantTime = entryAt(expectedSlot((i) => entryAt(i).timestamp, timeTargets[k]!));
      const gotTime = times.lookup(timeTargets[k]!);
      check(gotTime.offset === wantTime.offset, `TimeIndex.lookup(${timeTargets[k]}) gave offset ${gotTime.offset}, expected ${wantTime.offset}`);
    });

    // ---- timing; results are summed so no call can be optimised away
    let sink = 0;
    const bench = new Bench({ time, warmupTime: Math.min(200, time), throws: true });
    const figures: Figure[] = [];
    const add = (name: string, fn: () => void, per: number, unit: Figure['unit']) => {
      bench.add(name, fn);
      figures.push({ task: bench.getTask(name)!, per, unit });
    };
    add(`crc32c, 64 KiB (${crc32cHardware ? 'SSE4.2' : 'table fallback'})`, () => void (sink += crc32c(data)), CRC_BYTES, 'B');
    add('crc32cSoftware, 64 KiB (addon table path)', () => void (sink += crc32cSoftware(data)), CRC_BYTES, 'B');
    add('JS table CRC-32C, 64 KiB (baseline)', () => void (sink += crc32cJs(data)), CRC_BYTES, 'B');
    add(`encodeBatch, ${RECORDS} × ${RECORD_BYTES} B records`, () => void (sink += encodeBatch(records, { baseOffset: 1000, now: 1_700_000_000_000 }).length), batch.length, 'B');
    add(`decodeBatch, ${RECORDS} × ${RECORD_BYTES} B records (CRC checked)`, () => void (sink += decodeBatch(batch).length), batch.length, 'B');
    const eventBytes = eventsBatch.length;
    add(`encodeBatch, ${RECORDS} JSON events (${formatBytes(eventBytes)}), none`, () => void (sink += encodeBatch(events, { baseOffset: 1000, now: 1_700_000_000_000 }).length), eventBytes, 'B');
    add(`decodeBatch, ${RECORDS} JSON events, none`, () => void (sink += decodeBatch(eventsBatch).length), eventBytes, 'B');
    for (const { name, batch: c } of compressed) {
      const ratio = `${((100 * c.length) / eventBytes).toFixed(0)}% of plain`;
      add(`encodeBatch, ${RECORDS} JSON events, ${name} (${ratio})`, () => void (sink += encodeBatch(events, { baseOffset: 1000, now: 1_700_000_000_000, compression: name }).length), eventBytes, 'B');
      add(`decodeBatch, ${RECORDS} JSON events, ${name}`, () => void (sink += decodeBatch(c).length), eventBytes, 'B');
    }
    add(`OffsetIndex.lookup × ${LOOKUPS}, ${formatNumber(INDEX_ENTRIES)} entries`, () => {
      for (const t of targets) sink += offsets.lookup(t).position;
    }, LOOKUPS, 'lookups');
    add(`TimeIndex.lookup × ${LOOKUPS}, ${formatNumber(INDEX_ENTRIES)} entries`, () => {
      for (const t of timeTargets) sink += times.lookup(t).offset;
    }, LOOKUPS, 'lookups');
    process.stderr.write(`running ${figures.length} tasks, ${time} ms each...\n`);
    await bench.run();
    check(Number.isFinite(sink), 'unreachable');
    await offsets.close();
    await times.close();

    const rows = figures.map(({ task, per, unit }) => {
      const r = task.result;
      if (r.state !== 'completed') throw new Error(`task ${task.name} did not complete: ${r.state}`);
      const perSecond = r.throughput.p50;
      return [
        task.name,
        formatNumber(perSecond),
        unit === 'B' ? `${formatBytes(perSecond * per)}/s` : `${formatNumber(perSecond * per)} lookups/s`,
        formatMs(r.latency.p50),
        formatMs(r.latency.p99),
        `±${r.latency.rme.toFixed(1)}%`,
        String(r.latency.samplesCount),
      ];
    });
    console.log('# seglog micro benchmarks (tinybench)\n');
    console.log(formatMachine(describeMachine(dir.path), { 'Load average': loadAverage(), 'Time per task': `${time} ms after ${Math.min(200, time)} ms of warm-up` }));
    console.log('');
    console.log(markdownTable(['task', 'calls/s (p50)', 'throughput', 'latency p50', 'latency p99', 'rme', 'samples'], rows, ['l', 'r', 'r', 'r', 'r', 'r', 'r']));
    console.log('\nEvery result was checked before timing: CRC-32C of "123456789" is 0xe3069283 on all three paths, decode returns what encode was given (per codec too; codec throughput counts uncompressed batch bytes), index lookups agree with a plain binary search.');
  } finally {
    await dir.remove();
  }
}

await main();
