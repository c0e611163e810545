// Isolation benchmark (M5): does a consumer replaying a cold backlog slow
// the producer and the consumers at the head of the log? Per cache mode, in
// one invocation: a writer appends at a fixed rate (open loop: latencies
// count from each batch's intended send time), 4 tailing readers follow the
// end, and after a baseline phase 1 catch-up reader replays a backlog that
// is at least 4x the memory the page cache may use (a balloon process, or a
// cgroup you provide, takes the rest) and whose pages were evicted first.
// Phases: baseline -> replay (until the backlog is read) -> drain.
//
//   npx tsx bench/cache.ts [--quick] [--dir <path>] [--rate <MB/s>] [--page-cache <MiB>]
//                          [--backlog <GiB>] [--baseline <s>] [--drain <s>] [--flush-ms <ms>]
//                          [--cgroup <path>] [--modes pagecache,own,own@200]
//
// Writes a Markdown report to stdout and, with an SVG chart of tail p99
// over time, to bench/results/.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { File, PAGE_SIZE } from '../src/io.js';
import { encodeBatch, Log, readBatchHeader, type CacheOptions, type CacheStats } from '../src/seglog.js';
import { benchDir, describeMachine, evict, formatBytes, formatMachine, markdownTable, now, progress } from './common.js';
import { logFiles } from './log.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
/** Records of 1 KiB with their framing, 64 of them to a batch: about 64 KiB per batch. */
const RECORD_VALUE_BYTES = 1014;
const BATCH_RECORDS = 64;
const FETCH_BYTES = MiB;
const TAILERS = 4;
/** The range whose page-cache residency is sampled: the newest bytes, what tailing readers read. */
const TAIL_RANGE = 64 * MiB;
const SAMPLE_MS = 500;
const BUCKET_MS = 1000;
/** MemAvailable left beside the page cache budget for this process (heap, tail cache, buffers). */
const PROCESS_RESERVE = 512 * MiB;
/** 'pagecache', 'own', or 'own@<MB/s>': own mode with catch-up reads bounded to that bandwidth. */
type Mode = string;
const DEFAULT_MODES: Mode[] = ['pagecache', 'own', 'own@200'];
const MODE = /^(pagecache|own)(?:@(\d+(?:\.\d+)?))?$/;

/** The cache option a mode names. */
function cacheOf(mode: Mode): CacheOptions {
  const m = MODE.exec(mode);
  if (m === null || (m[1] === 'pagecache' && m[2] !== undefined) || Number(m[2]) === 0) throw new RangeError(`mode must be pagecache, own or own@<MB/s>, got ${mode}`);
  if (m[1] === 'pagecache') return { mode: 'pagecache' };
  return { mode: 'own', catchUpBytesPerSecond: m[2] === undefined ? 0 : Math.round(Number(m[2]) * 1e6) };
}

const USAGE = `usage: npx tsx bench/cache.ts [--quick] [--dir <path>] [--rate <MB/s>] [--page-cache <MiB>]
                            [--backlog <GiB>] [--baseline <s>] [--drain <s>] [--flush-ms <ms>]
                            [--cgroup <path>] [--modes pagecache,own,own@200]
  --quick       about a minute: 512 MiB page cache, 5 s phases
  --dir         parent directory for the benchmark's files (default: the OS temp dir)
  --rate        writer rate in MB/s (default 100)
  --page-cache  memory the page cache may use, in MiB (default 1024); a balloon takes the rest
  --backlog     backlog to replay in GiB (default: 4x what the page cache and this process may use)
  --baseline    seconds of the baseline phase (default 20), --drain: of the drain phase (default 20)
  --flush-ms    flush interval of the log (default 200)
  --cgroup      run inside this cgroup (its memory.max or memory.limit_in_bytes) instead of a balloon
  --modes       cache modes to run, in order (default pagecache,own,own@200); own@<MB/s> bounds
                own mode's catch-up reads to that bandwidth (cache.catchUpBytesPerSecond)`;

