// The benchmark suite (M6): `npm run bench`, `npx seglog bench`. It first
// measures this machine's ceilings on the target directory, in-process
// through the addon (bench/ceilings.ts), then sets every seglog figure beside
// the ceiling it could at best reach, with the ratio: appends, durable
// appends per flush policy, reads, lookups, reopens, sendTo, and a short run
// of the cache isolation benchmark (bench/cache.ts).
//
//   npm run bench -- [--dir <path>] [--full] [--only <group>[,<group>...]]
//
// Markdown on stdout, a progress bar on stderr, and the report, JSON and SVG
// charts in bench/results/<timestamp>/. Figures are medians over runs with
// min–max; every read phase checks what it read.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { crc32cHardware, freeBytes } from '../src/io.js';
import { Log } from '../src/seglog.js';
import { isolation, type IsolationRun } from './cache.js';
import { CEILINGS, fioCeilings, measureCeilings, type CeilingName, type CeilingRun, type CeilingSizes } from './ceilings.js';
import {
  benchDir,
  cpuTicks,
  describeMachine,
  evict,
  formatBytes,
  formatMachine,
  formatMs,
  formatNumber,
  loadAverage,
  markdownTable,
  now,
  progress,
  redirectProgress,
  settle,
  stealSince,
  summarize,
  usageError,
  warmPageCache,
  type Machine,
} from './common.js';
import { appendCell, groupLoopCell, POLICIES, PRODUCERS, type Cell } from './durability.js';
import {
  APPEND_DEPTH,
  appendLog,
  BATCH_RECORDS,
  logFiles,
  logOptions,
  offsetLookups,
  randomReads,
  readFetches,
  readRecords,
  RECORD_BYTES,
  MANY_SEGMENTS,
  reopenClean,
  reopenCleanMany,
  reopenUnclean,
  timeLookups,
  workload,
  type Workload,
} from './log.js';
import { compactionTrial, type CompactionTrial } from './compaction.js';
import { idempotenceRows } from './idempotence.js';
import { appendWorkloads, runPeers, type PeerRow } from './peers.js';
import { readPeers } from './peers-reads.js';
import { ceilingsTable, formatValue, GROUPS, ratioChart, rowsTable, type Group, type Row } from './report.js';
import { buildLog, iperf3, logSegments, pipeFiles, rawSendfile, Receiver, reopen, sendToFetches, serve } from './sendfile.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const FETCH_BYTES = MiB;
/** sendTo's second row: small fetches, where the per-fetch cost shows. */
const SMALL_FETCH_BYTES = 64 * KiB;
/** Record sizes of the peers group's reads (its appends run at bench/peers.ts's sizes). */
const PEER_READ_SIZES = [1024, 100];
/** What the isolation run needs beside its page-cache budget: 512 MiB the benchmark keeps for itself, 512 MiB the balloon leaves the system. */
const ISOLATION_RESERVE = GiB;

const USAGE = `usage: npm run bench -- [--dir <path>] [--full] [--only <group>[,<group>...]]
       npx seglog bench [the same options]
  --dir   parent directory for the files (default: the OS temp dir); point it at the
          disk to measure. A fresh subdirectory is created there and removed at the end.
  --full  more runs, larger files, longer phases: about 10-15 minutes instead of about 3
  --only  run only these groups: ${GROUPS.join(', ')}
          (the ceilings are measured first whatever is chosen)
Writes a Markdown report to stdout and, with JSON and SVG charts, to bench/results/<timestamp>/.`;

interface Profile {
  name: 'default' | 'full';
  runs: number;
  ceilings: Omit<CeilingSizes, 'readBytes'>;
  /** Bytes of record values in the log group's log. */
  logBytes: number;
  randomMs: number;
  lookupMs: number;
  /** Each durability cell (policy × producers) appends for this long. */
  cellMs: number;
  /** The peers group's reads: bytes of records each peer holds per record size, and each random-read phase's length. */
  peerReads: { dataBytes: number; randomMs: number };
  /** The producer-bookkeeping rows: batches each side of a paired trial appends (bench/idempotence.ts), and the trials (cheap, and noisy on a shared VM: more than runs). */
  idempotence: { batches: number; trials: number };
  /** The compaction row's log: keys, each updated this many times (bench/compaction.ts). */
  compaction: { keys: number; updates: number };
  /** Bytes of the log served over loopback. */
  serveBytes: number;
  isolation: Parameters<typeof isolation>[1] & { pageCache: number; warmUpMs: number; baselineMs: number; drainMs: number };
}

