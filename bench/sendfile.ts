// Zero-copy serving benchmark (M4): a log served over loopback TCP with
// log.sendTo(), fetch after fetch, beside the same run's ceiling (the
// addon's sendfile(2) of the same segment files, with no log logic) and
// Node's copying way to do it (fs.createReadStream().pipe(socket)), plus
// iperf3 -Z when it is installed. Warm page cache throughout.
//
//   npx tsx bench/sendfile.ts [--mib <n>] [--runs <n>] [--fetch-kib <n,...>] [--batch-kib <n>] [--dir <path>]
//
// The receiver is another process (this script with --drain) that reads
// into one 4 MiB buffer and discards; it reports its own rate and how busy
// its CPU was, to show whether it kept up. Rates are end to end: from the
// first byte offered to the receiver's EOF. CPU is the sender process's
// (all threads) per GB served. The suite (bench/suite.ts) reuses the
// receiver, the senders and serve().
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { crc32c, File, sendfile, stats } from '../src/io.js';
import { encodeBatch, Log } from '../src/seglog.js';
import { benchDir, cpuTicks, describeMachine, formatMachine, formatPercent, formatSummary, loadAverage, markdownTable, now, progress, settle, stealSince, summarize } from './common.js';

const MiB = 1024 * 1024;
const RECORD_BYTES = 1024;
const SEGMENT_BYTES = 256 * MiB;
const RECEIVE_BUFFER = 4 * MiB;

const USAGE = `usage: npx tsx bench/sendfile.ts [--mib <n>] [--runs <n>] [--fetch-kib <n,...>] [--batch-kib <n>] [--dir <path>]
  --mib        MiB of log served per measurement (default 1024)
  --runs       repetitions; figures are medians with min–max (default 3)
  --fetch-kib  maxBytes of each sendTo() fetch in KiB, one row per size (default 1024,16384:
               Kafka's max.partition.fetch.bytes, and a fetch spanning many partitions' worth)
  --batch-kib  size of the log's record batches, in KiB (default 64)
  --dir        parent directory for the log (default: the OS temp dir); a fresh
               subdirectory is created there and removed at the end`;

interface Options {
  mib: number;
  runs: number;
  fetchBytes: number[];
  batchBytes: number;
  dir: string | undefined;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      mib: { type: 'string', default: '1024' },
      runs: { type: 'string', default: '3' },
      'fetch-kib': { type: 'string', default: '1024,16384' },
      'batch-kib': { type: 'string', default: '64' },
      dir: { type: 'string' },
      drain: { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, value: string | undefined, min: number) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new RangeError(`--${name} must be an integer >= ${min}, got ${value}\n${USAGE}`);
    return n;
  };
  return {
    mib: int('mib', values.mib, 1),
    runs: int('runs', values.runs, 1),
    fetchBytes: values['fetch-kib']!.split(',').map((v) => int('fetch-kib', v, 1) * 1024),
    batchBytes: int('batch-kib', values['batch-kib'], 2) * 1024,
    dir: values.dir,
  };
}

// ---------------------------------------------------------------- receiver (child process)

/** What the receiver reports for one connection. */
interface Received {
  bytes: number;
  /** From its first byte to EOF. */
  ms: number;
  /** CPU time it used meanwhile (user + system). */
  cpuMs: number;
  /** CRC-32C of everything received, when asked for (0 otherwise). */
  crc: number;
}

/** --drain: connects where told, reads into one buffer until EOF (checksumming it if asked), reports, repeats. */
function drain(): void {
  const buffer = Buffer.allocUnsafe(RECEIVE_BUFFER);
  process.on('message', ({ port, checksum }: { port: number; checksum: boolean }) => {
    let bytes = 0;
    let crc = 0;
    let first = 0;
    let cpu = process.cpuUsage();
    const socket = net.connect({
      port,
      host: '127.0.0.1',
      onread: {
        buffer,
        callback: (n: number) => {
          if (bytes === 0) {
            first = now();
            cpu = process.cpuUsage();
          }
          bytes += n;
          if (checksum) crc = crc32c(buffer.subarray(0, n), crc);
          return true;
        },
      },
    });
    socket.on('end', () => {
      const used = process.cpuUsage(cpu);
      process.send!({ bytes, ms: now() - first, cpuMs: (used.user + used.system) / 1000, crc } satisfies Received);
      socket.destroy();
    });
  });
}