export interface Options {
  dir: string | undefined;
  rate: number;
  pageCache: number;
  backlog: number | undefined;
  baselineMs: number;
  drainMs: number;
  warmUpMs: number;
  /** The replay phase ends here even if the backlog is not read yet. */
  maxReplayMs: number;
  flushMs: number;
  cgroup: string | undefined;
  modes: Mode[];
}

function usageError(message: string): never {
  console.error(`${message}\n${USAGE}`);
  process.exit(2);
}

function options(): Options {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        quick: { type: 'boolean' },
        dir: { type: 'string' },
        rate: { type: 'string' },
        'page-cache': { type: 'string' },
        backlog: { type: 'string' },
        baseline: { type: 'string' },
        drain: { type: 'string' },
        'flush-ms': { type: 'string' },
        cgroup: { type: 'string' },
        modes: { type: 'string' },
        help: { type: 'boolean' },
      },
    }));
  } catch (err) {
    usageError((err as Error).message);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const quick = values.quick === true;
  const positive = (name: string, text: string | undefined, dflt: number) => {
    const n = text === undefined ? dflt : Number(text);
    if (!(n > 0) || !Number.isFinite(n)) usageError(`--${name} must be a positive number, got ${text}`);
    return n;
  };
  const d = defaults(quick);
  const modes = values.modes?.split(',') ?? d.modes;
  for (const m of modes) {
    try {
      cacheOf(m);
    } catch (err) {
      usageError(`--modes: ${(err as Error).message}`);
    }
  }
  return {
    ...d,
    dir: values.dir,
    rate: positive('rate', values.rate, d.rate / 1e6) * 1e6,
    pageCache: positive('page-cache', values['page-cache'], d.pageCache / MiB) * MiB,
    backlog: values.backlog === undefined ? undefined : positive('backlog', values.backlog, 0) * GiB,
    baselineMs: positive('baseline', values.baseline, d.baselineMs / 1000) * 1000,
    drainMs: positive('drain', values.drain, d.drainMs / 1000) * 1000,
    flushMs: positive('flush-ms', values['flush-ms'], d.flushMs),
    cgroup: values.cgroup,
    modes,
  };
}

function defaults(quick: boolean): Options {
  return {
    dir: undefined,
    rate: 100e6,
    pageCache: (quick ? 512 : 1024) * MiB,
    backlog: undefined,
    baselineMs: (quick ? 5 : 20) * 1000,
    drainMs: (quick ? 5 : 20) * 1000,
    warmUpMs: quick ? 1000 : 3000,
    maxReplayMs: quick ? 30_000 : 120_000,
    flushMs: 200,
    cgroup: undefined,
    modes: DEFAULT_MODES,
  };
}

// ---------------------------------------------------------------- memory pressure

function meminfo(field: string): number {
  const kib = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync('/proc/meminfo', 'utf8'))?.[1];
  return Number(kib ?? 0) * KiB;
}

/** Bytes this process had read from storage (/proc/self/io read_bytes: O_DIRECT reads included, page-cache hits not). */
function diskReadBytes(): number {
  return Number(/^read_bytes: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))?.[1] ?? 0);
}

interface Pressure {
  /** How the page cache was kept small. */
  how: string;
  /** Memory the page cache and this process may use. */
  limit: number;
  release(): Promise<void>;
}

/** Moves this process into a user-given cgroup, whose memory limit then bounds its page cache. */
function joinCgroup(path: string): Pressure {
  const limitFile = [join(path, 'memory.max'), join(path, 'memory.limit_in_bytes')].find(existsSync);
  if (limitFile === undefined) usageError(`--cgroup ${path}: no memory.max or memory.limit_in_bytes there`);
  const limit = Number(readFileSync(limitFile, 'utf8').trim());
  if (!Number.isSafeInteger(limit)) usageError(`--cgroup ${path}: ${limitFile} sets no limit`);
  writeFileSync(join(path, 'cgroup.procs'), `${process.pid}\n`);
  return { how: `cgroup ${path} (${formatBytes(limit)})`, limit, release: async () => undefined };
}

