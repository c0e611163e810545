// A log's leader epochs (Kafka's LeaderEpochFileCache, KIP-101/279): each
// epoch and the offset its first batch got, persisted as Kafka's
// `leader-epoch-checkpoint`. A follower asks the leader where its last epoch
// ended (endOffsetFor) and truncates there instead of at its high watermark.
//
// Crash safety: a new epoch's entry is made durable before the batches that
// start it are written, and truncations from the end are written before the
// log takes appends again; so after a crash the file holds every epoch of the
// data and at worst entries past the log end (or below its start), which
// open drops. A missing or damaged file is rebuilt from the batch headers.
import { join } from 'node:path';
import { malformed, readCheckpoint, writeCheckpoint } from '../common/durable-files.js';
import { SeglogError } from '../errors.js';
import { LEADER_EPOCH_CHECKPOINT } from '../layout.js';
import { HEADER_READ_BYTES, BatchReader } from '../segment/batch-reader.js';
import { walkBatches } from '../segment/batch-walk.js';
import type { BatchHeader } from '../segment/batch.js';
import type { Segment } from '../segment/segment.js';
import { INT32_MAX } from './options.js';
import type { SegmentEvents } from './segments.js';

/** Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET. */
const NO_EPOCH = -1;

export interface EpochEntry {
  epoch: number;
  startOffset: number;
}

export interface EpochEnd {
  epoch: number;
  endOffset: number;
}

export class LeaderEpochs implements SegmentEvents {
  readonly #path: string;
  /** Rising in both epoch and start offset. */
  #entries: EpochEntry[];
  /** How many of the last entries start in batches not yet published (assigned before their group is written). */
  #pending = 0;

  private constructor(path: string, entries: EpochEntry[]) {
    this.#path = path;
    this.#entries = entries;
  }

  /**
   * Loads the checkpoint of the log in `dir` (rebuilt from the headers of
   * `segments` when missing or damaged) and trims it to [startOffset, endOffset).
   */
  static async open(dir: string, segments: readonly Segment[], startOffset: number, endOffset: number): Promise<LeaderEpochs> {
    const path = join(dir, LEADER_EPOCH_CHECKPOINT);
    let loaded = await readLeaderEpochCheckpoint(path).catch((err) => {
      if ((err as SeglogError).code !== 'ECORRUPT') throw err;
      return undefined;
    });
    // A new log gets its (empty) file here, so that only a log from before epochs, or one whose file was lost, is walked.
    const rebuilt = loaded === undefined;
    loaded ??= await fromHeaders(segments);
    const epochs = new LeaderEpochs(path, loaded);
    const cutEnd = epochs.#cutEnd(endOffset);
    const cutStart = epochs.#cutStart(startOffset);
    if (cutEnd || cutStart || rebuilt) await epochs.#persist();
    return epochs;
  }

  /** The newest epoch assigned, published or not: the floor for the next batches. NO_EPOCH when none. */
  get last(): number {
    return this.#entries.at(-1)?.epoch ?? NO_EPOCH;
  }

  /** The newest epoch of the published data; NO_EPOCH when none. */
  get latest(): number {
    const n = this.#entries.length - this.#pending;
    return n === 0 ? NO_EPOCH : this.#entries[n - 1]!.epoch;
  }

