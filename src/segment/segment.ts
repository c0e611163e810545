// A segment: one .log file of whole RecordBatch v2 batches plus its sparse
// .index and .timeindex, all named by the segment's base offset.
import { rm } from 'node:fs/promises';
import { SeglogError } from '../errors.js';
import { segmentPaths } from '../layout.js';
import { File, fsyncDir, PAGE_SIZE, type MappedRegion } from '../native.js';
import type { OffsetIndex } from '../index/offset-index.js';
import type { TimeIndex } from '../index/time-index.js';
import { BatchReader, ViewBytes } from './batch-reader.js';
import { walkBatches } from './batch-walk.js';
import type { BatchHeader } from './batch.js';
import { scanLog } from './scan-log.js';
import { closeFiles, closeIndexes, openIndexes, openLogSized, type SegmentFiles } from './segment-files.js';
import * as reads from './segment-reads.js';
import type { BatchLocation } from './segment-reads.js';
import { agrees, logAgrees, type SegmentSummary } from './segment-summary.js';
import { VerifiedRanges } from './verified-ranges.js';

export interface SegmentConfig {
  indexIntervalBytes: number;
  segmentIndexBytes: number;
  /** Batches ending below the offset this returns may follow a gap (see WalkOptions.gapsBelow): asked at each walk. Default: none may. */
  gapsBelow?: () => number;
}

/** What recover() found: where the valid data ends and why scanning stopped. */
export interface RecoveryResult {
  validBytes: number;
  batches: number;
  /** Bytes cut from the end (a torn or zero-padded tail). */
  truncatedBytes: number;
  /** Set when invalid bytes were followed by a valid batch: real corruption, not a torn tail. */
  corruptAt?: number;
  /** Set when the file has an invalid tail that `cutTail: false` kept: the file is unchanged, the tail starts here. */
  invalidTailAt?: number;
  corruptReason?: string;
}

export type { BatchLocation } from './segment-reads.js';
export type { SegmentSummary } from './segment-summary.js';

export class Segment {
  readonly dir: string;
  readonly baseOffset: number;
  #files: SegmentFiles | undefined;
  /** Set for a segment made from a summary (Segment.summarized) until its files are open. */
  #summary: SegmentSummary | undefined;
  /** The open of a summarized segment's files under way (see load()). */
  #loading: Promise<void> | undefined;
  #closed = false;
  readonly #config: SegmentConfig;
  /** Bytes of whole batches; readers never look past it. */
  #size: number;
  #nextOffset: number;
  #maxTimestamp = -1;
  #offsetOfMaxTimestamp: number;
  #bytesSinceIndexEntry = 0;
  /** Wall-clock ms of the first append, for time-based rolling. */
  #firstAppendAt: number | undefined;
  #wellFormed = true;
  /** A private mapping of the .log that reads are served from without a copy (view()); made on first use, never handed out. */
  #mapping: MappedRegion | undefined;
  /** Mappings the segment outgrew: a read under way may still use one, so they go when the segment closes. */
  #outgrown: MappedRegion[] = [];
  /** What was CRC-checked since open, so checkOnce() checks each byte once (see there). */
  readonly #verified = new VerifiedRanges();

  private constructor(dir: string, baseOffset: number, config: SegmentConfig) {
    this.dir = dir;
    this.baseOffset = baseOffset;
    this.#size = 0;
    this.#nextOffset = baseOffset;
    this.#offsetOfMaxTimestamp = baseOffset;
    this.#config = config;
  }

  /**
   * A sealed segment known from the log's clean-shutdown record, its files
   * not opened: size, offsets and max timestamp come from `summary` until
   * load() opens them (on first read) and checks them against it.
   */
  static summarized(dir: string, summary: SegmentSummary, config: SegmentConfig): Segment {
    const segment = new Segment(dir, summary.baseOffset, config);
    segment.#summary = summary;
    segment.#size = summary.size;
    segment.#nextOffset = summary.nextOffset;
    segment.#maxTimestamp = summary.maxTimestamp;
    return segment;
  }

  #opened(): SegmentFiles {
    if (this.#files === undefined) throw new Error(`segment ${this.baseOffset} of ${this.dir} is not loaded: await load() first`);
    return this.#files;
  }

  get log(): File {
    return this.#opened().log;
  }

  get offsetIndex(): OffsetIndex {
    return this.#opened().offsetIndex;
  }

  get timeIndex(): TimeIndex {
    return this.#opened().timeIndex;
  }