const PROFILES: Record<Profile['name'], Profile> = {
  default: {
    name: 'default',
    runs: 3,
    ceilings: { bytes: 512 * MiB, latencyMs: 1500, randomMs: 1000 },
    logBytes: 256 * MiB,
    randomMs: 1000,
    lookupMs: 500,
    cellMs: 1000,
    peerReads: { dataBytes: 32 * MiB, randomMs: 500 },
    idempotence: { batches: 20_000, trials: 15 },
    compaction: { keys: 20_000, updates: 10 },
    serveBytes: 512 * MiB,
    // A longer warm-up than the phases: the first seconds after the balloon inflates are noisy. The two
    // modes compared; --full runs every mode bench/cache.ts runs by default.
    isolation: { quick: true, pageCache: 256 * MiB, warmUpMs: 3000, baselineMs: 4000, drainMs: 3000, maxReplayMs: 20_000, modes: ['pagecache', 'own'] },
  },
  full: {
    name: 'full',
    runs: 5,
    ceilings: { bytes: 2 * GiB, latencyMs: 3000, randomMs: 2000 },
    logBytes: GiB,
    randomMs: 2000,
    lookupMs: 1000,
    cellMs: 3000,
    peerReads: { dataBytes: 64 * MiB, randomMs: 1000 },
    idempotence: { batches: 50_000, trials: 21 },
    compaction: { keys: 50_000, updates: 20 },
    serveBytes: GiB,
    isolation: { quick: false, pageCache: GiB, warmUpMs: 3000, baselineMs: 20_000, drainMs: 20_000, maxReplayMs: 120_000 },
  },
};

/** Seconds each group takes on a 2-CPU VM, roughly, for the progress bar's overall fraction. */
function estimates(p: Profile, w: Workload): Record<Group, number> {
  const perGiB = (bytes: number, secondsPerGiB: number) => (bytes / GiB) * secondsPerGiB;
  const i = p.isolation;
  const backlog = isolationBacklog(i.pageCache);
  return {
    ceilings: p.runs * (perGiB(p.ceilings.bytes, 5) + (p.ceilings.latencyMs + p.ceilings.randomMs) / 1000 + 0.5) + 4,
    // The compaction row: building its log, a second of tail appends, the pass (~10 us a record).
    log: p.runs * (perGiB(w.logBytes, 30) + (p.randomMs + 3 * p.lookupMs) / 1000 + 3 + (p.compaction.keys * p.compaction.updates) / 50_000),
    // Every policy and producer count, and the native group loop beside each 'always' cell.
    durability: p.runs * (POLICIES.length + 1) * PRODUCERS.length * (p.cellMs / 1000 + 0.1),
    // Appends, per trial: every subject of every append workload, each cellMs plus opening.
    // Reads, per record size: writing every peer's copy, then per run six sequential scans and five random phases.
    // Producer bookkeeping: three cases, a warm-up and the trials, each ~15 us a batch both sides.
    peers:
      p.runs * appendWorkloads(p.cellMs).reduce((n, w) => n + w.subjects.length, 0) * (p.cellMs / 1000 + 0.2) +
      PEER_READ_SIZES.length * (perGiB(p.peerReads.dataBytes, 200) + 2 + p.runs * (perGiB(p.peerReads.dataBytes, 40) + 5 * (p.peerReads.randomMs / 1000 + 0.1))) +
      3 * (p.idempotence.trials + 1) * p.idempotence.batches * 15e-6,
    // Five senders: raw sendfile, sendTo of 1 MiB and of 64 KiB, sendTo's first serve after open, a stream pipe.
    sendfile: perGiB(p.serveBytes, 31) + 1,
    // Backlog, balloon (it touches nearly all of RAM), then per mode: warm-up, baseline, replay, drain.
    isolation: perGiB(backlog, 1.5) + 45 + (i.modes?.length ?? 3) * ((i.warmUpMs + i.baselineMs + i.drainMs) / 1000 + perGiB(backlog, 4)),
  };
}

/** The backlog bench/cache.ts replays: a little over 4x the memory left to the page cache and the benchmark. */
function isolationBacklog(pageCache: number): number {
  return 4.25 * (pageCache + ISOLATION_RESERVE / 2);
}

interface Options {
  dir: string | undefined;
  profile: Profile;
  groups: Group[];
}

