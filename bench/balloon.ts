// A memory balloon for bench/cache.ts: a child process that allocates and
// touches anonymous memory until only <leaveBytes> of MemAvailable remain,
// so that the page cache really has only that much room. It never takes the
// machine below a floor: it stops early, and gives memory back if
// MemAvailable later falls under the floor. It exits when its parent closes
// its stdin (or dies), so the memory is always released.
//
//   node --expose-gc --import tsx bench/balloon.ts <leaveBytes>
//
// stdout: "READY <heldBytes> <memAvailableBytes>" once inflated, then
// "DEFLATED <heldBytes> <memAvailableBytes>" whenever it gave memory back.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

const MiB = 1024 * 1024;
const CHUNK = 64 * MiB;
/** MemAvailable the balloon never takes the machine below. */
const FLOOR = 512 * MiB;
/** Touching memory is CPU-bound (the kernel zeroes each page): one thread per CPU. */
const THREADS = availableParallelism();

function memAvailable(): number {
  const kib = /^MemAvailable:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1];
  if (kib === undefined) throw new Error('no MemAvailable in /proc/meminfo');
  return Number(kib) * 1024;
}

/**
 * A thread's share of the work, run from source (eval) as worker threads do
 * not get tsx's loader: allocates and touches chunks, handing each to the
 * main thread without a copy, while MemAvailable stays a chunk per thread
 * above `stopAt` (so that the threads together never overshoot).
 */
const FILL = `
const { readFileSync } = require('node:fs');
const { parentPort, workerData: w } = require('node:worker_threads');
const memAvailable = ${memAvailable.toString()};
while (memAvailable() - w.chunk * w.threads >= w.stopAt) {
  const chunk = Buffer.allocUnsafeSlow(w.chunk).fill(0x5a).buffer;
  parentPort.postMessage(chunk, [chunk]);
}
`;

const leave = Number(process.argv[2]);
if (!Number.isSafeInteger(leave) || leave < 0) {
  console.error('usage: node --expose-gc --import tsx bench/balloon.ts <leaveBytes>');
  process.exit(2);
}

const held: ArrayBuffer[] = [];
await Promise.all(
  Array.from(
    { length: THREADS },
    () =>
      new Promise((resolve, reject) => {
        // Filled with 0x5a, not zeros: every page must really be backed.
        const worker = new Worker(FILL, { eval: true, workerData: { chunk: CHUNK, threads: THREADS, stopAt: Math.max(leave, FLOOR) } });
        worker.on('message', (chunk: ArrayBuffer) => held.push(chunk));
        worker.on('error', reject);
        worker.on('exit', resolve);
      }),
  ),
);
process.stdout.write(`READY ${held.length * CHUNK} ${memAvailable()}\n`);

const gc = (globalThis as { gc?: () => void }).gc;
setInterval(() => {
  if (memAvailable() >= FLOOR || held.length === 0) return;
  // Someone else needs the memory more: give back a quarter of what is held.
  held.splice(0, Math.ceil(held.length / 4));
  gc?.();
  process.stdout.write(`DEFLATED ${held.length * CHUNK} ${memAvailable()}\n`);
}, 200);

process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