  /** A group was published: the epochs its batches start are visible now. */
  appended(_segment: Segment, _position: number, _chunks: readonly Uint8Array[], headers: readonly BatchHeader[]): void {
    if (this.#pending === 0) return;
    const end = headers.at(-1)!.lastOffset;
    while (this.#pending > 0 && this.#entries[this.#entries.length - this.#pending]!.startOffset <= end) this.#pending--;
  }

  /**
   * Kafka's endOffsetFor over the published epochs: the largest epoch <=
   * `epoch` and the start offset of the epoch after it, or `endOffset` (the
   * log end) for the latest epoch. An epoch below the first known one gets
   * itself back with the first epoch's start offset (the data before is gone:
   * truncate there); NO_EPOCH and epochs past the latest get NO_EPOCH for both.
   */
  endOffsetFor(epoch: number, endOffset: number): EpochEnd {
    const n = this.#entries.length - this.#pending;
    const entries = this.#entries;
    if (epoch === NO_EPOCH || n === 0) return { epoch: NO_EPOCH, endOffset: NO_EPOCH };
    if (entries[n - 1]!.epoch === epoch) return { epoch, endOffset };
    let higher = 0;
    while (higher < n && entries[higher]!.epoch <= epoch) higher++;
    if (higher === n) return { epoch: NO_EPOCH, endOffset: NO_EPOCH };
    const floor = higher === 0 ? epoch : entries[higher - 1]!.epoch;
    return { epoch: floor, endOffset: entries[higher]!.startOffset };
  }

  /** Records the epochs a group of batches starts (each above `last`, at rising offsets) durably, before the group is written. */
  async assign(starts: readonly EpochEntry[]): Promise<void> {
    this.#entries.push(...starts);
    this.#pending += starts.length;
    await this.#persist();
  }

  /** Drops the epochs that start at or after `endOffset` (truncation, or a group whose write failed) and makes that durable. */
  async truncateFromEnd(endOffset: number): Promise<void> {
    if (this.#cutEnd(endOffset)) await this.#persist();
  }

  /** Moves the epochs to a log that starts at `startOffset` (Kafka's truncateFromStart) and makes that durable. */
  async truncateFromStart(startOffset: number): Promise<void> {
    if (this.#cutStart(startOffset)) await this.#persist();
  }

  #cutEnd(endOffset: number): boolean {
    let n = this.#entries.length;
    while (n > 0 && this.#entries[n - 1]!.startOffset >= endOffset) n--;
    const removed = this.#entries.length - n;
    if (removed === 0) return false;
    this.#entries.length = n;
    this.#pending = Math.max(0, this.#pending - removed);
    return true;
  }

  /** The entries at or below `startOffset` go but the last of them, which moves to `startOffset`: it holds the data there. */
  #cutStart(startOffset: number): boolean {
    let n = 0;
    while (n < this.#entries.length && this.#entries[n]!.startOffset <= startOffset) n++;
    if (n === 0 || (n === 1 && this.#entries[0]!.startOffset === startOffset)) return false;
    this.#entries.splice(0, n, { epoch: this.#entries[n - 1]!.epoch, startOffset });
    return true;
  }

  #persist(): Promise<void> {
    return writeCheckpoint(
      this.#path,
      this.#entries.map((e) => `${e.epoch} ${e.startOffset}`),
    );
  }
}

/** The checkpoint's entries; undefined without a file, ECORRUPT when its lines are not rising epoch/offset pairs. */
export async function readLeaderEpochCheckpoint(path: string): Promise<EpochEntry[] | undefined> {
  const lines = await readCheckpoint(path);
  if (lines === undefined) return undefined;
  const entries: EpochEntry[] = [];
  for (const line of lines) {
    const [epochText, offsetText, extra] = line.split(' ');
    const epoch = Number(epochText);
    const startOffset = Number(offsetText);
    const prev = entries.at(-1);
    const ok = extra === undefined && Number.isInteger(epoch) && epoch >= 0 && epoch <= INT32_MAX && Number.isSafeInteger(startOffset) && startOffset >= 0;
    if (!ok || (prev !== undefined && (epoch <= prev.epoch || startOffset <= prev.startOffset))) throw malformed(path, `line '${line}'`);
    entries.push({ epoch, startOffset });
  }
  return entries;
}

/**
 * The epochs as the batch headers tell them: each epoch's first batch, where
 * an epoch rises (Kafka counts batches with an epoch >= 0 only). Reads headers
 * only, a few KiB per jump over large batches; the CRCs are recovery's job.
 */
async function fromHeaders(segments: readonly Segment[]): Promise<EpochEntry[]> {
  const entries: EpochEntry[] = [];
  let last = NO_EPOCH;
  for (const s of segments) {
    // A segment a clean shutdown vouched for is not open yet.
    await s.load();
    await walkBatches(BatchReader.ofFile(s.log, s.size, HEADER_READ_BYTES), {
      baseOffset: s.baseOffset,
      checkCrc: false,
      gapsBelow: s.gapsBelow,
      onBatch: (h) => {
        if (h.partitionLeaderEpoch <= last) return;
        last = h.partitionLeaderEpoch;
        entries.push({ epoch: last, startOffset: h.baseOffset });
      },
    });
  }
  return entries;
}
