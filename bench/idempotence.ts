// What producer-state bookkeeping costs an append (issue #15): the same
// pre-encoded batches appended with appendBatches as a plain producer's
// (producerId -1) and as idempotent producers' (producerId, epoch, running
// sequences: every batch checked against its producer's state and
// recorded), each into a fresh log, the two taking turns every 500 batches
// within a trial (the side going first alternating from trial to trial).
// The figure is each trial's median, over its pairs of turns (the same
// range of batches, appended one side after the other), of the ratio of
// idempotent to plain time; the median of the trials, with min–max; the
// target is <= 1.10. Why pairs of turns and not whole trials: a few turns
// in a trial take 5-20x the median turn (a GC, an inline write that found
// the page cache slow and sent the next writes to the threadpool, a vCPU
// the host took away). Summed, they land on one side or the other at
// random and move a trial's ratio by up to +-25%; paired turn by turn,
// they are outliers the median leaves out. The ratio of the summed turns is
// shown too, on two clocks: wall time, and this process's CPU time (user +
// system, all its threads: the threadpool's writes and the GC included).
//
//   npm run bench:idempotence -- [--dir <path>] [--trials <n>] [--batches <n>]
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { encodeBatch, Log } from '../src/seglog.js';
import { benchDir, cpuTicks, describeMachine, formatMachine, formatMs, markdownTable, now, progress, stealSince, summarize, usageError } from './common.js';
import type { PeerRow } from './peers.js';