// ---------------------------------------------------------------- sender

export interface Sample {
  gbps: number;
  cpuSecondsPerGB: number;
  receiverGbps: number;
  receiverBusy: number;
}

/** Files served whole, in order: a log's segments or a ceiling's scratch file. */
export interface Segments {
  paths: string[];
  files: File[];
  sizes: number[];
  total: number;
  /** CRC-32C of all the files' bytes in order: what a receiver of a whole pass must have seen. */
  crc: number;
}

/** Reads `paths` through the page cache (so they are warm afterwards); returns the CRC-32C of their bytes in order. */
async function readAll(paths: string[]): Promise<number> {
  let crc = 0;
  for (const path of paths) {
    for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) crc = crc32c(chunk as Buffer, crc);
  }
  return crc;
}

export async function openSegments(paths: string[]): Promise<Segments> {
  const files = await Promise.all(paths.map((p) => File.open(p)));
  const sizes = await Promise.all(files.map((f) => f.size()));
  return { paths, files, sizes, total: sizes.reduce((a, b) => a + b, 0), crc: await readAll(paths) };
}

/** A log's segment files, checked against its size. */
export async function logSegments(dir: string, log: Log): Promise<Segments> {
  const paths = (await readdir(dir))
    .filter((n) => n.endsWith('.log'))
    .sort()
    .map((n) => join(dir, n));
  const segments = await openSegments(paths);
  if (segments.total !== log.size) throw new Error(`segment files hold ${segments.total} bytes, the log says ${log.size}`);
  return segments;
}

function allResident(segments: Segments): boolean {
  return segments.files.every((f, i) => {
    const r = f.residentPages(0, segments.sizes[i]!);
    return r.resident === r.total;
  });
}

/** Connections to the receiver, one per measurement. */
export class Receiver {
  readonly #child: ChildProcess;
  readonly #server: net.Server;
  #connections: Array<(s: net.Socket) => void> = [];

  private constructor(child: ChildProcess, server: net.Server) {
    this.#child = child;
    this.#server = server;
    server.on('connection', (s) => this.#connections.shift()?.(s));
  }

  static async start(): Promise<Receiver> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--drain'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    return new Receiver(child, server);
  }

