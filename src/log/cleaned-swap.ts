// How a cleaned segment replaces the segments it was made from, crash-safe
// as Kafka's cleaner does it. The output is written as `<base>.log.cleaned`
// (and `<base>.txnindex.cleaned`, always, even empty) and made durable; the
// transaction index is renamed to `.swap`, then the .log: that rename is the
// point of no return. Then the sources go (every segment file at a base in
// (base, end), and the first source's indexes, rebuilt from the new .log),
// and the `.swap` files are renamed into place. On open, `finishSwaps`
// removes `.cleaned` leftovers (the pass never happened), removes a `.swap`
// index without its .log (likewise), and completes any swap whose .log
// reached `.swap`, the sources' range being the swap .log's own, which
// always ends where the last source ended (the cleaner keeps each group's
// last batch).
import { rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CLEANED_SUFFIX, parseCleanerFileName, segmentBases, segmentPaths, SWAP_SUFFIX } from '../layout.js';
import { encodeAbortedTxns, type AbortedTxn } from '../index/transaction-index.js';
import { File, fsyncDir } from '../native.js';
import { BatchReader } from '../segment/batch-reader.js';
import { walkBatches } from '../segment/batch-walk.js';

/** A cleaned segment being written: batches appended in order, then committed. */
export class CleanedOutput {
  readonly #dir: string;
  readonly baseOffset: number;
  readonly #file: File;
  /** Own cache mode: its pages go once durable. */
  readonly #dropPages: boolean;
  #size = 0;
  /** Offset after the last batch appended. */
  #end: number;

  private constructor(dir: string, baseOffset: number, file: File, dropPages: boolean) {
    this.#dir = dir;
    this.baseOffset = baseOffset;
    this.#file = file;
    this.#dropPages = dropPages;
    this.#end = baseOffset;
  }

  static async create(dir: string, baseOffset: number, dropPages: boolean): Promise<CleanedOutput> {
    const file = await File.open(segmentPaths(dir, baseOffset).log + CLEANED_SUFFIX, { create: true, truncate: true });
    return new CleanedOutput(dir, baseOffset, file, dropPages);
  }

  get size(): number {
    return this.#size;
  }

  /** Writes whole batches after the ones before; `end` is the offset after the last of them. */
  async append(batches: Buffer[], end: number): Promise<void> {
    if (batches.length === 0) return;
    const length = batches.reduce((n, b) => n + b.length, 0);
    const written = await this.#file.writev(batches, this.#size);
    if (written !== length) throw new Error(`short write of ${this.#file.path}: ${written} of ${length} bytes`);
    this.#size += length;
    this.#end = end;
  }

  /** Makes the output durable with `txns` (the aborted transactions whose markers it kept) and passes the point of no return. */
  async commit(txns: readonly AbortedTxn[]): Promise<void> {
    const p = segmentPaths(this.#dir, this.baseOffset);
    await this.#file.datasync();
    if (this.#dropPages) await this.#file.advise(0, 0, 'dontneed');
    await this.#file.close();
    const index = await File.open(p.txnIndex + CLEANED_SUFFIX, { create: true, truncate: true });
    try {
      const bytes = encodeAbortedTxns(txns);
      if (bytes.length > 0) await index.write(bytes, 0);
      await index.datasync();
    } finally {
      await index.close();
    }
    await rename(p.txnIndex + CLEANED_SUFFIX, p.txnIndex + SWAP_SUFFIX);
    await rename(p.log + CLEANED_SUFFIX, p.log + SWAP_SUFFIX);
    await fsyncDir(this.#dir);
  }

  /** Removes what was written (a pass that failed before its commit). */
  async discard(): Promise<void> {
    await this.#file.close().catch(() => undefined);
    const p = segmentPaths(this.#dir, this.baseOffset);
    await Promise.all([rm(p.log + CLEANED_SUFFIX, { force: true }), rm(p.txnIndex + CLEANED_SUFFIX, { force: true })]);
  }

  /** The offset after the last batch written. */
  get end(): number {
    return this.#end;
  }
}

/**
 * The committed swap at `base` put in place: the segments at bases in
 * (base, end) among `bases` and the first one's indexes removed, then the
 * `.swap` files renamed over. Idempotent: a crash at any step leaves what
 * open completes.
 */
export async function completeSwap(dir: string, base: number, end: number, bases: readonly number[]): Promise<void> {
  const p = segmentPaths(dir, base);
  const doomed = bases.filter((b) => b > base && b < end).flatMap((b) => Object.values(segmentPaths(dir, b)));
  await Promise.all([...doomed, p.index, p.timeIndex].map((path) => rm(path, { force: true })));
  await rename(p.txnIndex + SWAP_SUFFIX, p.txnIndex).catch((err: NodeJS.ErrnoException) => {
    // Renamed already, before a crash.
    if (err.code !== 'ENOENT') throw err;
  });
  await rename(p.log + SWAP_SUFFIX, p.log);
  await fsyncDir(dir);
  // Only segments with an aborted transaction have a .txnindex.
  if ((await stat(p.txnIndex).catch(() => undefined))?.size === 0) await rm(p.txnIndex, { force: true });
}

/**
 * On open, before the segments are listed: leftovers of a pass that did not
 * commit are removed, committed swaps completed. Returns whether anything
 * changed.
 */
export async function finishSwaps(dir: string, names: readonly string[]): Promise<boolean> {
  const files = names.map((n) => ({ name: n, parsed: parseCleanerFileName(n) })).filter((f) => f.parsed !== undefined);
  if (files.length === 0) return false;
  const committed = new Set(files.filter((f) => f.parsed!.stage === 'swap' && f.parsed!.kind === 'log').map((f) => f.parsed!.baseOffset));
  for (const f of files) {
    if (f.parsed!.stage === 'cleaned' || !committed.has(f.parsed!.baseOffset)) await rm(join(dir, f.name), { force: true });
  }
  const bases = segmentBases(names);
  for (const base of [...committed].sort((a, b) => a - b)) await completeSwap(dir, base, await swapEnd(dir, base), bases);
  await fsyncDir(dir);
  return true;
}

/** The offset after the last batch of the swap .log at `base`: written whole and made durable before it was renamed so. */
async function swapEnd(dir: string, base: number): Promise<number> {
  const path = segmentPaths(dir, base).log + SWAP_SUFFIX;
  const { file, size } = await File.openSized(path);
  try {
    const end = await walkBatches(BatchReader.ofFile(file, size), { baseOffset: base, checkCrc: false, gapsBelow: Number.MAX_SAFE_INTEGER });
    return end.nextOffset;
  } finally {
    await file.close();
  }
}