const USAGE = `usage: npm run bench:idempotence -- [--dir <path>] [--trials <n>] [--batches <n>]
  --dir      parent directory for the benchmark's files (default: the OS temp dir)
  --trials   paired trials per case (default 9)
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

/** Batches one side appends in a turn before the other side's (a few ms of appends). */
const TURN_BATCHES = 500;

type Side = 'plain' | 'idempotent';
/** One side's part of a paired trial: wall and CPU time (ms) summed over its turns, and each turn's wall time per batch (ms), in turn order. */
export interface SideTimes {
  wall: number;
  cpu: number;
  turns: number[];
}
export type PairedTimes = Record<Side, SideTimes>;

/** A trial's ratio of idempotent to plain time: the median over its pairs of turns (see the top of this file). */
export function turnRatio(t: PairedTimes): number {
  return summarize(t.idempotent.turns.map((ms, i) => ms / t.plain.turns[i]!)).median;
}

/** One side's median turn of a trial: ms a batch. */
function medianTurn(side: SideTimes): number {
  return summarize(side.turns).median;
}

/** Appends data[from, to) to `log`, `inFlight` at a time, and checks none was taken for a duplicate. */
async function appendRange(log: Log, data: Buffer[], from: number, to: number, inFlight: number): Promise<void> {
  let next = from;
  const lane = async () => {
    while (next < to) {
      const r = await log.appendBatches(data[next++]!);
      if (r.duplicate) throw new Error('a batch was taken for a duplicate');
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
}

/**
 * One trial: `data.plain` and `data.idempotent` (the same number of batches)
 * each appended to a fresh log under `dir`, the two taking turns every
 * TURN_BATCHES batches, `first` going first. Taking turns at that grain
 * lets both sides meet the same machine state (a vCPU the host took away,
 * memory it reclaimed, a GC, the page cache filling); whole trials one after
 * the other differed by up to 2x on this VM. Returns each side's time (ms,
 * wall and CPU) summed over its turns and each turn's, and checks every
 * append landed.
 */
export async function pairedTrial(dir: string, data: Record<Side, Buffer[]>, inFlight: number, first: Side): Promise<PairedTimes> {
  const order: Side[] = first === 'plain' ? ['plain', 'idempotent'] : ['idempotent', 'plain'];
  const options = { segmentBytes: 256 * 1024 * 1024 };
  const plain = await Log.open(join(dir, 'plain'), options);
  let idempotent: Log | undefined;
  try {
    idempotent = await Log.open(join(dir, 'idempotent'), options);
    const logs = { plain, idempotent };
    const times: PairedTimes = { plain: { wall: 0, cpu: 0, turns: [] }, idempotent: { wall: 0, cpu: 0, turns: [] } };
    const total = data.plain.length;
    for (let from = 0; from < total; from += TURN_BATCHES) {
      const to = Math.min(total, from + TURN_BATCHES);
      for (const side of order) {
        const start = now();
        const startCpu = cpuMs();
        await appendRange(logs[side], data[side], from, to, inFlight);
        const wall = now() - start;
        times[side].cpu += cpuMs() - startCpu;
        times[side].wall += wall;
        times[side].turns.push(wall / (to - from));
      }
    }
    const records = total * data.plain[0]!.readInt32BE(57);
    for (const side of order) {
      if (logs[side].endOffset !== records) throw new Error(`the ${side} log ends at ${logs[side].endOffset}, ${records} records were appended`);
    }
    return times;
  } finally {
    await Promise.all([plain.close(), idempotent?.close()]);
    // Trials of the large batches write GBs each: keep one at a time on disk.
    await rm(dir, { recursive: true, force: true });
  }
}

/** The per-trial times of every case, `trials` paired trials each (the side going first alternating), after one untimed trial that compiles both paths. */
async function measureCases(parent: string, cases: Case[], batches: number, trials: number): Promise<{ c: Case; times: PairedTimes[] }[]> {
  const out = [];
  for (const [n, c] of cases.entries()) {
    const data = { plain: encodeAll(c, batches, false), idempotent: encodeAll(c, batches, true) };
    const times: PairedTimes[] = [];
    for (let t = -1; t < trials; t++) {
      progress(`producer bookkeeping, ${c.name}: ${t < 0 ? 'warm-up' : `trial ${t + 1}/${trials}`}`);
      const got = await pairedTrial(join(parent, `${n}-${t}`), data, c.inFlight, t % 2 === 0 ? 'plain' : 'idempotent');
      if (t >= 0) times.push(got);
    }
    out.push({ c, times });
  }
  return out;
}

/**
 * For `npm run bench`'s peers group: the small-batch cases (where the
 * bookkeeping weighs most) as two rows each, plain first (the row the
 * idempotent one is set against), records/s per paired trial from its
 * median turn.
 */
export async function idempotenceRows(parent: string, batches: number, trials: number): Promise<PeerRow[]> {
  const measured = await measureCases(parent, CASES.filter((c) => c.records * c.recordBytes <= 1000), batches, trials);
  return measured.flatMap(({ c, times }) =>
    (['plain', 'idempotent'] as const).map((side) => {
      const samples = times.map((t) => (c.records * 1000) / medianTurn(t[side]));
      return {
        workload: `producer bookkeeping, ${c.name}, ${trials} paired trials, median ${TURN_BATCHES}-batch turns`,
        subject: side === 'plain' ? 'seglog appendBatches, plain batches' : 'seglog appendBatches, idempotent producers',
        unit: 'records/s',
        ...summarize(samples),
        samples,
        paired: true,
      };
    }),
  );
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
    for (const { c, times } of await measureCases(root.path, CASES, batches, trials)) {
      const fmt = (values: number[], f: (n: number) => string) => {
        const s = summarize(values);
        return `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
      };
      const ratio = (n: number) => n.toFixed(3);
      rows.push([
        c.name,
        fmt(times.map((t) => medianTurn(t.plain)), formatMs),
        fmt(times.map((t) => medianTurn(t.idempotent)), formatMs),
        fmt(times.map(turnRatio), ratio),
        fmt(times.map((t) => t.idempotent.wall / t.plain.wall), ratio),
        fmt(times.map((t) => t.idempotent.cpu / t.plain.cpu), ratio),
      ]);
    }
    console.log(`\n${batches} batches per trial, ${trials} paired trials per case (turns of ${TURN_BATCHES} batches, after one untimed trial); medians (min–max)\n`);
    console.log(
      markdownTable(
        ['appendBatches', 'plain, a batch (median turn)', 'idempotent', 'idempotent ÷ plain: median of paired turns', 'summed turns, wall', 'summed turns, CPU'],
        rows,
        ['l', 'r', 'r', 'r', 'r', 'r'],
      ),
    );
    console.log(`\nvCPU steal during the trials: ${stealSince(ticks)}`);
  } finally {
    await root.remove();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
