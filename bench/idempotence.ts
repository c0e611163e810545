// What producer-state bookkeeping costs an append (issue #15): the same
// pre-encoded batches appended with appendBatches as a plain producer's
// (producerId -1) and as idempotent producers' (producerId, epoch, running
// sequences: every batch checked against its producer's state and
// recorded), interleaved trial by trial (the order alternating), each trial
// a fresh log. The figure is the per-trial ratio of idempotent to plain
// time, median with min–max; the target is <= 1.10. Each trial is timed on
// two clocks: wall time, and this process's CPU time (user + system, all
// its threads: the threadpool's writes and the GC included). On a machine
// shared with other work, wall time also counts waiting (a preempted trial,
// or one whose slow inline writes sent the next ones to the threadpool);
// CPU time leaves that out, though not a host that takes the CPU from a
// busy VM, so both are shown.
//
//   npm run bench:idempotence -- [--dir <path>] [--trials <n>] [--batches <n>]
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { encodeBatch, Log } from '../src/seglog.js';
import { benchDir, cpuTicks, describeMachine, formatMachine, formatMs, markdownTable, now, stealSince, summarize, usageError } from './common.js';
import type { PeerWorkload } from './peers.js';

const USAGE = `usage: npm run bench:idempotence -- [--dir <path>] [--trials <n>] [--batches <n>]
  --dir      parent directory for the benchmark's files (default: the OS temp dir)
  --trials   interleaved trials per case (default 9)
  --batches  batches appended per trial (default 20000)`;

interface Case {
  name: string;
  records: number;
  recordBytes: number;
  producers: number;
  inFlight: number;
}

const CASES: Case[] = [
  { name: '10 × 100 B per batch, 1 producer, 1 in flight', records: 10, recordBytes: 100, producers: 1, inFlight: 1 },
  { name: '10 × 100 B per batch, 1 producer, 8 in flight', records: 10, recordBytes: 100, producers: 1, inFlight: 8 },
  { name: '10 × 100 B per batch, 1000 producers, 8 in flight', records: 10, recordBytes: 100, producers: 1000, inFlight: 8 },
  { name: '100 × 1 KiB per batch, 1 producer, 1 in flight', records: 100, recordBytes: 1024, producers: 1, inFlight: 1 },
];

/** The case's batches, encoded once: as producers' batches (sequences running per producer) or plain. */
export function encodeAll(c: Case, batches: number, idempotent: boolean): Buffer[] {
  const value = Buffer.alloc(c.recordBytes, 0x61);
  const records = Array.from({ length: c.records }, () => ({ value }));
  const seqs = new Array<number>(c.producers).fill(0);
  return Array.from({ length: batches }, (_, i) => {
    if (!idempotent) return encodeBatch(records);
    const producer = i % c.producers;
    const baseSequence = seqs[producer]!;
    seqs[producer] = baseSequence + c.records;
    return encodeBatch(records, { producerId: 1000 + producer, producerEpoch: 0, baseSequence });
  });
}

/** Milliseconds of CPU time this process has used, all its threads. */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/** Appends `data` to a fresh log in `dir`, `inFlight` at a time; returns the time taken (ms, wall and CPU) and checks every append landed. */
export async function appendAll(dir: string, data: Buffer[], inFlight: number): Promise<{ wall: number; cpu: number }> {
  const log = await Log.open(dir, { segmentBytes: 256 * 1024 * 1024 });
  try {
    let next = 0;
    const start = now();
    const startCpu = cpuMs();
    const lane = async () => {
      while (next < data.length) {
        const r = await log.appendBatches(data[next++]!);
        if (r.duplicate) throw new Error('a batch was taken for a duplicate');
      }
    };
    await Promise.all(Array.from({ length: inFlight }, lane));
    const time = { wall: now() - start, cpu: cpuMs() - startCpu };
    const records = data.length * (data[0]!.readInt32BE(57));
    if (log.endOffset !== records) throw new Error(`log ends at ${log.endOffset}, ${records} records were appended`);
    return time;
  } finally {
    await log.close();
    // Trials of the large batches write GBs each: keep one at a time on disk.
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * For `npm run bench`'s peers group: the small-batch cases (where the
 * bookkeeping weighs most), plain first (the row the idempotent one is
 * set against), each trial appending `batches` pre-encoded batches.
 */
export function idempotenceWorkloads(batches: number): PeerWorkload[] {
  return CASES.filter((c) => c.records * c.recordBytes <= 1000).map((c) => {
    const subject = (idempotent: boolean) => {
      const data = encodeAll(c, batches, idempotent);
      return {
        name: idempotent ? 'seglog appendBatches, idempotent producers' : 'seglog appendBatches, plain batches',
        trial: async (dir: string) => ({ value: (batches * c.records) / ((await appendAll(join(dir, 'log'), data, c.inFlight)).wall / 1000) }),
      };
    };
    return { name: `producer bookkeeping, ${c.name}`, unit: 'records/s', subjects: [subject(false), subject(true)] };
  });
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({ options: { dir: { type: 'string' }, trials: { type: 'string' }, batches: { type: 'string' }, help: { type: 'boolean' } } }));
  } catch (err) {
    usageError((err as Error).message, USAGE);
  }
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const trials = Number(values.trials ?? 9);
  const batches = Number(values.batches ?? 20000);
  if (!Number.isInteger(trials) || trials < 1 || !Number.isInteger(batches) || batches < 1) usageError('--trials and --batches take positive integers', USAGE);
  const root = await benchDir(values.dir);
  try {
    console.log(formatMachine(describeMachine(root.path)));
    const ticks = cpuTicks();
    const rows: string[][] = [];
    for (const [n, c] of CASES.entries()) {
      const plain = encodeAll(c, batches, false);
      const idempotent = encodeAll(c, batches, true);
      const times = { plain: [] as number[], idempotent: [] as number[], ratio: [] as number[], cpuRatio: [] as number[] };
      for (let t = 0; t < trials; t++) {
        // Alternating order: neither side always runs first (warmer or cooler caches, a GC owed by the other).
        const order = t % 2 === 0 ? (['plain', 'idempotent'] as const) : (['idempotent', 'plain'] as const);
        const got: Record<string, { wall: number; cpu: number }> = {};
        for (const side of order) got[side] = await appendAll(join(root.path, `${n}-${side}-${t}`), side === 'plain' ? plain : idempotent, c.inFlight);
        times.plain.push(got.plain!.wall);
        times.idempotent.push(got.idempotent!.wall);
        times.ratio.push(got.idempotent!.wall / got.plain!.wall);
        times.cpuRatio.push(got.idempotent!.cpu / got.plain!.cpu);
      }
      const fmt = (values: number[], f: (n: number) => string) => {
        const s = summarize(values);
        return `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
      };
      const ratio = (n: number) => n.toFixed(3);
      rows.push([c.name, fmt(times.plain, formatMs), fmt(times.idempotent, formatMs), fmt(times.ratio, ratio), fmt(times.cpuRatio, ratio)]);
    }
    console.log(`\n${batches} batches per trial, ${trials} interleaved trials per case; medians (min–max)\n`);
    console.log(
      markdownTable(['appendBatches', 'plain', 'idempotent', 'idempotent ÷ plain, per trial', 'the same in CPU time'], rows, ['l', 'r', 'r', 'r', 'r']),
    );
    console.log(`\nvCPU steal during the trials: ${stealSince(ticks)}`);
  } finally {
    await root.remove();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