  /**
   * Has the receiver connect, runs `send` on the connection, ends it and
   * waits for the receiver's EOF. With `crc`, the receiver checksums what it
   * got and a mismatch throws (that costs it CPU: use it on untimed passes).
   */
  async measure(bytes: number, send: (socket: net.Socket) => Promise<void>, crc?: number): Promise<Sample> {
    const connected = new Promise<net.Socket>((resolve) => this.#connections.push(resolve));
    const received = new Promise<Received>((resolve) => this.#child.once('message', resolve));
    this.#child.send({ port: (this.#server.address() as net.AddressInfo).port, checksum: crc !== undefined });
    const socket = await connected;
    const cpu = process.cpuUsage();
    const start = now();
    await send(socket);
    socket.end();
    const r = await received;
    const seconds = (now() - start) / 1000;
    const used = process.cpuUsage(cpu);
    if (r.bytes !== bytes) throw new Error(`verification: the receiver got ${r.bytes} bytes, ${bytes} were sent`);
    if (crc !== undefined && r.crc !== crc) throw new Error(`verification: the receiver's CRC-32C ${r.crc} differs from the data's ${crc}`);
    const gb = bytes / 1e9;
    return { gbps: gb / seconds, cpuSecondsPerGB: (used.user + used.system) / 1e6 / gb, receiverGbps: gb / (r.ms / 1000), receiverBusy: r.cpuMs / r.ms };
  }

  async stop(): Promise<void> {
    this.#child.kill();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

export interface Sender {
  name: string;
  send: (socket: net.Socket) => Promise<void>;
  /** Run untimed before each of this sender's measurements. */
  before?: () => Promise<void>;
}

/** The ceiling: the addon's sendfile(2) of each file, whole, with no log logic. */
export function rawSendfile(segments: Segments): Sender['send'] {
  return async (socket) => {
    const fd = (socket as unknown as { _handle: { fd: number } })._handle.fd;
    for (let i = 0; i < segments.files.length; i++) await sendfile(fd, segments.files[i]!, 0, segments.sizes[i]!);
  };
}

/** log.sendTo() fetch after fetch from the start to the end, as a broker answers one consumer's requests; `log()` is the log open now. */
export function sendToFetches(log: () => Log, maxBytes: number): Sender['send'] {
  return async (socket) => {
    const l = log();
    for (let next = l.startOffset; next < l.endOffset; ) next = (await l.sendTo(socket, next, { maxBytes })).nextOffset;
  };
}

/** Node's copying way: fs.createReadStream(file).pipe(socket), file after file. */
export function pipeFiles(paths: string[], highWaterMark: number | undefined): Sender['send'] {
  return async (socket) => {
    for (const path of paths) {
      await new Promise<void>((resolve, reject) => {
        const rs = createReadStream(path, highWaterMark === undefined ? {} : { highWaterMark });
        rs.once('end', resolve).once('error', reject);
        rs.pipe(socket, { end: false });
      });
    }
  };
}

export interface Served {
  /** samples[sender][run] */
  samples: Sample[][];
  /** Measurements that found pages evicted and re-read them first, of all measurements. */
  rewarmed: number;
  measurements: number;
  /** Bytes sendfile(2) moved in the last run, per sender. */
  sendfileBytes: number[];
}

/**
 * Every sender serves all of `segments` once untimed (the receiver checks
 * the CRC of what it got), then `runs` times timed. Every measurement starts
 * with every page in the page cache: checked with mincore, re-read (untimed)
 * when something (e.g. DAMON's pageout) evicted pages.
 */
export async function serve(receiver: Receiver, segments: Segments, senders: Sender[], runs: number): Promise<Served> {
  const served: Served = { samples: senders.map(() => []), rewarmed: 0, measurements: 0, sendfileBytes: senders.map(() => 0) };
  const measure = async (sender: Sender, crc?: number) => {
    await sender.before?.();
    served.measurements++;
    if (!allResident(segments)) {
      served.rewarmed++;
      await readAll(segments.paths);
      if (!allResident(segments)) throw new Error('the files do not stay in the page cache: not enough memory for a warm-cache benchmark');
    }
    return receiver.measure(segments.total, sender.send, crc);
  };
  // Warm-up: one pass of each, untimed, so JIT and TCP autotuning settle; it also proves each sender sends the right bytes.
  for (const sender of senders) await measure(sender, segments.crc);
  for (let run = 1; run <= runs; run++) {
    for (let i = 0; i < senders.length; i++) {
      progress(runs > 1 ? `run ${run}/${runs}: ${senders[i]!.name}` : senders[i]!.name);
      const before = stats().sendfileBytes;
      served.samples[i]!.push(await measure(senders[i]!));
      served.sendfileBytes[i] = stats().sendfileBytes - before;
    }
  }
  return served;
}

/**
 * A log of at least `bytes` in batches of about `batchBytes` of 1 KiB
 * records, closed and opened again as after a restart: its segments are
 * trusted, nothing is CRC-checked yet, so the first pass of a sendTo sender
 * (the untimed warm-up) checks every batch and later passes serve what was
 * checked (bytes a process appends itself count as checked).
 */
export async function buildLog(dir: string, bytes: number, batchBytes: number): Promise<Log> {
  // --batch-kib may ask for batches above Kafka's default maxMessageBytes (1 MiB).
  const log = await Log.open(dir, { segmentBytes: SEGMENT_BYTES, maxMessageBytes: Math.max(1048588, 2 * batchBytes) });
  const batch = encodeBatch(
    Array.from({ length: Math.max(1, Math.floor(batchBytes / (RECORD_BYTES + 16))) }, (_, i) => ({ value: Buffer.alloc(RECORD_BYTES, i) })),
    { now: Date.now() },
  );
  // Several batches per append: appendBatches renumbers each.
  const group = Buffer.concat(Array.from({ length: Math.max(1, Math.floor((4 * MiB) / batch.length)) }, () => batch));
  while (log.size < bytes) await log.appendBatches(group);
  await log.close();
  return reopen(dir);
}

/** The log in `dir` opened again (after a clean close, trusted: sendTo checks each range the first time it serves it). */
export function reopen(dir: string): Promise<Log> {
  return Log.open(dir, { segmentBytes: SEGMENT_BYTES });
}

/** iperf3 -Z (sendfile from a file it writes) over loopback, when installed; a string says why there is no figure. */
export function iperf3(bytes: number): Sample | string {
  if (spawnSync('iperf3', ['--version']).error !== undefined) return 'not installed';
  const port = String(20000 + Math.floor(Math.random() * 20000));
  const server = spawn('iperf3', ['-s', '-p', port], { stdio: 'ignore' });
  interface End {
    sum_sent: { bytes: number; seconds: number };
    sum_received: { bytes: number; seconds: number };
    cpu_utilization_percent: { host_total: number; remote_total: number };
  }
  try {
    let failure = '';
    // The server may not listen yet on the first tries.
    for (let attempt = 0; attempt < 20; attempt++) {
      if (attempt > 0) spawnSync('sleep', ['0.1']);
      const r = spawnSync('iperf3', ['-c', '127.0.0.1', '-p', port, '-Z', '-n', String(bytes), '-J'], { encoding: 'utf8' });
      let report: { error?: string; end?: Partial<End> };
      try {
        report = JSON.parse(r.stdout);
      } catch {
        failure = r.stderr || r.stdout;
        continue;
      }
      const end = report.end;
      if (report.error !== undefined || end?.sum_sent === undefined || end.sum_received === undefined || end.cpu_utilization_percent === undefined) {
        failure = report.error ?? 'no totals in its report';
        continue;
      }
      const gb = end.sum_received.bytes / 1e9;
      return {
        gbps: gb / end.sum_received.seconds,
        cpuSecondsPerGB: ((end.cpu_utilization_percent.host_total / 100) * end.sum_sent.seconds) / (end.sum_sent.bytes / 1e9),
        receiverGbps: gb / end.sum_received.seconds,
        receiverBusy: end.cpu_utilization_percent.remote_total / 100,
      };
    }
    return `failed: ${failure}`.slice(0, 200);
  } finally {
    server.kill();
  }
}

async function main(): Promise<void> {
  const o = options();
  const load = loadAverage();
  const ticks = cpuTicks();
  const dir = await benchDir(o.dir);
  try {
    progress(`writing a ${o.mib} MiB log (${o.batchBytes / 1024} KiB batches) in ${dir.path}`);
    let log = await buildLog(dir.path, o.mib * MiB, o.batchBytes);
    settle(dir.path);
    const segments = await logSegments(dir.path, log);
    const receiver = await Receiver.start();
    const senders: Sender[] = [
      { name: 'raw sendfile(2) of the segment files (ceiling)', send: rawSendfile(segments) },
      ...o.fetchBytes.map((maxBytes) => ({ name: `seglog log.sendTo(), ${maxBytes / 1024} KiB fetches`, send: sendToFetches(() => log, maxBytes) })),
      {
        name: `seglog log.sendTo(), ${o.fetchBytes[0]! / 1024} KiB fetches, first serve after open (checks every CRC)`,
        before: async () => {
          await log.close();
          log = await reopen(dir.path);
        },
        send: sendToFetches(() => log, o.fetchBytes[0]!),
      },
      { name: 'fs.createReadStream().pipe(socket), default 64 KiB', send: pipeFiles(segments.paths, undefined) },
      { name: 'fs.createReadStream().pipe(socket), 1 MiB highWaterMark', send: pipeFiles(segments.paths, MiB) },
    ];
    const { samples, rewarmed, measurements, sendfileBytes } = await serve(receiver, segments, senders, o.runs);
    await receiver.stop();
    progress('iperf3 -Z');
    const iperf = iperf3(segments.total);

    const gbps = (n: number) => `${n.toFixed(2)} GB/s`;
    const ceiling = samples[0]!.map((s) => s.gbps);
    const table = markdownTable(
      ['sender', 'throughput', '÷ ceiling', 'sender CPU s/GB', 'receiver rate', 'receiver CPU busy'],
      [
        ...senders.map((sender, i) => {
          const s = samples[i]!;
          return [
            sender.name,
            formatSummary(summarize(s.map((x) => x.gbps)), gbps),
            formatSummary(summarize(s.map((x, r) => x.gbps / ceiling[r]!)), formatPercent),
            formatSummary(summarize(s.map((x) => x.cpuSecondsPerGB)), (n) => n.toFixed(3)),
            formatSummary(summarize(s.map((x) => x.receiverGbps)), gbps),
            formatSummary(summarize(s.map((x) => x.receiverBusy)), formatPercent),
          ];
        }),
        typeof iperf === 'string'
          ? ['iperf3 -Z (loopback, its own file)', iperf, '', '', '', '']
          : [
              'iperf3 -Z (loopback, its own file; one run)',
              gbps(iperf.gbps),
              formatPercent(iperf.gbps / summarize(ceiling).median),
              iperf.cpuSecondsPerGB.toFixed(3),
              gbps(iperf.receiverGbps),
              formatPercent(iperf.receiverBusy),
            ],
      ],
      ['l', 'r', 'r', 'r', 'r', 'r'],
    );
    const sendTo = samples[1]!.map((s) => s.gbps);
    const pipeDefault = samples[2 + o.fetchBytes.length]!.map((s) => s.gbps);
    console.log(`# seglog sendfile benchmark\n`);
    console.log(
      formatMachine(describeMachine(dir.path), {
        Served: `${(segments.total / MiB).toFixed(0)} MiB per measurement: ${segments.files.length} segment files, ${o.batchBytes / 1024} KiB batches; loopback TCP`,
        'Page cache': `all segment pages resident (mincore) at the start of every measurement; re-read before ${rewarmed} of ${measurements}`,
        Runs: `${o.runs}, after one untimed warm-up pass (whose bytes the receiver checks by CRC-32C); median (min–max)`,
        'Load average': `${load} at the start`,
        'vCPU steal': `${stealSince(ticks)} during the measurements`,
        Receiver: `a separate process reading into one ${RECEIVE_BUFFER / MiB} MiB buffer; its rate is first byte to EOF`,
      }),
    );
    console.log(`\n${table}\n`);
    console.log(`- ${senders[1]!.name} ÷ ceiling: ${formatPercent(summarize(sendTo.map((v, r) => v / ceiling[r]!)).median)} (target ≥ 90%)`);
    console.log(`- ${senders[1]!.name} ÷ default stream pipe: ${summarize(sendTo.map((v, r) => v / pipeDefault[r]!)).median.toFixed(2)}x (target ≥ 3x)`);
    console.log(`- bytes moved by sendfile(2) in the last run, per row: ${sendfileBytes.map((b) => (b / MiB).toFixed(0) + ' MiB').join(', ')}`);
    await Promise.all(segments.files.map((f) => f.close()));
    await log.close();
  } finally {
    await dir.remove();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv.includes('--drain')) drain();
  else await main();
}
