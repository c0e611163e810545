// `seglog dump <file>`: prints the batches (and with --records, the records)
// of a .log, or the entries of a .index / .timeindex, in the layout of
// Kafka's kafka-dump-log.sh (DumpLogSegments) so that the two can be compared:
// a tombstone is a record of valueSize -1, a batch a compaction pass first
// cleaned shows its delete horizon.
import { basename, dirname } from 'node:path';
import { isZeroEntry, offsetEntry, timeEntry } from '../index/entries.js';
import { DELETED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, parseSegmentFileName, TIME_INDEX_SUFFIX, type SegmentFileKind } from '../layout.js';
import { File } from '../native.js';
import { BatchReader } from '../segment/batch-reader.js';
import { walkBatches } from '../segment/batch-walk.js';
import { decodeBatch, type BatchHeader } from '../segment/batch.js';
import { deleteHorizonOf } from '../segment/batch-filter.js';
import { CleanedPoint } from '../log/cleaned-point.js';
import { KAFKA_CODEC_NAMES, type CodecId } from '../segment/codecs.js';
import { printable, type Printer } from './output.js';

export interface DumpOptions {
  /** Print every record's metadata (Kafka's --deep-iteration). */
  records: boolean;
  /** Print keys and values too (implies records). */
  data: boolean;
}

/** What a file name says: its kind by suffix and, for a segment file name, its base offset. */
function segmentFileKind(path: string): { kind: SegmentFileKind; baseOffset: number | undefined } | undefined {
  const name = basename(path);
  const segment = parseSegmentFileName(name);
  if (segment !== undefined) return { kind: segment.kind, baseOffset: Number.isNaN(segment.baseOffset) ? undefined : segment.baseOffset };
  // Any other name with a segment suffix is dumped too, offsets relative to 0.
  const bare = name.endsWith(DELETED_SUFFIX) ? name.slice(0, -DELETED_SUFFIX.length) : name;
  if (bare.endsWith(LOG_SUFFIX)) return { kind: 'log', baseOffset: undefined };
  if (bare.endsWith(TIME_INDEX_SUFFIX)) return { kind: 'timeindex', baseOffset: undefined };
  if (bare.endsWith(INDEX_SUFFIX)) return { kind: 'index', baseOffset: undefined };
  return undefined;
}

/** Dumps `path`; returns false when it holds invalid data. */
export async function dump(path: string, options: DumpOptions, out: Printer): Promise<boolean> {
  const what = segmentFileKind(path);
  if (what === undefined || what.kind === 'txnindex') throw new RangeError(`${path}: not a .log, .index or .timeindex file`);
  const file = await File.open(path);
  try {
    await out.line(`Dumping ${path}`);
    if (what.baseOffset === undefined && what.kind !== 'log') {
      await out.line(`(no base offset in the file name: offsets are shown relative to 0)`);
    }
    const base = what.baseOffset ?? 0;
    if (what.kind === 'log') {
      // A compacted log's cleaned batches leave gaps below its cleaned point, as the log's own walks allow.
      const gapsBelow = (await CleanedPoint.read(dirname(path)).catch(() => undefined))?.offset ?? 0;
      return await dumpLog(file, base, gapsBelow, options, out);
    }
    return await dumpIndex(file, base, what.kind, out);
  } finally {
    await file.close();
  }
}

async function dumpLog(file: File, baseOffset: number, gapsBelow: number, options: DumpOptions, out: Printer): Promise<boolean> {
  const size = await file.size();
  const reader = BatchReader.ofFile(file, size, 1 << 20);
  await out.line(`Log starting offset: ${baseOffset}`);
  const print = async (h: BatchHeader, position: number): Promise<void> => {
    await out.line(batchLine(h, position, true));
    if (options.records || options.data) await dumpRecords(reader, h, position, options.data, out);
  };
  let valid = true;
  let from = 0;
  let nextOffset = baseOffset;
  for (;;) {
    const stop = await walkBatches(reader, { from, baseOffset, nextOffset, checkCrc: true, gapsBelow, onBatch: print });
    if (stop.reason === undefined) return valid;
    let header = stop.misplaced;
    if (header !== undefined) {
      // A whole, valid batch: shown as is, offsets out of place or not (that is verify's business).
      await print(header, stop.position);
    } else {
      valid = false;
      // A batch whose size is sane but whose content is not: show it and go on, as Kafka does.
      const check = stop.reason === 'crc' || stop.reason === 'records' ? await reader.checkHeader(stop.position) : undefined;
      if (check === undefined || !check.ok) {
        await out.line(`Found ${size - stop.position} invalid bytes at position ${stop.position} to the end of ${file.path} (${stop.reason})`);
        return valid;
      }
      header = check.header;
      await out.line(`${batchLine(header, stop.position, false)} reason: ${stop.reason}`);
    }
    from = stop.position + header.size;
    nextOffset = Math.max(stop.nextOffset, header.lastOffset + 1);
  }
}