  /** The .log's path, whether or not it is open. */
  get logPath(): string {
    return segmentPaths(this.dir, this.baseOffset).log;
  }

  /** Whether the files are open (always, except for a summarized segment not yet read). */
  get loaded(): boolean {
    return this.#files !== undefined;
  }

  /** Whether close() (or delete()) was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Opens a summarized segment's files, once however many reads ask at the
   * same time, and holds them to the summary as open holds a trusted
   * segment: the same size, batches ending where it said (walked from the
   * last index entry), well formed. If not, the .log is scanned: a whole one
   * that agrees only had wrong indexes, which are rebuilt; otherwise the
   * summary's bounds stand and reads refuse the damage where it lies
   * (ECORRUPT naming file and position), serving what lies before it, as
   * for damage the walk does not reach. Resolves at once for a loaded
   * segment and, without opening anything, for a closed one.
   */
  load(): Promise<void> {
    if (this.#files !== undefined || this.#closed) return Promise.resolve();
    this.#loading ??= this.#load().finally(() => (this.#loading = undefined));
    return this.#loading;
  }

  async #load(): Promise<void> {
    const summary = this.#summary!;
    // Opened as a segment of its own and taken over once checked, so that readers never see this one half loaded.
    let opened = await Segment.open(this.dir, this.baseOffset, this.#config, false);
    try {
      if (!agrees(opened, summary) && (await logAgrees(opened, summary))) {
        await opened.close();
        opened = await Segment.open(this.dir, this.baseOffset, this.#config, true);
        // The scan just found the .log whole: only the indexes are rebuilt.
        await opened.recover({ repair: false, cutTail: false });
        await opened.seal();
      }
    } catch (err) {
      await opened.close().catch(() => undefined);
      throw err;
    }
    this.#files = opened.#files;
    this.#offsetOfMaxTimestamp = opened.#offsetOfMaxTimestamp;
    // Size, end and max timestamp stay the summary's (a full time index may not end with the segment's max).
    this.#summary = undefined;
  }

  /** Creates an empty active segment; its files are durable in the directory when this resolves. */
  static async create(dir: string, baseOffset: number, config: SegmentConfig): Promise<Segment> {
    const p = segmentPaths(dir, baseOffset);
    // Stale indexes of an earlier segment at this offset would describe other data.
    await Promise.all([rm(p.index, { force: true }), rm(p.timeIndex, { force: true }), rm(p.txnIndex, { force: true })]);
    const log = await File.open(p.log, { create: true, truncate: true });
    const segment = new Segment(dir, baseOffset, config);
    try {
      segment.#files = { log, ...(await openIndexes(dir, baseOffset, segment.#indexOptions(true))) };
      await fsyncDir(dir);
      return segment;
    } catch (err) {
      // A failed roll must not leak descriptors or mappings, however often it fails.
      await (segment.loaded ? segment.close() : log.close()).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Opens an existing segment. Its indexes are trusted only if they pass their
   * sanity check; otherwise (missing, ill-sized, not monotonic) they are
   * rebuilt from the .log. An inactive segment's indexes stay unmapped until used.
   */
  static async open(dir: string, baseOffset: number, config: SegmentConfig, active: boolean): Promise<Segment> {
    const segment = new Segment(dir, baseOffset, config);
    await segment.#openFiles(active);
    return segment;
  }

  /** open()'s work: on success the files are open and the tail loaded; on failure nothing is left open. */
  async #openFiles(active: boolean): Promise<void> {
    const p = segmentPaths(this.dir, this.baseOffset);
    const [opened, indexes] = await Promise.allSettled([openLogSized(p.log), openIndexes(this.dir, this.baseOffset, this.#indexOptions(active))]);
    if (opened.status === 'rejected') {
      if (indexes.status === 'fulfilled') await closeIndexes(indexes.value).catch(() => undefined);
      throw opened.reason;
    }
    const { log, size } = opened.value;
    this.#size = size;
    try {
      try {
        if (indexes.status === 'rejected') throw indexes.reason;
        this.#files = { log, ...indexes.value };
        this.offsetIndex.sanityCheck(size);
        this.timeIndex.sanityCheck();
        if (!active) {
          this.offsetIndex.release();
          this.timeIndex.release();
        }
      } catch (err) {
        const code = (err as SeglogError).code;
        if (code !== 'ECORRUPT' && code !== 'ENOENT') throw err;
        if (this.#files !== undefined) await closeIndexes(this.#files);
        this.#files = undefined;
        // Derived data, rebuilt from scratch whatever shape the old files had.
        await Promise.all([rm(p.index, { force: true }), rm(p.timeIndex, { force: true })]);
        this.#files = { log, ...(await openIndexes(this.dir, this.baseOffset, this.#indexOptions(true))) };
        await this.#rebuildIndexes(size);
        if (!active) await this.seal();
      }
      await this.#loadTail();
    } catch (err) {
      const files = this.#files;
      this.#files = undefined;
      await (files === undefined ? log.close() : closeFiles(files)).catch(() => undefined);
      throw err;
    }
  }

  #indexOptions(writable: boolean): { maxIndexBytes: number; writable: boolean } {
    return { maxIndexBytes: this.#config.segmentIndexBytes, writable };
  }

  get size(): number {
    return this.#size;
  }

  /** The offset after the last record in this segment (the base offset when empty). */
  get nextOffset(): number {
    return this.#nextOffset;
  }

  /** Largest record timestamp in the segment, -1 when empty. */
  get maxTimestamp(): number {
    return this.#maxTimestamp;
  }

  get firstAppendAt(): number | undefined {
    return this.#firstAppendAt;
  }

  /**
   * Whether, on open, the batches from the last index entry on ran in offset
   * order to exactly the end of the file, that entry pointed at the batch
   * holding its offset, and the time index's last entry lay inside the
   * segment's offsets. False means a torn tail, a misnamed file or an index
   * that passed its sanity check but is wrong: a segment trusted without a
   * scan needs recovery after all.
   */
  /** Batches ending below this offset may follow a gap (a compacted log's cleaned part): what every walk of this segment allows. */
  get gapsBelow(): number {
    return this.#config.gapsBelow?.() ?? 0;
  }

  get wellFormed(): boolean {
    return this.#wellFormed;
  }

  get isEmpty(): boolean {
    return this.#size === 0;
  }

  /** Whether another index entry could be refused: the segment must roll first. */
  get indexesFull(): boolean {
    return this.offsetIndex.isFull || this.timeIndex.isFull;
  }

  /**
   * Reads the batches from the last index entry on to learn nextOffset and
   * the max timestamp of a segment that was not just scanned, and checks
   * what that walk can see (see wellFormed).
   */
  async #loadTail(): Promise<void> {
    const lastTime = this.timeIndex.lastEntry;
    const lastIndexed = this.offsetIndex.lastEntry;
    if (lastTime.timestamp >= 0) {
      this.#maxTimestamp = lastTime.timestamp;
      this.#offsetOfMaxTimestamp = lastTime.offset;
    }
    let indexedHeld = this.offsetIndex.entries === 0;
    const end = await walkBatches(BatchReader.ofFile(this.log, this.#size), {
      from: lastIndexed.position,
      baseOffset: this.baseOffset,
      nextOffset: this.#nextOffset,
      checkCrc: false,
      gapsBelow: this.gapsBelow,
      onBatch: (header, position) => {
        if (position === lastIndexed.position) indexedHeld ||= header.baseOffset <= lastIndexed.offset && lastIndexed.offset <= header.lastOffset;
        if (header.maxTimestamp > this.#maxTimestamp) {
          this.#maxTimestamp = header.maxTimestamp;
          this.#offsetOfMaxTimestamp = header.lastOffset;
        }
        this.#bytesSinceIndexEntry += header.size;
      },
    });
    this.#nextOffset = end.nextOffset;
    const timesInside = this.timeIndex.entries === 0 || lastTime.offset < this.#nextOffset;
    this.#wellFormed = end.position === this.#size && indexedHeld && timesInside;
  }

  /**
   * Appends whole batches (already validated and numbered) at the end of the
   * log with one pwritev, then indexes them. `batches` describe the bytes of
   * `chunks` in order. On failure nothing is indexed and `size` stays put.
   */
  async append(chunks: Uint8Array[], batches: BatchHeader[], now = Date.now()): Promise<void> {
    await this.log.writev(chunks, this.#size);
    this.#appended(batches, now);
  }

  /** append() with the write done on the calling thread (File.writevNow): for small page-cache writes. */
  appendNow(chunks: Uint8Array[], batches: BatchHeader[], now = Date.now()): void {
    this.log.writevNow(chunks, this.#size);
    this.#appended(batches, now);
  }

  /** Indexes batches just written at the end of the log. */
  #appended(batches: BatchHeader[], now: number): void {
    this.#firstAppendAt ??= now;
    let at = this.#size;
    for (const b of batches) {
      this.#indexBatch(b, at);
      at += b.size;
    }
    this.#verified.add(this.#size, at); // batches that passed their CRC on the way in, or that we encoded
    this.#size = at;
  }

  /** Position of the batch holding `offset` (or the first batch after it), or undefined past the end. See segment-reads.ts. */
  locate(offset: number, reader?: BatchReader): Promise<BatchLocation | undefined> {
    return reads.locate(this, offset, reader);
  }

  /** locate() for a point read: one header read where the offset index has an entry for the batch. See segment-reads.ts. */
  locatePoint(offset: number, reader?: BatchReader): Promise<BatchLocation | undefined> {
    return reads.locatePoint(this, offset, reader);
  }

  /** The byte range of whole batches from `from` within `maxBytes` (at least one batch) below `maxOffset`. */
  rangeFrom(from: BatchLocation, maxBytes: number, maxOffset: number, reader?: BatchReader): Promise<{ end: number; nextOffset: number }> {
    return reads.rangeFrom(this, from, maxBytes, maxOffset, reader);
  }

  /** The whole batches in [start, end), each checked (CRC, offsets) before it is served; into `into` when given. */
  readRange(start: number, end: number, into?: Buffer): Promise<Buffer> {
    return reads.readRange(this, start, end, into);
  }

  /** readRange()'s bytes as a checked view of the segment's mapping, when all are in memory; undefined when not. See segment-reads.ts. */
  mapRange(start: number, end: number): Buffer | undefined {
    return reads.mapRange(this, start, end);
  }

  /**
   * [start, end) of the .log (within size) as a view of the segment's
   * private mapping of it, if every page of it is in memory now; undefined
   * if not, and for O_DIRECT files: read it instead, since touching it could
   * wait for the disk. The bytes are not checked. Valid until the segment
   * closes (which waits for pinned reads): for use within a read, never to
   * hand out or write to.
   */
  view(start: number, end: number): Buffer | undefined {
    if (this.log.direct || end <= start) return undefined;
    let m = this.#mapping;
    try {
      if (m === undefined || end > m.length) {
        // Room to grow into, so that the active segment's appends do not each need a new mapping.
        const length = Math.ceil(Math.max(2 * end, 1 << 20) / PAGE_SIZE) * PAGE_SIZE;
        if (m !== undefined) this.#outgrown.push(m);
        m = this.#mapping = this.log.mapPrivate(0, length);
      }
      return m.resident(start, end - start) ? m.buffer.subarray(start, end) : undefined;
    } catch {
      return undefined; // e.g. ENOMEM (too many mappings): the bytes are read instead
    }
  }

  /** A BatchReader of the .log up to size: views of the mapping where in memory (view()), else pread through a buffer of `bufferBytes`. */
  reader(bufferBytes?: number): BatchReader {
    return new BatchReader(new ViewBytes((start, end) => this.view(start, end), this.log, this.#size, bufferBytes));
  }

  /**
   * For sendTo, whose bytes never pass through the process: readRange()'s checks of [start, end) (in the
   * mapping when resident, else read off the event loop), unless every byte was checked since open (by
   * recovery's scan, by the append that wrote it, or by an earlier call). Undefined when done inline.
   */
  checkOnce(start: number, end: number): Promise<void> | undefined {
    if (this.#verified.covers(start, end)) return undefined;
    if (this.mapRange(start, end) === undefined) return this.readRange(start, end).then(() => this.#verified.add(start, end));
    this.#verified.add(start, end);
    return undefined;
  }

  /** readRange()'s checks of bytes read for [start, end) another way (own cache mode). */
  checkRead(bytes: Buffer, start: number, end: number): void {
    reads.checkRead(this, bytes, start, end);
  }

  /** First batch whose max timestamp is >= `timestamp`, or undefined if none. */
  findByTimestamp(timestamp: number): Promise<BatchLocation | undefined> {
    return reads.findByTimestamp(this, timestamp);
  }

  /**
   * Scans every batch, checks size, magic, CRC and offset order, rebuilds both
   * indexes and truncates an invalid tail if `cutTail` (a torn write at the
   * end of the active segment) or `repair`; otherwise reports it in
   * invalidTailAt and leaves the file as it is. Invalid bytes followed by a
   * valid batch are reported in corruptAt instead of being cut, unless `repair`.
   */
  async recover(options: { repair: boolean; cutTail: boolean }): Promise<RecoveryResult> {
    const fileSize = await this.log.size();
    this.offsetIndex.truncateTo(this.baseOffset);
    this.timeIndex.truncateTo(this.baseOffset);
    this.#resetTail();
    const scan = await scanLog(BatchReader.ofFile(this.log, fileSize, 1 << 20), this.baseOffset, (h, position) => this.#indexBatch(h, position), this.gapsBelow);
    const position = scan.validBytes;
    const result: RecoveryResult = { validBytes: position, batches: scan.batches, truncatedBytes: 0 };
    if (scan.corrupt && !options.repair) return { ...result, corruptAt: position, corruptReason: scan.reason! };
    if (position < fileSize) {
      if (!options.repair && !options.cutTail) return { ...result, invalidTailAt: position };
      await this.log.truncate(position);
      result.truncatedBytes = fileSize - position;
    }
    this.#size = position;
    // The scan checked every batch's CRC.
    this.#verified.add(0, position);
    return result;
  }

  /** Rebuilds the indexes from the .log without changing it. */
  async #rebuildIndexes(size: number): Promise<void> {
    this.offsetIndex.truncateTo(this.baseOffset);
    this.timeIndex.truncateTo(this.baseOffset);
    this.#resetTail();
    // Stops at garbage and at offsets out of order (a misnamed file) alike: recovery judges the rest.
    await walkBatches(BatchReader.ofFile(this.log, size, 1 << 20), {
      baseOffset: this.baseOffset,
      checkCrc: false,
      gapsBelow: this.gapsBelow,
      onBatch: (h, position) => this.#indexBatch(h, position),
    });
    // #loadTail will walk from the last entry again; start its counters clean.
    this.#resetTail();
  }

  #resetTail(): void {
    this.#nextOffset = this.baseOffset;
    this.#maxTimestamp = -1;
    this.#offsetOfMaxTimestamp = this.baseOffset;
    this.#bytesSinceIndexEntry = 0;
  }

  #indexBatch(h: BatchHeader, position: number): void {
    if (h.maxTimestamp > this.#maxTimestamp) {
      this.#maxTimestamp = h.maxTimestamp;
      this.#offsetOfMaxTimestamp = h.lastOffset;
    }
    if (this.#bytesSinceIndexEntry > this.#config.indexIntervalBytes && !this.indexesFull) {
      this.offsetIndex.append(h.lastOffset, position);
      this.timeIndex.append(this.#maxTimestamp, this.#offsetOfMaxTimestamp);
      this.#bytesSinceIndexEntry = 0;
    }
    this.#bytesSinceIndexEntry += h.size;
    this.#nextOffset = h.lastOffset + 1;
  }

  /**
   * Drops every batch holding an offset >= `offset`, cutting at the start of
   * the batch that holds it. Returns the new nextOffset.
   */
  async truncateTo(offset: number): Promise<number> {
    const at = await this.locate(offset);
    if (at === undefined) return this.#nextOffset;
    await this.log.truncate(at.position);
    this.#verified.cut(at.position);
    this.offsetIndex.truncateTo(at.header.baseOffset);
    this.timeIndex.truncateTo(at.header.baseOffset);
    this.#size = at.position;
    // Recompute what the removed batches may have contributed.
    this.#resetTail();
    await this.#loadTail();
    return this.#nextOffset;
  }

  /** Called when the segment stops being the active one: the time index ends with the max, indexes shrink to their entries. */
  async seal(): Promise<void> {
    // Kafka ends a sealed time index with the segment's max timestamp (append ignores a non-growing one).
    if (this.#maxTimestamp >= 0 && !this.timeIndex.isFull) this.timeIndex.append(this.#maxTimestamp, this.#offsetOfMaxTimestamp);
    await this.offsetIndex.trim();
    try {
      await this.timeIndex.trim();
    } catch (err) {
      // All or nothing: the segment stays active, so its offset index must take entries again.
      await this.offsetIndex.untrim().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Closes the .log first: that waits for reads pinned on it, which may
   * still use the indexes. A load under way finishes first; a summarized
   * segment never loaded has nothing to close.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#loading?.catch(() => undefined);
    const files = this.#files;
    if (files === undefined) return;
    await files.log.close();
    // Reads are over (close waited for them), and the mappings' views never leave them.
    for (const m of [...this.#outgrown, this.#mapping]) m?.unmap();
    this.#outgrown = [];
    this.#mapping = undefined;
    await Promise.all([files.offsetIndex.close(), files.timeIndex.close()]);
  }

  /** Closes and removes the segment's files. */
  async delete(): Promise<void> {
    await this.close();
    // The transaction index, when the log keeps one for this segment, goes with it.
    await Promise.all(Object.values(segmentPaths(this.dir, this.baseOffset)).map((path) => rm(path, { force: true })));
  }
}
