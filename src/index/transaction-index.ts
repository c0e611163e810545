// One segment's `.txnindex` (Kafka's TransactionIndex): the transactions
// aborted by a marker in that segment, in marker order, as 34-byte entries
// (Kafka's AbortedTxn): version i16 (0), producerId i64, firstOffset i64,
// lastOffset i64 (the marker's offset), lastStableOffset i64 (the log's LSO
// once the marker completed the transaction). The entries are few and small,
// so they are held in memory; the file follows them.
import { rm } from 'node:fs/promises';
import { SeglogError } from '../errors.js';
import { TXN_INDEX_ENTRY_BYTES } from '../layout.js';
import { File } from '../native.js';

export interface AbortedTxn {
  producerId: number;
  firstOffset: number;
  lastOffset: number;
  lastStableOffset: number;
}

const VERSION = 0;

/** The file bytes of `entries`. */
export function encodeAbortedTxns(entries: readonly AbortedTxn[]): Buffer {
  const out = Buffer.alloc(entries.length * TXN_INDEX_ENTRY_BYTES);
  entries.forEach((e, i) => {
    const p = i * TXN_INDEX_ENTRY_BYTES;
    out.writeInt16BE(VERSION, p);
    out.writeBigInt64BE(BigInt(e.producerId), p + 2);
    out.writeBigInt64BE(BigInt(e.firstOffset), p + 10);
    out.writeBigInt64BE(BigInt(e.lastOffset), p + 18);
    out.writeBigInt64BE(BigInt(e.lastStableOffset), p + 26);
  });
  return out;
}

/** The entries of a file's bytes; undefined when they are not whole version-0 entries with sane offsets. */
export function decodeAbortedTxns(bytes: Buffer): AbortedTxn[] | undefined {
  if (bytes.length % TXN_INDEX_ENTRY_BYTES !== 0) return undefined;
  const out: AbortedTxn[] = [];
  for (let p = 0; p < bytes.length; p += TXN_INDEX_ENTRY_BYTES) {
    const [producerId, firstOffset, lastOffset, lastStableOffset] = [2, 10, 18, 26].map((at) => Number(bytes.readBigInt64BE(p + at))) as [number, number, number, number];
    const sane = bytes.readInt16BE(p) === VERSION && producerId >= 0 && firstOffset >= 0 && lastOffset >= firstOffset && lastStableOffset >= 0;
    if (!sane || ![producerId, firstOffset, lastOffset, lastStableOffset].every(Number.isSafeInteger)) return undefined;
    out.push({ producerId, firstOffset, lastOffset, lastStableOffset });
  }
  return out;
}

export class TransactionIndex {
  readonly path: string;
  readonly #entries: AbortedTxn[];
  /** Open for appends once the first entry since open is written. */
  #file: File | undefined;
  #unsynced = false;

  constructor(path: string, entries: AbortedTxn[] = []) {
    this.path = path;
    this.#entries = entries;
  }

  /** The index at `path`: its entries, none without a file, undefined when the file is damaged. */
  static async read(path: string): Promise<TransactionIndex | undefined> {
    let opened: { file: File; size: number };
    try {
      opened = await File.openSized(path);
    } catch (err) {
      if ((err as SeglogError).code === 'ENOENT') return new TransactionIndex(path);
      throw err;
    }
    try {
      const bytes = Buffer.alloc(opened.size);
      if ((await opened.file.read(bytes, 0)) !== bytes.length) return undefined;
      const entries = decodeAbortedTxns(bytes);
      return entries === undefined ? undefined : new TransactionIndex(path, entries);
    } finally {
      await opened.file.close();
    }
  }

  get entries(): readonly AbortedTxn[] {
    return this.#entries;
  }

  /** Appends `entries` (markers later than those held) to the file. */
  async append(entries: readonly AbortedTxn[]): Promise<void> {
    const position = this.#entries.length * TXN_INDEX_ENTRY_BYTES;
    this.#file ??= await File.open(this.path, { create: true });
    await this.#file.write(encodeAbortedTxns(entries), position);
    this.#entries.push(...entries);
    this.#unsynced = true;
  }

  /** Drops the entries whose marker lies at or after `offset` (Kafka's truncateTo); true when some went. */
  async truncateTo(offset: number): Promise<boolean> {
    let n = this.#entries.length;
    while (n > 0 && this.#entries[n - 1]!.lastOffset >= offset) n--;
    if (n === this.#entries.length) return false;
    this.#entries.length = n;
    this.#file ??= await File.open(this.path, { create: true });
    await this.#file.truncate(n * TXN_INDEX_ENTRY_BYTES);
    this.#unsynced = true;
    return true;
  }

  /** Makes the entries written so far durable (the directory entry of a new file is the caller's fsync). */
  async sync(): Promise<void> {
    if (!this.#unsynced || this.#file === undefined) return;
    this.#unsynced = false;
    await this.#file.datasync();
  }

  async close(): Promise<void> {
    const file = this.#file;
    this.#file = undefined;
    await file?.close();
  }

  /** Closes and removes the file. */
  async delete(): Promise<void> {
    await this.close();
    await rm(this.path, { force: true });
  }
}
