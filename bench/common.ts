// Measurement helpers shared by seglog's benchmarks: timing, repeated runs
// summarised as median with min/max, warm-up, a description of the machine
// and the disk under the target directory, and Markdown output. Every
// benchmark reports seglog next to a baseline measured in the same run, so
// the helpers are about pairing and summarising figures, not about seglog.
import { closeSync, fsyncSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, statfsSync, unlinkSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { File } from '../src/io.js';

// ---------------------------------------------------------------- timing

/** Monotonic milliseconds with sub-microsecond resolution. */
export function now(): number {
  return performance.now();
}

/** Runs `fn` once and returns its result with the elapsed milliseconds. */
export async function timed<T>(fn: () => T | Promise<T>): Promise<{ ms: number; result: T }> {
  const start = now();
  const result = await fn();
  return { ms: now() - start, result };
}

/**
 * Calls `op` (awaited, one at a time) until `ms` milliseconds passed; returns
 * calls per second. Time-boxed rather than counted so a slow machine still
 * finishes and a fast one still gets enough samples. `op(i)` gets the call
 * number, to pick its input.
 */
export async function opsPerSecond(op: (i: number) => unknown, ms: number): Promise<{ ops: number; ms: number; perSecond: number }> {
  let ops = 0;
  const start = now();
  let elapsed = 0;
  while (elapsed < ms) {
    const r = op(ops);
    // Awaiting a non-promise would add a microtask hop to every synchronous call.
    if (r instanceof Promise) await r;
    ops++;
    elapsed = now() - start;
  }
  return { ops, ms: elapsed, perSecond: (ops * 1000) / elapsed };
}

/** Runs `op` repeatedly for about `ms` milliseconds so the JIT and caches settle before timing. */
export async function warmUp(op: (i: number) => unknown, ms: number): Promise<void> {
  await opsPerSecond(op, ms);
}

/** A small seeded PRNG (mulberry32): the same random inputs in every run and for seglog and its baseline. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------- summaries

export interface Summary {
  median: number;
  min: number;
  max: number;
  samples: number[];
}

/** p-th percentile (0..100) of ascending `sorted` samples, nearest rank. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function summarize(samples: number[]): Summary {
  if (samples.length === 0) throw new RangeError('no samples to summarize');
  const s = [...samples].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]!, samples };
}

/**
 * One table row's worth of figures collected over the runs: seglog's and the
 * baseline's sample of each run. The ratio is taken per run (both figures
 * came from the same conditions) and then summarised.
 */
export interface Comparison {
  name: string;
  unit: string;
  /** 'rate': bigger is better (ops/s, MB/s); 'time': smaller is better (ms). */
  kind: 'rate' | 'time';
  seglog: number[];
  baseline: number[];
  /** What the baseline is, shown under the table. */
  baselineLabel: string;
}

/** Per run: seglog's speed as a fraction of the baseline's (for times, baseline time / seglog time). */
export function ratios(c: Comparison): number[] {
  return c.seglog.map((v, i) => (c.kind === 'rate' ? v / c.baseline[i]! : c.baseline[i]! / v));
}

// ---------------------------------------------------------------- formatting

/** 3 significant digits with k/M/G suffixes: 1234567 -> "1.23 M". */
export function formatNumber(n: number): string {
  const abs = Math.abs(n);
  const [scaled, suffix] = abs >= 1e9 ? [n / 1e9, ' G'] : abs >= 1e6 ? [n / 1e6, ' M'] : abs >= 1e4 ? [n / 1e3, ' k'] : [n, ''];
  return `${Number(scaled.toPrecision(3))}${suffix}`;
}

export function formatMs(ms: number): string {
  if (ms >= 1000) return `${Number((ms / 1000).toPrecision(3))} s`;
  if (ms >= 1) return `${Number(ms.toPrecision(3))} ms`;
  return `${Number((ms * 1000).toPrecision(3))} µs`;
}

export function formatPercent(f: number): string {
  return `${Number((f * 100).toPrecision(3))}%`;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${Number(n.toPrecision(3))} ${units[i]}`;
}

/** "median (min–max)" of a summary, each value through `format`; just the value for one run. */
export function formatSummary(s: Summary, format: (n: number) => string): string {
  if (s.samples.length === 1) return format(s.median);
  return `${format(s.median)} (${format(s.min)}–${format(s.max)})`;
}

/** A GitHub-flavoured Markdown table; `align` per column, 'l' or 'r' (default 'l'). */
export function markdownTable(header: string[], rows: string[][], align: Array<'l' | 'r'> = []): string {
  const escape = (cell: string) => cell.replace(/\|/g, '\\|');
  const widths = header.map((h, i) => Math.max(3, h.length, ...rows.map((r) => escape(r[i] ?? '').length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (align[i] === 'r' ? escape(c).padStart(widths[i]!) : escape(c).padEnd(widths[i]!))).join(' | ')} |`;
  const rule = `| ${widths.map((w, i) => (align[i] === 'r' ? `${'-'.repeat(w - 1)}:` : '-'.repeat(w))).join(' | ')} |`;
  return [line(header), rule, ...rows.map((r) => line(header.map((_, i) => r[i] ?? '')))].join('\n');
}

/**
 * The standard comparison table: row, seglog, baseline, ratio, with medians
 * and (over several runs) min–max. `format` renders a value in the row's unit.
 */
export function comparisonTable(rows: Comparison[], format: (c: Comparison, n: number) => string): string {
  return markdownTable(
    ['row', 'seglog', 'baseline', 'seglog ÷ baseline'],
    rows.map((c) => [
      `${c.name} (${c.unit})`,
      formatSummary(summarize(c.seglog), (n) => format(c, n)),
      formatSummary(summarize(c.baseline), (n) => format(c, n)),
      formatSummary(summarize(ratios(c)), formatPercent),
    ]),
    ['l', 'r', 'r', 'r'],
  );
}

/** Prints `message` and the usage, and exits with 2 (bad usage). */
export function usageError(message: string, usage: string): never {
  console.error(`${message}\n${usage}`);
  process.exit(2);
}

let progressSink: ((message: string) => void) | undefined;

/** Progress for the person watching; stdout stays clean for the report. */
export function progress(message: string): void {
  if (progressSink !== undefined) progressSink(message);
  else process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

/** Sends progress() messages to `sink` instead (the suite's progress bar); undefined restores the default. */
export function redirectProgress(sink: ((message: string) => void) | undefined): void {
  progressSink = sink;
}

/** The 1, 5 and 15 minute load averages: other work on the machine shows up as noise in the figures. */
export function loadAverage(): string {
  return `${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (1, 5, 15 min)`;
}

/** Ticks of all CPUs from /proc/stat's `cpu` line: the host's steal, and the total (idle and steal included). */
export interface CpuTicks {
  steal: number;
  total: number;
}

/** The `cpu` line of /proc/stat's text; undefined when there is none (not Linux, or a kernel without steal). */
export function parseCpuTicks(stat: string): CpuTicks | undefined {
  const line = stat.split('\n').find((l) => l.startsWith('cpu '));
  // user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is in user and nice already.
  const fields = line?.trim().split(/\s+/).slice(1, 9).map(Number);
  if (fields === undefined || fields.length < 8 || fields.some((n) => !Number.isFinite(n))) return undefined;
  return { steal: fields[7]!, total: fields.reduce((a, b) => a + b, 0) };
}

/** This machine's CPU ticks now; undefined where /proc/stat cannot tell. */
export function cpuTicks(): CpuTicks | undefined {
  try {
    return parseCpuTicks(readFileSync('/proc/stat', 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * The share of CPU time the hypervisor gave to others since `from` (a
 * cpuTicks() reading): a VM's vCPUs stopped mid-measurement stretch wall
 * times by amounts no repetition takes out.
 */
export function stealSince(from: CpuTicks | undefined, to = cpuTicks()): string {
  if (from === undefined || to === undefined || to.total <= from.total) return 'unknown (no /proc/stat reading)';
  return `${formatPercent((to.steal - from.steal) / (to.total - from.total))} of all CPU time (/proc/stat steal)`;
}

// ---------------------------------------------------------------- files

/** Benchmark directories not removed yet: an interrupt removes them before the process exits. */
const liveDirs = new Set<string>();
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function removeOnInterrupt(signal: NodeJS.Signals): void {
  for (const path of liveDirs) rmSync(path, { recursive: true, force: true });
  process.exit(128 + os.constants.signals[signal]);
}

/**
 * A fresh directory for one benchmark, created inside `parent` (default the
 * OS temp dir) so a user-given --dir never has its own files touched.
 * `remove()` deletes it with everything the benchmark wrote; so does Ctrl-C
 * (SIGINT), SIGTERM or SIGHUP before then.
 */
export async function benchDir(parent: string = os.tmpdir()): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(parent, 'seglog-bench-'));
  if (liveDirs.size === 0) for (const signal of STOP_SIGNALS) process.on(signal, removeOnInterrupt);
  liveDirs.add(path);
  return {
    path,
    remove: async () => {
      await rm(path, { recursive: true, force: true });
      liveDirs.delete(path);
      if (liveDirs.size === 0) for (const signal of STOP_SIGNALS) process.off(signal, removeOnInterrupt);
    },
  };
}

/**
 * fsyncs every regular file in `dir` (not recursive). Run untimed between
 * phases so that one phase's dirty pages are not written back during the
 * next one's timing. It writes back; it evicts nothing from the cache.
 */
export function settle(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const fd = openSync(join(dir, entry.name), 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}

/**
 * Writes `bytes` to a scratch file in `dir`, fsyncs and deletes it, untimed.
 * On VMs whose memory the host backs lazily, the first touch of guest pages
 * is slow, so page-cache writes into never-used memory can run several times
 * slower than into reused memory. Run before write phases so that seglog and
 * its baseline both write into memory that is already backed.
 */
export function warmPageCache(dir: string, bytes: number): void {
  const path = join(dir, '.page-cache-warm-up');
  const chunk = Buffer.alloc(1024 * 1024, 0x5a);
  const fd = openSync(path, 'w');
  try {
    for (let done = 0; done < bytes; done += chunk.length) writeSync(fd, chunk);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
    unlinkSync(path);
  }
}

// ---------------------------------------------------------------- machine

export interface Machine {
  cpu: string;
  logicalCpus: number;
  memoryBytes: number;
  kernel: string;
  node: string;
  /** Of the target directory. */
  filesystem: { type: string; mountPoint: string; source: string; options: string; freeBytes: number };
  device: string;
  /** vm.dirty_* settings: when the kernel starts and forces writeback of buffered writes. */
  writeback: string;
  /** Proactive reclaim (DAMON) that can evict page cache a benchmark expects to stay warm. */
  reclaim: string;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The mount holding `path`: the /proc/self/mountinfo entry with the longest matching mount point. */
function mountOf(path: string): { mountPoint: string; type: string; source: string; options: string } {
  let best = { mountPoint: '', type: 'unknown', source: 'unknown', options: '' };
  for (const line of (readText('/proc/self/mountinfo') ?? '').split('\n')) {
    // Fields: id parent major:minor root mountPoint options [optional...] - type source superOptions
    const [left, right] = line.split(' - ');
    if (left === undefined || right === undefined) continue;
    const mountPoint = left.split(' ')[4]!.replace(/\\040/g, ' ');
    const inside = path === mountPoint || path.startsWith(mountPoint === '/' ? '/' : `${mountPoint}/`);
    if (!inside || mountPoint.length < best.mountPoint.length) continue;
    const [type, source, options] = right.split(' ');
    best = { mountPoint, type: type ?? 'unknown', source: source ?? 'unknown', options: options ?? '' };
  }
  return best;
}

/** The block device under `path`, from sysfs via the st_dev numbers (works for partitions, LVM, virtio alike). */
function deviceOf(path: string): string {
  const dev = statSync(path).dev;
  // Linux dev_t: major in bits 8-19 and 32-43, minor in bits 0-7 and 20-31.
  const major = Math.floor(dev / 256) % 4096 + Math.floor(dev / 2 ** 32 / 4096) * 4096;
  const minor = (dev % 256) + (Math.floor(dev / 2 ** 20) % 4096) * 256;
  if (major === 0) return 'none (virtual filesystem)';
  let sys: string;
  try {
    sys = realpathSync(`/sys/dev/block/${major}:${minor}`);
  } catch {
    return `${major}:${minor} (not in sysfs)`;
  }
  // A partition's queue settings live on its parent disk.
  const disk = readText(join(sys, 'partition')) === undefined ? sys : join(sys, '..');
  const name = disk.split('/').pop()!;
  const sectors = Number(readText(join(disk, 'size')) ?? 0);
  const model = readText(join(disk, 'device/model'));
  const driver = /^DRIVER=(.*)$/m.exec(readText(join(disk, 'device/uevent')) ?? '')?.[1];
  const rotational = readText(join(disk, 'queue/rotational'));
  const scheduler = /\[(.*)\]/.exec(readText(join(disk, 'queue/scheduler')) ?? '')?.[1];
  const facts = [
    model ?? driver,
    sectors > 0 ? formatBytes(sectors * 512) : undefined,
    rotational === undefined ? undefined : `rotational=${rotational}`,
    scheduler === undefined ? undefined : `scheduler ${scheduler}`,
  ].filter((f) => f !== undefined);
  return `/dev/${name} (${major}:${minor}${facts.length > 0 ? `; ${facts.join(', ')}` : ''})`;
}

/** Running DAMON schemes, e.g. "pageout of memory idle >= 60 s": they evict cache that sits unused. */
function damonSchemes(): string {
  const root = '/sys/kernel/mm/damon/admin/kdamonds';
  const found: string[] = [];
  for (let k = 0; k < Number(readText(`${root}/nr_kdamonds`) ?? 0); k++) {
    if (readText(`${root}/${k}/state`) !== 'on') continue;
    const context = `${root}/${k}/contexts/0`;
    const aggregateUs = Number(readText(`${context}/monitoring_attrs/intervals/aggr_us`) ?? 0);
    for (let i = 0; i < Number(readText(`${context}/schemes/nr_schemes`) ?? 0); i++) {
      const scheme = `${context}/schemes/${i}`;
      const minAge = Number(readText(`${scheme}/access_pattern/age/min`) ?? 0);
      found.push(`${readText(`${scheme}/action`) ?? '?'} of memory idle >= ${formatMs((minAge * aggregateUs) / 1000)}`);
    }
  }
  return found.length === 0 ? 'no DAMON scheme running' : `DAMON ${found.join('; ')}`;
}

export function describeMachine(dir: string): Machine {
  const real = realpathSync(dir);
  const cpus = os.cpus();
  const mount = mountOf(real);
  const fs = statfsSync(real);
  const vm = (name: string) => readText(`/proc/sys/vm/${name}`) ?? '?';
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    logicalCpus: cpus.length,
    memoryBytes: os.totalmem(),
    kernel: `${os.type()} ${os.release()} ${os.machine()}`,
    node: process.version,
    filesystem: { ...mount, freeBytes: fs.bavail * fs.bsize },
    device: deviceOf(real),
    writeback:
      `dirty_background_ratio=${vm('dirty_background_ratio')} dirty_ratio=${vm('dirty_ratio')} ` +
      `dirty_background_bytes=${vm('dirty_background_bytes')} dirty_bytes=${vm('dirty_bytes')}`,
    reclaim: damonSchemes(),
  };
}

/** The machine as a Markdown list; `extra` adds benchmark-specific lines (e.g. CRC path, options). */
export function formatMachine(m: Machine, extra: Record<string, string> = {}): string {
  const lines: Record<string, string> = {
    CPU: `${m.cpu}, ${m.logicalCpus} logical CPUs`,
    RAM: formatBytes(m.memoryBytes),
    Kernel: m.kernel,
    Node: m.node,
    Filesystem: `${m.filesystem.type} on ${m.filesystem.source} mounted at ${m.filesystem.mountPoint} (${m.filesystem.options}), ${formatBytes(m.filesystem.freeBytes)} free`,
    Device: m.device,
    Writeback: m.writeback,
    Reclaim: m.reclaim,
    ...extra,
  };
  return Object.entries(lines)
    .map(([k, v]) => `- ${k}: ${v}`)
    .join('\n');
}

/** Drops a file's pages from the page cache (written back first, so all can go); returns the share still cached. */
export async function evict(path: string): Promise<number> {
  const file = await File.open(path);
  try {
    await file.datasync();
    await file.advise(0, 0, 'dontneed');
    const size = await file.size();
    const r = file.residentPages(0, size);
    return r.total === 0 ? 0 : r.resident / r.total;
  } finally {
    await file.close();
  }
}