function timeLabel(h: BatchHeader): string {
  return h.timestampType === 'logAppend' ? 'LogAppendTime' : 'CreateTime';
}

function batchLine(h: BatchHeader, position: number, valid: boolean): string {
  const codec = h.compression === 0 ? 'none' : (KAFKA_CODEC_NAMES[h.compression as CodecId] ?? `unknown(${h.compression})`);
  const lastSequence = h.baseSequence < 0 ? -1 : h.baseSequence + h.lastOffsetDelta;
  const horizon = deleteHorizonOf(h);
  return (
    `baseOffset: ${h.baseOffset} lastOffset: ${h.lastOffset} count: ${h.recordsCount} baseSequence: ${h.baseSequence} lastSequence: ${lastSequence} ` +
    `producerId: ${h.producerId} producerEpoch: ${h.producerEpoch} partitionLeaderEpoch: ${h.partitionLeaderEpoch} ` +
    `isTransactional: ${h.transactional} isControl: ${h.control} deleteHorizonMs: ${horizon === undefined ? 'OptionalLong.empty' : `OptionalLong[${horizon}]`} ` +
    `position: ${position} ${timeLabel(h)}: ${h.maxTimestamp} ` +
    `size: ${h.size} magic: ${h.magic} compresscodec: ${codec} crc: ${h.crc} isvalid: ${valid}`
  );
}

async function dumpRecords(reader: BatchReader, h: BatchHeader, position: number, data: boolean, out: Printer): Promise<void> {
  let records;
  try {
    records = decodeBatch(await reader.bytes(position, h.size));
  } catch (err) {
    await out.line(`| cannot decode the records: ${(err as Error).message}`);
    return;
  }
  for (const r of records) {
    const sequence = h.baseSequence < 0 ? -1 : h.baseSequence + (r.offset - h.baseOffset);
    let line =
      `| offset: ${r.offset} ${timeLabel(h)}: ${r.timestamp} keySize: ${r.key === null ? -1 : r.key.length} ` +
      `valueSize: ${r.value === null ? -1 : r.value.length} sequence: ${sequence} headerKeys: [${r.headers.map((x) => x.key).join(',')}]`;
    if (data) line += `${r.key === null ? '' : ` key: ${printable(r.key)}`} payload: ${printable(r.value)}`;
    await out.line(line);
  }
}

async function dumpIndex(file: File, baseOffset: number, kind: 'index' | 'timeindex', out: Printer): Promise<boolean> {
  const entrySize = kind === 'index' ? offsetEntry.bytes : timeEntry.bytes;
  const size = await file.size();
  const buf = Buffer.alloc(size);
  const n = await file.read(buf, 0);
  const entries = Math.floor(n / entrySize);
  for (let i = 0; i < entries; i++) {
    // An all-zero entry after the first is preallocated room (an index not trimmed by a clean close).
    if (i > 0 && isZeroEntry(buf, i, entrySize)) {
      await out.line(`(${entries - i} zero entries from byte ${i * entrySize}: preallocated, not yet trimmed)`);
      break;
    }
    if (kind === 'index') {
      await out.line(`offset: ${baseOffset + offsetEntry.relativeOffset(buf, i)} position: ${offsetEntry.position(buf, i)}`);
    } else {
      const timestamp = timeEntry.timestamp(buf, i);
      await out.line(`timestamp: ${Number.isNaN(timestamp) ? '(not a safe integer)' : timestamp} offset: ${baseOffset + timeEntry.relativeOffset(buf, i)}`);
    }
  }
  if (n % entrySize !== 0) {
    await out.line(`Found ${n % entrySize} trailing bytes at position ${entries * entrySize}: not a whole ${entrySize}-byte entry`);
    return false;
  }
  return true;
}