function options(): Options {
  let values;
  try {
    ({ values } = parseArgs({ options: { dir: { type: 'string' }, full: { type: 'boolean', default: false }, only: { type: 'string' }, help: { type: 'boolean', short: 'h' } } }));
  } catch (err) {
    usageError((err as Error).message, USAGE);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const only = values.only?.split(',').map((g) => g.trim());
  for (const g of only ?? []) if (!(GROUPS as readonly string[]).includes(g)) usageError(`--only: no group '${g}'; the groups are ${GROUPS.join(', ')}`, USAGE);
  // Ceilings always come first: every other group's ratios need them.
  const groups = GROUPS.filter((g) => g === 'ceilings' || only === undefined || only.includes(g));
  return { dir: values.dir, profile: PROFILES[values.full ? 'full' : 'default'], groups };
}

// ---------------------------------------------------------------- progress bar

function clock(ms: number): string {
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/**
 * One line on stderr: overall fraction, elapsed time, group and latest step.
 * The fraction counts finished groups by their estimates plus the running
 * group's elapsed time, capped below its estimate. Without a terminal, each
 * step is a line of its own.
 */
class ProgressBar {
  readonly #start = now();
  readonly #estimates: Record<Group, number>;
  readonly #total: number;
  readonly #tty = process.stderr.isTTY === true;
  readonly #timer: NodeJS.Timeout | undefined;
  #done = 0;
  #group: Group = 'ceilings';
  #groupStart = now();
  #message = '';

  constructor(estimates: Record<Group, number>, groups: Group[]) {
    this.#estimates = estimates;
    this.#total = groups.reduce((sum, g) => sum + estimates[g], 0);
    if (this.#tty) {
      this.#timer = setInterval(() => this.#draw(), 500).unref();
      // An interrupt exits without reaching stop(): leave the terminal's line clean anyway.
      process.once('exit', () => this.stop());
    }
  }

  group(group: Group): void {
    this.#group = group;
    this.#groupStart = now();
    this.message('starting');
  }

  groupDone(): void {
    this.#done += this.#estimates[this.#group];
  }

  message(message: string): void {
    this.#message = message;
    if (this.#tty) this.#draw();
    else process.stderr.write(`[${clock(now() - this.#start)} ${this.#percent()}%] ${this.#group}: ${message}\n`);
  }

  stop(): void {
    clearInterval(this.#timer);
    if (this.#tty) process.stderr.write('\r\x1b[K');
  }

  /** Whole percent done, 99 at most until the report is out. */
  #percent(): number {
    const running = Math.min((now() - this.#groupStart) / 1000, 0.95 * this.#estimates[this.#group]);
    return Math.min(99, Math.floor(((this.#done + running) / this.#total) * 100));
  }

  #draw(): void {
    const percent = this.#percent();
    const filled = Math.round(percent / 5);
    const line = `[${'#'.repeat(filled)}${'-'.repeat(20 - filled)}] ${String(percent).padStart(2)}% ${clock(now() - this.#start)}  ${this.#group}: ${this.#message}`;
    process.stderr.write(`\r\x1b[K${line.slice(0, (process.stderr.columns ?? 100) - 1)}`);
  }
}

// ---------------------------------------------------------------- groups

interface Context {
  dir: string;
  profile: Profile;
  w: Workload;
  receiver: Receiver;
  ceilings: CeilingRun[];
}

const median = (xs: number[]) => summarize(xs).median;

/** A row set against ceiling `name` of each run. */
function againstCeiling(ctx: Context, name: CeilingName): Pick<Row, 'baseline' | 'baselineLabel'> {
  return { baseline: ctx.ceilings.map((c) => c[name]), baselineLabel: CEILINGS[name].label };
}

interface LogRun {
  append1Ms: number;
  append8Ms: number;
  decodeMs: number;
  fetchMs: number;
  randomPerSecond: number;
  timeLookupsPerSecond: number;
  offsetLookups: { seglog: number; baseline: number };
  reopenClean: { seglog: number; baseline: number };
  reopenCleanMany: { seglog: number; baseline: number };
  reopenUncleanMs: number;
  coldPagecacheMs: number;
  coldOwnMs: number;
  /** Largest share of a segment still in the page cache after eviction, before a cold read. */
  cachedBeforeCold: number;
  ownDirectIO: boolean;
}

/** Reads the log at `logDir` fetch by fetch after evicting it from the page cache: milliseconds and what was still cached. */
async function coldRead(logDir: string, w: Workload, cache: 'pagecache' | 'own'): Promise<{ ms: number; cached: number; directIO: boolean }> {
  let cached = 0;
  for (const path of logFiles(logDir)) cached = Math.max(cached, await evict(path));
  const log = await Log.open(logDir, logOptions({ mode: cache }));
  try {
    return { ms: await readFetches(log, w, FETCH_BYTES), cached, directIO: log.cacheStats().directIO };
  } finally {
    await log.close();
  }
}

async function logRun(ctx: Context, run: number): Promise<LogRun> {
  const { w, profile: p } = ctx;
  const dir = join(ctx.dir, `log-${run}`);
  const logDir = join(dir, 'log');
  const tag = `run ${run + 1}/${p.runs}`;
  mkdirSync(dir);
  try {
    progress(`${tag}: page-cache warm-up (untimed)`);
    warmPageCache(dir, 2 * w.logBytes);
    progress(`${tag}: append, ${APPEND_DEPTH} in flight`);
    const pipelined = await appendLog(join(dir, 'pipelined'), w, APPEND_DEPTH);
    await pipelined.log.close();
    rmSync(join(dir, 'pipelined'), { recursive: true });
    progress(`${tag}: append, 1 in flight`);
    const { log, ms: append1Ms } = await appendLog(logDir, w, 1);
    let out: Omit<LogRun, 'offsetLookups' | 'reopenClean' | 'reopenCleanMany' | 'reopenUncleanMs' | 'coldPagecacheMs' | 'coldOwnMs' | 'cachedBeforeCold' | 'ownDirectIO'>;
    try {
      progress(`${tag}: sequential read + decode`);
      const decodeMs = await readRecords(log, w);
      progress(`${tag}: sequential read, ${formatBytes(FETCH_BYTES)} fetches`);
      const fetchMs = await readFetches(log, w, FETCH_BYTES);
      progress(`${tag}: random reads`);
      const randomPerSecond = await randomReads(log, w, p.randomMs, 2 + run);
      progress(`${tag}: time lookups`);
      const timeLookupsPerSecond = await timeLookups(log, w, p.lookupMs, 5 + run);
      out = { append1Ms, append8Ms: pipelined.ms, decodeMs, fetchMs, randomPerSecond, timeLookupsPerSecond };
    } finally {
      await log.close();
    }
    progress(`${tag}: offset lookups`);
    const lookups = await offsetLookups(logDir, w, p.lookupMs, 7 + run);
    progress(`${tag}: reopen after clean shutdown`);
    const clean = await reopenClean(logDir, w);
    progress(`${tag}: reopen after clean shutdown, ${MANY_SEGMENTS} segments`);
    const cleanMany = await reopenCleanMany(join(dir, 'many'), w);
    rmSync(join(dir, 'many'), { recursive: true });
    // While the log is still cached: the CRC scan is then set against the warm read ceiling.
    progress(`${tag}: reopen after unclean shutdown`);
    const reopenUncleanMs = await reopenUnclean(logDir, w, 11 + run);
    progress(`${tag}: cold read, page cache mode`);
    const cold = await coldRead(logDir, w, 'pagecache');
    progress(`${tag}: cold read, own cache mode (catch-up reads)`);
    const own = await coldRead(logDir, w, 'own');
    return {
      ...out,
      offsetLookups: lookups,
      reopenClean: clean,
      reopenCleanMany: cleanMany,
      reopenUncleanMs,
      coldPagecacheMs: cold.ms,
      coldOwnMs: own.ms,
      cachedBeforeCold: Math.max(cold.cached, own.cached),
      ownDirectIO: own.directIO,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function logGroup(ctx: Context): Promise<Row[]> {
  const { w } = ctx;
  const runs: LogRun[] = [];
  for (let run = 0; run < ctx.profile.runs; run++) runs.push(await logRun(ctx, run));
  const { keys, updates } = ctx.profile.compaction;
  const compactions: CompactionTrial[] = [];
  for (let run = 0; run < ctx.profile.runs; run++) {
    progress(`run ${run + 1}/${ctx.profile.runs}: compaction pass, ${keys} keys × ${updates} updates`);
    compactions.push(await compactionTrial(join(ctx.dir, `compaction-${run}`), keys, updates));
  }
  const cpass = (f: (c: CompactionTrial) => number) => compactions.map(f);
  const mbs = (ms: number) => w.logBytes / 1e3 / ms;
  const col = (f: (r: LogRun) => number) => runs.map(f);
  const records = (ms: (r: LogRun) => number) => `${formatNumber(median(col((r) => (w.records * 1e3) / ms(r))))} records/s`;
  const batch = `${BATCH_RECORDS} × ${RECORD_BYTES / KiB} KiB records`;
  const row = (name: string, unit: string, kind: Row['kind'], seglog: number[], against: Pick<Row, 'baseline' | 'baselineLabel'>, detail = ''): Row => ({
    group: 'log',
    name,
    unit,
    kind,
    seglog,
    ...against,
    detail,
  });
  const cold = `at most ${(Math.max(...col((r) => r.cachedBeforeCold)) * 100).toFixed(0)}% of a segment cached at the start`;
  return [
    row(`append ${batch}, 1 in flight`, 'MB/s', 'rate', col((r) => mbs(r.append1Ms)), againstCeiling(ctx, 'writeBuffered'), records((r) => r.append1Ms)),
    row(`append ${batch}, ${APPEND_DEPTH} in flight`, 'MB/s', 'rate', col((r) => mbs(r.append8Ms)), againstCeiling(ctx, 'writeBuffered'), records((r) => r.append8Ms)),
    row('sequential read + decode, log.records(0)', 'MB/s', 'rate', col((r) => mbs(r.decodeMs)), againstCeiling(ctx, 'readWarm'), records((r) => r.decodeMs)),
    row(`sequential read, warm, log.read() of ${formatBytes(FETCH_BYTES)}`, 'MB/s', 'rate', col((r) => mbs(r.fetchMs)), againstCeiling(ctx, 'readWarm')),
    row(`sequential read, cold, log.read() of ${formatBytes(FETCH_BYTES)}`, 'MB/s', 'rate', col((r) => mbs(r.coldPagecacheMs)), againstCeiling(ctx, 'readCold'), cold),
    row(
      `sequential read, cold, own cache (catch-up${runs[0]!.ownDirectIO ? ', O_DIRECT' : ', pread + DONTNEED'})`,
      'MB/s',
      'rate',
      col((r) => mbs(r.coldOwnMs)),
      againstCeiling(ctx, 'readCold'),
      cold,
    ),
    row('random read by offset, one batch', 'reads/s', 'rate', col((r) => r.randomPerSecond), againstCeiling(ctx, 'randomReadsPerSecond'), `${formatBytes(w.batchBytes)} per batch`),
    row('time lookup, log.offsetForTimestamp()', 'lookups/s', 'rate', col((r) => r.timeLookupsPerSecond), againstCeiling(ctx, 'randomReadsPerSecond'), 'each reads and decodes the batch it finds'),
    row('offset lookup, OffsetIndex.lookup', 'lookups/s', 'rate', col((r) => r.offsetLookups.seglog), {
      baseline: col((r) => r.offsetLookups.baseline),
      baselineLabel: 'binary search over JS arrays of the same entries',
    }),
    row('reopen after clean shutdown', 'ms', 'time', col((r) => r.reopenClean.seglog), {
      baseline: col((r) => r.reopenClean.baseline),
      baselineLabel: 'readdir + open + fstat of every segment file',
    }),
    row(
      `reopen after clean shutdown, ${MANY_SEGMENTS} segments`,
      'ms',
      'time',
      col((r) => r.reopenCleanMany.seglog),
      { baseline: col((r) => r.reopenCleanMany.baseline), baselineLabel: 'readdir + open + fstat of every segment file' },
      `${MANY_SEGMENTS} × ${formatBytes(2 * w.batchBytes)}; medians of 11 interleaved reopens per run`,
    ),
    row(
      'compaction pass, log.compact(), MB cleaned per second',
      'MB/s',
      'rate',
      cpass((c) => c.bytesBefore / 1e3 / c.passMs),
      againstCeiling(ctx, 'readWarm'),
      `${keys} keys × ${updates} updates of 100 B (${formatBytes(compactions[0]!.bytesBefore)} to ${formatBytes(compactions[0]!.bytesAfter)}), ` +
        `written ${formatValue('MB/s', median(cpass((c) => c.bytesAfter / 1e3 / c.passMs)))} MB/s; a tail append due every ms: ` +
        `p99 ${formatMs(median(cpass((c) => c.during.p99)))} during the pass, ${formatMs(median(cpass((c) => c.before.p99)))} before`,
    ),
    row(
      'reopen after unclean shutdown (CRC scan)',
      'ms',
      'time',
      col((r) => r.reopenUncleanMs),
      { baseline: ctx.ceilings.map((c) => w.logBytes / 1e3 / c.readWarm), baselineLabel: 'the log read once at the warm sequential read ceiling' },
      formatBytes(w.logBytes),
    ),
  ];
}

function cellName(policy: string, producers: number): string {
  return `flush ${policy}, ${producers} producer${producers > 1 ? 's' : ''}`;
}

async function durabilityGroup(ctx: Context): Promise<Row[]> {
  const cells = new Map<string, Cell[]>();
  /** Per producer count, the native group loop of that many records, measured beside each 'always' cell. */
  const groupLoops = new Map<number, number[]>();
  for (let run = 0; run < ctx.profile.runs; run++) {
    for (const [name, policy] of POLICIES) {
      for (const producers of PRODUCERS) {
        const dir = join(ctx.dir, `durability-${run}-${name.replace(/\W/g, '')}-${producers}`);
        const key = `${name}|${producers}`;
        try {
          if (policy === 'always') {
            progress(`run ${run + 1}/${ctx.profile.runs}: native group loop of ${producers} records`);
            groupLoops.set(producers, [...(groupLoops.get(producers) ?? []), await groupLoopCell(join(dir, 'group-loop'), producers, ctx.profile.cellMs)]);
          }
          progress(`run ${run + 1}/${ctx.profile.runs}: ${cellName(name, producers)}`);
          cells.set(key, [...(cells.get(key) ?? []), await appendCell(join(dir, 'log'), policy, producers, ctx.profile.cellMs)]);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
    }
  }
  return POLICIES.flatMap(([name]) =>
    PRODUCERS.flatMap((producers): Row[] => {
      const c = cells.get(`${name}|${producers}`)!;
      const records = `${formatNumber(median(c.map((x) => x.recordsPerSecond)))} records/s`;
      const base = { group: 'durability' as const, name: cellName(name, producers) };
      // A durable append waits for an fdatasync: its latency is one figure (the median: p99 on a shared machine is mostly its
      // neighbours), its rate beside a perfect group commit of every producer the other. Otherwise the page cache bounds throughput.
      if (name === 'always') {
        return [
          {
            ...base,
            name: `${base.name}, append p50`,
            unit: 'ms',
            kind: 'time',
            seglog: c.map((x) => x.p50),
            ...againstCeiling(ctx, 'fdatasyncP50'),
            detail:
              `${records}, ${formatValue('MB/s', median(c.map((x) => x.bytesPerSecond / 1e6)))} MB/s; ` +
              `p99 ${formatMs(median(c.map((x) => x.p99)))} (raw ${formatMs(median(ctx.ceilings.map((x) => x.fdatasyncP99)))})`,
          },
          {
            ...base,
            name: `${base.name}, records/s`,
            unit: 'records/s',
            kind: 'rate',
            seglog: c.map((x) => x.recordsPerSecond),
            baseline: groupLoops.get(producers)!,
            baselineLabel: `native group loop: File.writevDatasync of ${producers} one-record batches, back to back`,
            detail: 'the loop measured just before each seglog run',
          },
        ];
      }
      return [
        {
          ...base,
          unit: 'MB/s',
          kind: 'rate',
          seglog: c.map((x) => x.bytesPerSecond / 1e6),
          ...againstCeiling(ctx, 'writeBuffered'),
          detail: `${records}; append p50 ${formatMs(median(c.map((x) => x.p50)))}, p99 ${formatMs(median(c.map((x) => x.p99)))}`,
        },
      ];
    }),
  );
}

/**
 * bench/peers.ts's append workloads and bench/peers-reads.ts's read
 * workloads, each peer set against the workload's first seglog row (other
 * seglog rows, e.g. own cache mode, against that one too).
 */
async function peersGroup(ctx: Context): Promise<Row[]> {
  const peers = [
    ...(await runPeers(ctx.dir, appendWorkloads(ctx.profile.cellMs), ctx.profile.runs)),
    ...(await readPeers(ctx.dir, ctx.profile.runs, { sizes: PEER_READ_SIZES, ...ctx.profile.peerReads })),
    ...(await idempotenceRows(ctx.dir, ctx.profile.idempotence.batches, ctx.profile.idempotence.trials)),
  ];
  const rows: Row[] = [];
  const seglogOf = (r: PeerRow) => peers.find((s) => s.workload === r.workload && s.subject.startsWith('seglog'))!;
  for (const r of peers) {
    const first = seglogOf(r);
    if (r === first) continue;
    const own = r.subject.startsWith('seglog');
    rows.push({
      group: 'peers',
      name: `${r.workload}: ${own ? r.subject : first.subject}`,
      unit: r.unit,
      kind: 'rate',
      seglog: own ? r.samples : first.samples,
      baseline: own ? first.samples : r.samples,
      baselineLabel: own ? first.subject : r.subject,
      detail: (own ? r.extra : first.extra) ?? '',
      paired: r.paired === true && first.paired === true,
    });
  }
  return rows;
}

async function sendfileGroup(ctx: Context): Promise<Row[]> {
  const dir = join(ctx.dir, 'serve');
  progress(`writing a ${formatBytes(ctx.profile.serveBytes)} log of 64 KiB batches`);
  let log = await buildLog(dir, ctx.profile.serveBytes, 64 * KiB);
  try {
    settle(dir);
    const segments = await logSegments(dir, log);
    try {
      // The raw sendfile(2) of the same files runs interleaved with the rest: each row's baseline, run by run.
      const senders = [
        { name: 'raw sendfile(2) of the segment files', send: rawSendfile(segments) },
        { name: `log.sendTo(), ${formatBytes(FETCH_BYTES)} fetches`, send: sendToFetches(() => log, FETCH_BYTES) },
        { name: `log.sendTo(), ${formatBytes(SMALL_FETCH_BYTES)} fetches`, send: sendToFetches(() => log, SMALL_FETCH_BYTES) },
        {
          name: `log.sendTo(), ${formatBytes(FETCH_BYTES)} fetches, first serve after open (checks every CRC)`,
          before: async () => {
            await log.close();
            log = await reopen(dir);
          },
          send: sendToFetches(() => log, FETCH_BYTES),
        },
        { name: 'fs.createReadStream().pipe(socket)', send: pipeFiles(segments.paths, undefined) },
      ];
      const served = await serve(ctx.receiver, segments, senders, ctx.profile.runs);
      const raw = served.samples[0]!;
      return senders.slice(1).map((s, i) => {
        const samples = served.samples[i + 1]!;
        return {
          group: 'sendfile',
          name: s.name,
          unit: 'MB/s',
          kind: 'rate',
          seglog: samples.map((x) => x.gbps * 1000),
          baseline: raw.map((x) => x.gbps * 1000),
          baselineLabel: `${senders[0]!.name}, interleaved with this row (ceilings table: ${formatValue('MB/s', median(ctx.ceilings.map((c) => c.sendfile)))} MB/s)`,
          detail: `sender CPU ${median(samples.map((x) => x.cpuSecondsPerGB)).toFixed(3)} s/GB (raw ${median(raw.map((x) => x.cpuSecondsPerGB)).toFixed(3)}); ${formatBytes(segments.total)} of segment files per run`,
        };
      });
    } finally {
      await Promise.all(segments.files.map((f) => f.close()));
    }
  } finally {
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function memAvailable(): number {
  return Number(/^MemAvailable:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) * KiB;
}

/** The isolation run, or why it was skipped. */
async function isolationGroup(ctx: Context): Promise<IsolationRun | string> {
  const settings = ctx.profile.isolation;
  const available = memAvailable();
  if (available < settings.pageCache + ISOLATION_RESERVE) {
    return `skipped: MemAvailable is ${formatBytes(available)}, it needs ${formatBytes(settings.pageCache + ISOLATION_RESERVE)} (the ${formatBytes(settings.pageCache)} page-cache budget, 512 MiB for the benchmark, 512 MiB the balloon leaves the system)`;
  }
  const backlog = isolationBacklog(settings.pageCache);
  const free = await freeBytes(ctx.dir);
  if (free !== undefined && free < backlog + GiB) return `skipped: ${formatBytes(free)} free on the target filesystem, the backlog needs ${formatBytes(backlog)} and 1 GiB to spare`;
  return isolation(ctx.dir, settings);
}

/** A row per cache mode: how much its tail p99 grew while the backlog was replayed, against no growth at all. */
function isolationRows(run: IsolationRun): Row[] {
  return Object.entries(run.replayRatio).map(([mode, ratio]) => ({
    group: 'isolation',
    name: `tail p99 during a cold replay ÷ before, ${mode}`,
    unit: 'x',
    kind: 'time',
    seglog: [ratio],
    baseline: [1],
    baselineLabel: 'no slowdown (1.00x)',
    detail: 'one run, see the isolation section',
  }));
}

// ---------------------------------------------------------------- main

interface CrossCheck {
  table: string;
  fio: ReturnType<typeof fioCeilings>;
  iperf3: ReturnType<typeof iperf3>;
}

/** fio and iperf3, where installed, on the same sizes: a table beside the in-process medians. */
function crossCheck(ctx: Context, sizes: CeilingSizes): CrossCheck {
  progress('cross-check: fio, iperf3 (when installed)');
  const fio = fioCeilings(ctx.dir, sizes);
  const iperf = iperf3(sizes.bytes);
  const inProcess = (name: CeilingName) => formatValue(CEILINGS[name].unit, median(ctx.ceilings.map((c) => c[name])));
  const rows: string[][] = [];
  if (typeof fio === 'string') rows.push(['fio', '', fio, '']);
  else {
    for (const [name, value] of Object.entries(fio) as Array<[CeilingName, number]>) {
      rows.push([`${CEILINGS[name].label} (${CEILINGS[name].unit})`, inProcess(name), formatValue(CEILINGS[name].unit, value), 'fio, psync engine, same sizes']);
    }
  }
  rows.push([
    `${CEILINGS.sendfile.label} (MB/s)`,
    inProcess('sendfile'),
    typeof iperf === 'string' ? `iperf3: ${iperf}` : formatValue('MB/s', iperf.gbps * 1000),
    'iperf3 -Z (sendfile of its own file) over loopback, one run',
  ]);
  return { table: markdownTable(['ceiling', 'in-process (this run)', 'outside tool', 'how'], rows, ['l', 'r', 'r', 'l']), fio, iperf3: iperf };
}

const CHARTS = { ratios: 'ratios.svg', isolation: 'isolation-tail-p99.svg' };

/** What a run found, as the report and results.json present it. */
interface Outcome {
  profile: Profile;
  groups: Group[];
  w: Workload;
  machine: Machine;
  /** Lines added to the machine description: CRC path, target, load, memory, wall time. */
  context: Record<string, string>;
  ceilings: CeilingRun[];
  crossCheck: CrossCheck;
  rows: Row[];
  /** The isolation run, or why there is none. */
  isolation: IsolationRun | string;
}

function markdownReport(o: Outcome): string {
  const p = o.profile;
  const lines = [
    '# seglog benchmark suite',
    '',
    formatMachine(o.machine, o.context),
    '',
    '## Ceilings of this machine, measured first',
    '',
    `In-process through the addon (src/native.ts), one call at a time, on ${formatBytes(p.ceilings.bytes)} files in the target directory; median (min–max) of ${p.runs} runs. ` +
      'Every read is checked against what was written at its position.',
    '',
    ceilingsTable(o.ceilings),
    '',
    'Cross-check with outside tools (installed ones only):',
    '',
    o.crossCheck.table,
  ];
  if (o.rows.length > 0) {
    lines.push(
      '',
      '## seglog against the ceilings',
      '',
      rowsTable(o.rows),
      '',
      `Cells: median (min–max) over ${p.runs} runs, each on fresh files (the isolation rows: one run). ` +
        'Ratio = median seglog ÷ median ceiling (for times: ceiling time ÷ seglog time): 100% = as fast as the ceiling. MB = 10^6 bytes. ' +
        `The log group writes ${formatBytes(o.w.logBytes)} (${formatNumber(o.w.records)} records of ${RECORD_BYTES} B values, ${BATCH_RECORDS} per batch) per run; ` +
        'warm reads follow the writes with nothing evicted, cold reads follow fadvise(DONTNEED) of every segment. ' +
        `Durability cells append one 1 KiB record per call for ${formatMs(p.cellMs)} each; their ceiling writes 1 MiB per call, so they show what per-append overhead costs. ` +
        'Every read phase checks what it read (offsets of every batch, CRCs and record values of a sample; the receiver of a warm-up transfer checks a CRC-32C of all bytes).',
      '',
      `![seglog ÷ ceiling per row](${CHARTS.ratios})`,
    );
  }
  lines.push('', '## Cache isolation: page cache vs own cache', '');
  if (typeof o.isolation === 'string') lines.push(o.isolation);
  else {
    lines.push(
      `A short run of bench/cache.ts (\`npm run bench:cache\` for the long one), page cache limited to ${formatBytes(o.isolation.memoryLeft)} for the cache and the benchmark.`,
      '',
      o.isolation.report,
      '',
      `![tail p99 per second](${CHARTS.isolation})`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** The report, results.json and the charts in `dir`. */
function writeResults(dir: string, o: Outcome, report: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'report.md'), report);
  const where = `${o.machine.cpu}, ${o.machine.filesystem.type} on ${o.machine.device.split(' ')[0]}`;
  if (o.rows.length > 0) writeFileSync(join(dir, CHARTS.ratios), ratioChart(o.rows, `seglog against this machine's ceilings (${where})`));
  if (typeof o.isolation !== 'string') writeFileSync(join(dir, CHARTS.isolation), o.isolation.svg);
  const json = {
    profile: o.profile,
    groups: o.groups,
    machine: o.machine,
    context: o.context,
    workload: { logBytes: o.w.logBytes, records: o.w.records, batchBytes: o.w.batchBytes },
    ceilings: { runs: o.ceilings, definitions: CEILINGS },
    crossCheck: { fio: o.crossCheck.fio, iperf3: o.crossCheck.iperf3 },
    rows: o.rows,
    isolation: typeof o.isolation === 'string' ? { skipped: o.isolation } : { replayRatio: o.isolation.replayRatio, memoryLeft: o.isolation.memoryLeft },
  };
  writeFileSync(join(dir, 'results.json'), `${JSON.stringify(json, null, 2)}\n`);
}

async function main(): Promise<void> {
  const o = options();
  const p = o.profile;
  const started = now();
  const startedAt = new Date();
  const loadAtStart = loadAverage();
  const ticksAtStart = cpuTicks();
  const memoryAtStart = memAvailable();
  const w = workload(p.logBytes);
  const bar = new ProgressBar(estimates(p, w), o.groups);
  redirectProgress((message) => bar.message(message));
  const root = await benchDir(o.dir);
  let receiver: Receiver | undefined;
  try {
    const machine = describeMachine(root.path);
    receiver = await Receiver.start();
    const sizes: CeilingSizes = { ...p.ceilings, readBytes: w.batchBytes };
    const ctx: Context = { dir: root.path, profile: p, w, receiver, ceilings: [] };

    bar.group('ceilings');
    progress('page-cache warm-up (untimed)');
    warmPageCache(root.path, p.ceilings.bytes);
    for (let run = 0; run < p.runs; run++) ctx.ceilings.push(await measureCeilings(root.path, sizes, receiver, run + 1, `run ${run + 1}/${p.runs}`));
    const outside = crossCheck(ctx, sizes);
    bar.groupDone();

    const rows: Row[] = [];
    let isolationRun: IsolationRun | string = 'not run (--only)';
    const groups: Record<Exclude<Group, 'ceilings' | 'isolation'>, (c: Context) => Promise<Row[]>> = { log: logGroup, durability: durabilityGroup, peers: peersGroup, sendfile: sendfileGroup };
    for (const group of o.groups) {
      if (group === 'ceilings') continue;
      bar.group(group);
      if (group === 'isolation') {
        isolationRun = await isolationGroup(ctx);
        if (typeof isolationRun === 'string') progress(isolationRun);
        else rows.push(...isolationRows(isolationRun));
      } else rows.push(...(await groups[group](ctx)));
      bar.groupDone();
    }
    await receiver.stop();
    receiver = undefined;

    const outcome: Outcome = {
      profile: p,
      groups: o.groups,
      w,
      machine,
      context: {
        'CRC-32C': crc32cHardware ? 'hardware (SSE4.2)' : 'software table',
        Target: root.path,
        'Load average': `${loadAtStart} at the start, ${loadAverage()} at the end`,
        'vCPU steal': `${stealSince(ticksAtStart)} during the run`,
        'Memory available': `${formatBytes(memoryAtStart)} at the start (MemAvailable)`,
        Profile: `${p.name}${o.groups.length < GROUPS.length ? ` (groups: ${o.groups.join(', ')})` : ''}: ${p.runs} runs; started ${startedAt.toISOString()}, wall time ${formatMs(now() - started)}`,
      },
      ceilings: ctx.ceilings,
      crossCheck: outside,
      rows,
      isolation: isolationRun,
    };
    const report = markdownReport(outcome);
    const out = fileURLToPath(new URL(`./results/${startedAt.toISOString().replace(/[:.]/g, '-')}/`, import.meta.url));
    writeResults(out, outcome, report);
    bar.stop();
    console.log(report);
    console.log(`Report, JSON and charts: ${out}`);
  } finally {
    redirectProgress(undefined);
    bar.stop();
    await receiver?.stop();
    await root.remove();
  }
}

await main();