let balloonChild: ChildProcess | undefined;

/** Starts the balloon (bench/balloon.ts) so that only `leave` bytes of MemAvailable remain. */
async function inflateBalloon(leave: number): Promise<Pressure> {
  const available = meminfo('MemAvailable');
  if (available <= leave) return { how: `none needed (MemAvailable ${formatBytes(available)})`, limit: available, release: async () => undefined };
  progress(`inflating the balloon: MemAvailable ${formatBytes(available)} -> ${formatBytes(leave)}`);
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(new URL('./balloon.ts', import.meta.url)), String(leave)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  balloonChild = child;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const [held, left] = await new Promise<[number, number]>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d;
      for (const line of out.split('\n')) {
        const m = /^READY (\d+) (\d+)$/.exec(line);
        if (m) resolve([Number(m[1]), Number(m[2])]);
        if (line.startsWith('DEFLATED')) progress(`balloon gave memory back (MemAvailable was below its floor): ${line}`);
      }
      out = out.slice(out.lastIndexOf('\n') + 1);
    });
    void exited.then(() => reject(new Error('the balloon exited before it was inflated')));
  });
  return {
    how: `balloon of ${formatBytes(held)} (MemAvailable then ${formatBytes(left)})`,
    limit: left,
    release: async () => {
      child.kill('SIGKILL');
      await exited;
      balloonChild = undefined;
    },
  };
}

// ---------------------------------------------------------------- measuring

/** (time, value) pairs in growable typed arrays: hundreds of thousands per run. */
class Samples {
  #t = new Float64Array(1 << 16);
  #v = new Float64Array(1 << 16);
  #n = 0;

  add(t: number, v: number): void {
    if (this.#n === this.#t.length) {
      const grow = (a: Float64Array) => {
        const b = new Float64Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.#t = grow(this.#t);
      this.#v = grow(this.#v);
    }
    this.#t[this.#n] = t;
    this.#v[this.#n++] = v;
  }

  /** Values of the samples taken in [from, to), sorted. */
  between(from: number, to: number): Float64Array {
    const out: number[] = [];
    for (let i = 0; i < this.#n; i++) if (this.#t[i]! >= from && this.#t[i]! < to) out.push(this.#v[i]!);
    return Float64Array.from(out).sort();
  }
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

interface Phase {
  name: 'baseline' | 'replay' | 'drain';
  start: number;
  end: number;
  diskReadBytes: number;
  stats: CacheStats;
}

interface ModeResult {
  mode: Mode;
  directIO: boolean;
  start: number;
  phases: Phase[];
  append: Samples;
  tail: Samples;
  residency: Samples;
  catchUpBytes: number;
  drained: boolean;
  /** Page-cache residency of the backlog right after the replay. */
  backlogResidentBytes: number;
}

/** Drops every page of the log's files from the page cache. */
async function evictLog(dir: string): Promise<void> {
  for (const path of logFiles(dir)) await evict(path);
}

async function residentBytes(dir: string, maxOffsetName?: string): Promise<number> {
  let resident = 0;
  for (const name of await readdir(dir)) {
    if (!name.endsWith('.log') || (maxOffsetName !== undefined && name > maxOffsetName)) continue;
    const f = await File.open(join(dir, name));
    const size = await f.size();
    resident += f.residentPages(0, Math.ceil(size / PAGE_SIZE) * PAGE_SIZE).resident * PAGE_SIZE;
    await f.close();
  }
  return resident;
}

/** One 64 KiB batch of 1 KiB records, appended over and over with a fresh LogAppendTime: its intended send time in µs. */
function makeBatch(): Buffer {
  const value = Buffer.alloc(RECORD_VALUE_BYTES, 0x61);
  return encodeBatch(
    Array.from({ length: BATCH_RECORDS }, () => ({ value })),
    { baseOffset: 0, now: 0 },
  );
}

async function buildBacklog(dir: string, bytes: number, batch: Buffer): Promise<number> {
  const log = await Log.open(dir);
  const inFlight = new Set<Promise<unknown>>();
  while (log.size + inFlight.size * batch.length < bytes) {
    const p = log.appendBatches(batch).finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= 32) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  const end = log.endOffset;
  await log.close();
  return end;
}

async function runMode(mode: Mode, o: Options, dir: string, backlogEnd: number, batch: Buffer): Promise<ModeResult> {
  progress(`${mode}: evicting the log from the page cache`);
  await evictLog(dir);
  const cache = cacheOf(mode);
  const log = await Log.open(dir, { cache, flush: { intervalMs: o.flushMs } });
  const result: ModeResult = {
    mode,
    directIO: log.cacheStats().directIO,
    start: now(),
    phases: [],
    append: new Samples(),
    tail: new Samples(),
    residency: new Samples(),
    catchUpBytes: 0,
    drained: false,
    backlogResidentBytes: 0,
  };
  let stopped = false;

  // Tailing readers wake when an append resolves, as a broker's pending fetches would.
  let wake!: () => void;
  let appended = new Promise<void>((resolve) => (wake = resolve));
  const notify = () => {
    const w = wake;
    appended = new Promise<void>((resolve) => (wake = resolve));
    w();
  };

  // The writer: batch k is due at start + k * period, whether or not earlier ones are done.
  const period = (batch.length / o.rate) * 1000;
  const pending = new Set<Promise<unknown>>();
  let timer: NodeJS.Timeout | undefined;
  let due = now();
  const tick = () => {
    for (const t = now(); due <= t && !stopped; due += period) {
      const intended = due;
      const p = log.appendBatches(batch, { logAppendTime: Math.round(intended * 1000) }).then(() => {
        result.append.add(intended, now() - intended);
        notify();
      });
      pending.add(p);
      void p.finally(() => pending.delete(p));
    }
    if (!stopped) timer = setTimeout(tick, Math.max(0, due - now()));
  };
  tick();

  const tailer = async () => {
    let next = log.endOffset;
    while (!stopped) {
      if (next >= log.endOffset) {
        await appended;
        continue;
      }
      const { bytes, nextOffset } = await log.read(next, { maxBytes: FETCH_BYTES });
      const t = now();
      for (let p = 0; p < bytes.length; ) {
        const h = readBatchHeader(bytes, p);
        result.tail.add(t, t - h.maxTimestamp / 1000);
        p += h.size;
      }
      next = nextOffset;
    }
  };
  const tailers = Array.from({ length: TAILERS }, tailer);

  // Page-cache residency of the newest TAIL_RANGE bytes of the active segment.
  const sampler = setInterval(() => {
    void (async () => {
      const names = (await readdir(dir)).filter((n) => n.endsWith('.log')).sort();
      const f = await File.open(join(dir, names[names.length - 1]!));
      try {
        const size = await f.size();
        const from = Math.floor(Math.max(0, size - TAIL_RANGE) / PAGE_SIZE) * PAGE_SIZE;
        const r = f.residentPages(from, size - from);
        if (r.total > 0) result.residency.add(now(), r.resident / r.total);
      } finally {
        await f.close();
      }
    })();
  }, SAMPLE_MS);

  const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
  const phase = async (name: Phase['name'], run: () => Promise<void>) => {
    const start = now();
    const io = diskReadBytes();
    progress(`${mode}: ${name}`);
    await run();
    result.phases.push({ name, start, end: now(), diskReadBytes: diskReadBytes() - io, stats: log.cacheStats() });
  };

  try {
    progress(`${mode}: warming up`);
    await sleep(o.warmUpMs);
    await phase('baseline', () => sleep(o.baselineMs));
    await phase('replay', async () => {
      const deadline = now() + o.maxReplayMs;
      let next = 0;
      while (next < backlogEnd && now() < deadline) {
        const r = await log.read(next, { maxBytes: FETCH_BYTES, maxOffset: backlogEnd });
        result.catchUpBytes += r.bytes.length;
        next = r.nextOffset;
      }
      result.drained = next >= backlogEnd;
      const lastBacklogSegment = (await readdir(dir)).filter((n) => n.endsWith('.log') && Number(n.slice(0, 20)) < backlogEnd).sort().pop();
      result.backlogResidentBytes = await residentBytes(dir, lastBacklogSegment);
    });
    await phase('drain', () => sleep(o.drainMs));
  } finally {
    stopped = true;
    clearTimeout(timer);
    clearInterval(sampler);
    notify();
    await Promise.allSettled([...pending, ...tailers]);
    await log.close();
  }
  return result;
}

// ---------------------------------------------------------------- reporting

const ms = (n: number) => (Number.isNaN(n) ? '–' : n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));

function latencyCell(s: Samples, p: Phase): string {
  const v = s.between(p.start, p.end);
  return `${ms(percentile(v, 0.5))} / ${ms(percentile(v, 0.99))} / ${ms(percentile(v, 0.999))}`;
}

function phaseOf(r: ModeResult, name: Phase['name']): Phase {
  return r.phases.find((p) => p.name === name)!;
}

function tailP99(r: ModeResult, n: Phase['name']): number {
  return percentile(r.tail.between(phaseOf(r, n).start, phaseOf(r, n).end), 0.99);
}

function report(results: ModeResult[], o: Options, pressure: string, backlog: number): string {
  const names: Array<Phase['name']> = ['baseline', 'replay', 'drain'];
  const rows: string[][] = [];
  const row = (metric: string, phase: string, cell: (r: ModeResult) => string) => rows.push([metric, phase, ...results.map(cell)]);
  for (const n of names) row('append latency p50 / p99 / p99.9 (ms)', n, (r) => latencyCell(r.append, phaseOf(r, n)));
  for (const n of names) row('tail end-to-end latency p50 / p99 / p99.9 (ms)', n, (r) => latencyCell(r.tail, phaseOf(r, n)));
  row('tail p99 ÷ its baseline', 'replay', (r) => `${(tailP99(r, 'replay') / tailP99(r, 'baseline')).toFixed(2)}x`);
  row('tail p99 ÷ its baseline', 'drain', (r) => `${(tailP99(r, 'drain') / tailP99(r, 'baseline')).toFixed(2)}x`);
  row('catch-up read rate (MB/s)', 'replay', (r) => {
    const p = phaseOf(r, 'replay');
    return ((r.catchUpBytes / (p.end - p.start)) * 1000 / 1e6).toFixed(0);
  });
  row('time to drain the backlog (s)', 'replay', (r) => {
    const p = phaseOf(r, 'replay');
    return `${((p.end - p.start) / 1000).toFixed(1)}${r.drained ? '' : ` (stopped at ${formatBytes(r.catchUpBytes)})`}`;
  });
  for (const n of names) row('disk bytes read (/proc/self/io)', n, (r) => formatBytes(phaseOf(r, n).diskReadBytes));
  for (const n of names) {
    row('tail-range page-cache residency, mean (min)', n, (r) => {
      const v = r.residency.between(phaseOf(r, n).start, phaseOf(r, n).end);
      return v.length === 0 ? '–' : `${((v.reduce((a, b) => a + b, 0) / v.length) * 100).toFixed(0)}% (${(v[0]! * 100).toFixed(0)}%)`;
    });
  }
  row('backlog resident after the replay', 'replay', (r) => formatBytes(r.backlogResidentBytes));
  row('tail hits / misses (reads of a segment)', 'all', (r) => {
    const s = phaseOf(r, 'drain').stats;
    return `${s.tailHits} / ${s.tailMisses}`;
  });
  row('read system calls of reads', 'all', (r) => String(phaseOf(r, 'drain').stats.readSyscalls));
  const table = markdownTable(['metric', 'phase', ...results.map((r) => `${r.mode}${r.mode.startsWith('own') ? (r.directIO ? ' (O_DIRECT)' : ' (pread+DONTNEED)') : ''}`)], rows, [
    'l',
    'l',
    ...results.map(() => 'r' as const),
  ]);
  return [
    `Writer ${(o.rate / 1e6).toFixed(0)} MB/s of ${BATCH_RECORDS}-record batches of 1 KiB records, flush every ${o.flushMs} ms; ${TAILERS} tailing readers; ` +
      `1 catch-up reader replaying ${formatBytes(backlog)} in ${formatBytes(FETCH_BYTES)} reads. Page cache kept small by: ${pressure}. ` +
      'own@N: own mode with catch-up reads bounded to N MB/s (cache.catchUpBytesPerSecond).',
    '',
    table,
    '',
    'Latencies count from each batch\'s intended send time (open-loop writer). Tail-range residency: share of the newest ' +
      `${formatBytes(TAIL_RANGE)} of the log in the page cache; own mode drops written pages on purpose (its tail lives in the tail cache).`,
  ].join('\n');
}

/** Tail p99 per second over a run, from its baseline on: (seconds since the run started, ms). */
function p99PerSecond(r: ModeResult): Array<[number, number]> {
  const points: Array<[number, number]> = [];
  for (let t = phaseOf(r, 'baseline').start; t < phaseOf(r, 'drain').end; t += BUCKET_MS) {
    const v = r.tail.between(t, t + BUCKET_MS);
    if (v.length > 0) points.push([(t - r.start) / 1000, percentile(v, 0.99)]);
  }
  return points;
}

/** Tail p99 per second over each run, as a self-contained SVG with the replay phases shaded. */
function chart(results: ModeResult[]): string {
  const W = 900;
  const H = 420;
  const left = 70;
  const right = 20;
  const top = 40;
  const bottom = 50;
  const palette = ['#d62728', '#1f77b4', '#2ca02c', '#ff7f0e', '#9467bd'];
  const colors: Record<Mode, string> = Object.fromEntries(results.map((r, i) => [r.mode, palette[i % palette.length]!]));
  const series = results.map((r) => ({ r, points: p99PerSecond(r) }));
  const all = series.flatMap((s) => s.points);
  const xMax = Math.max(...all.map((p) => p[0])) + 1;
  const lo = Math.floor(Math.log10(Math.max(0.01, Math.min(...all.map((p) => p[1])))));
  const hi = Math.ceil(Math.log10(Math.max(...all.map((p) => p[1]))));
  const x = (s: number) => left + (s / xMax) * (W - left - right);
  const y = (v: number) => top + (1 - (Math.log10(Math.max(v, 10 ** lo)) - lo) / Math.max(1, hi - lo)) * (H - top - bottom);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">Tail end-to-end latency p99 per second (log scale); shaded: replay phase</text>`,
  ];
  for (const { r } of series) {
    const p = phaseOf(r, 'replay');
    out.push(`<rect x="${x((p.start - r.start) / 1000)}" y="${top}" width="${x((p.end - r.start) / 1000) - x((p.start - r.start) / 1000)}" height="${H - top - bottom}" fill="${colors[r.mode]}" opacity="0.1"/>`);
  }
  for (let d = lo; d <= hi; d++) {
    out.push(`<line x1="${left}" x2="${W - right}" y1="${y(10 ** d)}" y2="${y(10 ** d)}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 6}" y="${y(10 ** d) + 4}" text-anchor="end">${10 ** d} ms</text>`);
  }
  for (let s = 0; s <= xMax; s += xMax > 60 ? 10 : 5) out.push(`<text x="${x(s)}" y="${H - bottom + 18}" text-anchor="middle">${s}</text>`);
  out.push(`<text x="${(left + W - right) / 2}" y="${H - 10}" text-anchor="middle">seconds since the run started</text>`);
  out.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${H - bottom}" stroke="black"/><line x1="${left}" x2="${W - right}" y1="${H - bottom}" y2="${H - bottom}" stroke="black"/>`);
  series.forEach(({ r, points }, i) => {
    out.push(`<polyline fill="none" stroke="${colors[r.mode]}" stroke-width="1.5" points="${points.map(([s, v]) => `${x(s).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>`);
    out.push(`<rect x="${W - right - 150}" y="${top + 8 + i * 18}" width="12" height="12" fill="${colors[r.mode]}"/>`);
    out.push(`<text x="${W - right - 132}" y="${top + 18 + i * 18}">${r.mode}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

// ---------------------------------------------------------------- main

export interface IsolationRun {
  /** Markdown: what ran, then the side-by-side table. */
  report: string;
  /** Tail p99 per second of each mode, as an SVG chart. */
  svg: string;
  /** Per mode: tail p99 of the replay phase ÷ that of the baseline phase. */
  replayRatio: Record<string, number>;
  /** Memory left to the page cache and the process. */
  memoryLeft: number;
}

/**
 * The isolation run on its own (the main bench suite runs it in its short
 * form): builds the backlog under `parent`, squeezes the page cache, runs
 * each mode, releases the memory and removes the files whatever happens.
 */
export async function isolation(parent: string | undefined, overrides: Partial<Options> & { quick?: boolean } = {}): Promise<IsolationRun> {
  const o = { ...defaults(overrides.quick === true), ...overrides };
  const bench = await benchDir(parent);
  const dir = join(bench.path, 'log');
  let pressure: Pressure | undefined;
  const onSigint = () => {
    balloonChild?.kill('SIGKILL');
    rmSync(bench.path, { recursive: true, force: true });
    process.exit(130);
  };
  process.once('SIGINT', onSigint);
  try {
    const limit = o.cgroup === undefined ? o.pageCache + PROCESS_RESERVE : undefined;
    // A little over 4x: the balloon stops a chunk short of its target.
    const backlog = o.backlog ?? Math.ceil((4.25 * (limit ?? o.pageCache)) / MiB) * MiB;
    const batch = makeBatch();
    progress(`building a backlog of ${formatBytes(backlog)}`);
    const backlogEnd = await buildBacklog(dir, backlog, batch);
    // Clean pages are quicker for the balloon to push out than dirty ones.
    await evictLog(dir);
    pressure = o.cgroup === undefined ? await inflateBalloon(limit!) : joinCgroup(o.cgroup);
    if (backlog < 4 * pressure.limit) progress(`warning: the backlog is less than 4x the ${formatBytes(pressure.limit)} the page cache may use`);
    const results: ModeResult[] = [];
    for (const mode of o.modes) results.push(await runMode(mode, o, dir, backlogEnd, batch));
    const replayRatio: Record<string, number> = {};
    for (const r of results) replayRatio[r.mode] = tailP99(r, 'replay') / tailP99(r, 'baseline');
    const series = results.map((r) => `- ${r.mode}: ${p99PerSecond(r).map(([, v]) => ms(v)).join(' ')}`);
    return {
      report: `${report(results, o, pressure.how, backlog)}\n\nTail p99 per second from the baseline on (ms):\n\n${series.join('\n')}`,
      svg: chart(results),
      replayRatio,
      memoryLeft: pressure.limit,
    };
  } finally {
    process.off('SIGINT', onSigint);
    await pressure?.release();
    await bench.remove();
  }
}

async function main(): Promise<void> {
  const o = options();
  const machine = describeMachine(o.dir ?? tmpdir());
  const run = await isolation(o.dir, o);
  const text = [
    '# Cache isolation benchmark',
    '',
    formatMachine(machine, { 'Memory for the page cache and the benchmark': formatBytes(run.memoryLeft) }),
    '',
    run.report,
  ].join('\n');
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const out = fileURLToPath(new URL('./results/', import.meta.url));
  await mkdir(out, { recursive: true });
  writeFileSync(join(out, `cache-${stamp}.md`), `${text}\n`);
  writeFileSync(join(out, `cache-${stamp}.svg`), run.svg);
  console.log(text);
  console.log(`\nChart: bench/results/cache-${stamp}.svg`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
