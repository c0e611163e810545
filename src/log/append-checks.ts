// What an append must pass before it is queued, with Kafka's error meanings
// (its LogValidator in small), and the header edits a broker makes to the
// batches it takes (leader epoch, LogAppendTime). A refused append is refused
// whole, before anything is queued.
//
// Costs: a producer's uncompressed batch is walked record by record (length,
// timestamp delta, offset delta: no decode) to check its count and offset
// deltas and, when bounded, its timestamps. A compressed batch is not
// decompressed: its header's count and last offset delta must agree, and its
// baseTimestamp and maxTimestamp stand for its records' timestamps. append()
// encodes its own batch, consistent by construction: only its size, and its
// timestamps when bounded, are checked.
import { SeglogError } from '../errors.js';
import { checkBatch, encodeBatch, readBatchHeader, RecordCursor, recordTimestampRange, stampLogAppendTime, type EncodeOptions, type RecordInput } from '../segment/batch.js';
import { OFF_LEADER_EPOCH, writeI32 } from '../segment/batch-header.js';
import { checkBytes } from '../validate.js';
import { encodeControlBatch, parseControlBatch } from '../segment/control-record.js';
import type { CheckedBatch, PreparedAppend } from './append-queue.js';
import type { AppendMemory } from '../cache/log-cache.js';
import { checkAppendBatchesOptions, checkAppendOptions, checkControlOptions, NEVER, type LogConfig } from './options.js';

/**
 * append(): `records` encoded as one batch into `memory` (with the
 * epoch and LogAppendTime stamp that `options` and `rules` ask for) and
 * checked; a refusal gives the memory back.
 */
export function prepareRecords(records: RecordInput[], options: unknown, compression: string, rules: AppendRules, memory: AppendMemory): PreparedAppend {
  const o = checkAppendOptions(options);
  if (rules.keyed) checkRecordKeys(records);
  const now = o.timestamp ?? Date.now();
  const logAppendTime = rules.logAppendTime ? Date.now() : -1;
  // The base offset is set when its turn comes.
  const encode: EncodeOptions = { baseOffset: 0, compression, now, partitionLeaderEpoch: o.leaderEpoch };
  if (logAppendTime >= 0) encode.logAppendTime = logAppendTime;
  const data = encodeBatch(records, encode, memory.allocate);
  try {
    checkEncodedAppend(data.length, records, now, rules);
  } catch (err) {
    memory.release(data);
    throw err;
  }
  // Just encoded: its header is known good, no need to recompute the CRC.
  return { data, checks: [{ ok: true, header: readBatchHeader(data, 0) }], logAppendTime, producers: false, replication: false };
}

/** appendBatches(): the caller's batches checked, copied into `memory` (the caller may reuse its buffer) and stamped there. */
export function prepareBatches(buffer: Uint8Array, options: unknown, rules: AppendRules, memory: AppendMemory): PreparedAppend {
  checkBytes('buffer', buffer);
  const o = checkAppendBatchesOptions(options);
  const now = Date.now();
  const checks = checkAppendedBatches(buffer, o.replication ? undefined : rules, now);
  const logAppendTime = o.logAppendTime >= 0 || o.replication || !rules.logAppendTime ? o.logAppendTime : now;
  const data = memory.copy(buffer);
  stampBatches(data, checks, o.leaderEpoch, logAppendTime);
  return { data, checks, logAppendTime, producers: checks.some((c) => c.header.producerId >= 0), replication: o.replication };
}

/** appendControl(): the marker encoded as Kafka's control batch into `memory`. */
export function prepareControl(options: unknown, memory: AppendMemory): PreparedAppend {
  const data = encodeControlBatch(checkControlOptions(options), memory.allocate);
  return { data, checks: [{ ok: true, header: readBatchHeader(data, 0) }], logAppendTime: -1, producers: true, replication: false };
}

/** Kafka's RecordBatch.NO_TIMESTAMP: such records are not checked against the bounds. */
const NO_TIMESTAMP = -1;

/** How a log's appends are checked, from its options. */
export interface AppendRules {
  maxMessageBytes: number;
  /** The timestamp bounds apply (CreateTime with a bound set). */
  bounded: boolean;
  beforeMaxMs: number;
  afterMaxMs: number;
  logAppendTime: boolean;
  /** Every record needs a key (a compacted log). */
  keyed: boolean;
}

export function appendRulesOf(config: LogConfig): AppendRules {
  const logAppendTime = config.messageTimestampType === 'LogAppendTime';
  return {
    maxMessageBytes: config.maxMessageBytes,
    bounded: !logAppendTime && (config.messageTimestampBeforeMaxMs !== NEVER || config.messageTimestampAfterMaxMs !== NEVER),
    beforeMaxMs: config.messageTimestampBeforeMaxMs,
    afterMaxMs: config.messageTimestampAfterMaxMs,
    logAppendTime,
    keyed: config.compacted,
  };
}

function keyless(where: string, position: number): SeglogError {
  return new SeglogError('EINVALIDRECORD', `${where} has no key: a compacted log (cleanupPolicy 'compact') takes only keyed records`, { position });
}

/** EINVALIDRECORD unless every record of append() has a key. */
function checkRecordKeys(records: readonly RecordInput[]): void {
  if (!Array.isArray(records)) return; // encodeBatch refuses it with its own TypeError
  records.forEach((r, i) => {
    if (r === null || typeof r !== 'object') return;
    if (r.key === undefined || r.key === null) throw keyless(`record ${i}`, 0);
  });
}

/** EINVALIDRECORD unless every record of the data batch at `position` has a key (decompressed when it must be). */
function checkBatchKeys(buffer: Uint8Array, position: number, h: CheckedBatch['header']): void {
  const cursor = new RecordCursor(Buffer.from(buffer.buffer, buffer.byteOffset + position, h.size), h);
  for (let r = cursor.next(); r !== undefined; r = cursor.next()) {
    if (r.key === null) throw keyless(`record at offset delta ${r.offset - h.baseOffset} of the batch at position ${position}`, position);
  }
}

function tooLarge(size: number, rules: AppendRules, position: number): SeglogError {
  return new SeglogError('ERECORDTOOLARGE', `a batch of ${size} bytes at position ${position} exceeds maxMessageBytes ${rules.maxMessageBytes}`, { position });
}

/** EINVALIDTIMESTAMP unless [min, max] (NaN: no timestamps) lies within the bounds around `now`. */
function checkTimestamps(min: number, max: number, now: number, rules: AppendRules, position: number): void {
  const lowest = now - rules.beforeMaxMs;
  const highest = now + rules.afterMaxMs;
  const bad = min < lowest ? min : max > highest ? max : undefined;
  if (bad === undefined) return;
  throw new SeglogError(
    'EINVALIDTIMESTAMP',
    `timestamp ${bad} of the batch at position ${position} is outside [${lowest}, ${highest}] (messageTimestampBeforeMaxMs / messageTimestampAfterMaxMs around ${now})`,
    { position },
  );
}

/**
 * Checks a buffer of batches: size, magic, CRC and header fields always;
 * with `rules` (a producer's batches) also maxMessageBytes, Kafka's count
 * checks (a count above 0, lastOffsetDelta = count - 1, the records
 * present), the timestamp bounds at `now` and, in a compacted log, a key on
 * every record (a replica's batches were checked by their leader). Throws
 * the first failure.
 */
function checkAppendedBatches(buffer: Uint8Array, rules: AppendRules | undefined, now: number): CheckedBatch[] {
  if (buffer.length === 0) throw new RangeError('buffer holds no batch');
  const checks: CheckedBatch[] = [];
  for (let position = 0; position < buffer.length; ) {
    const c = checkBatch(buffer, position, buffer.length);
    if (!c.ok) throw new SeglogError('ECORRUPT', `invalid batch at position ${position} of the appended buffer: ${c.reason}`, { position });
    if (rules !== undefined) checkProducerBatch(buffer, position, c.header, rules, now);
    if (c.header.control) checkControlBatch(buffer, position, c.header);
    else if (rules?.keyed === true) checkBatchKeys(buffer, position, c.header);
    checks.push(c);
    position += c.header.size;
  }
  return checks;
}

/** ECORRUPT unless the control batch at `position` holds one transaction marker as Kafka writes it, from a producer. */
function checkControlBatch(buffer: Uint8Array, position: number, h: CheckedBatch['header']): void {
  const marker = h.producerId < 0 ? 'a control batch without a producerId' : parseControlBatch(Buffer.from(buffer.buffer, buffer.byteOffset + position, h.size), h);
  if (typeof marker === 'string') throw new SeglogError('ECORRUPT', `control batch at position ${position} of the appended buffer: ${marker}`, { position });
}

function checkProducerBatch(buffer: Uint8Array, position: number, h: CheckedBatch['header'], rules: AppendRules, now: number): void {
  if (h.size > rules.maxMessageBytes) throw tooLarge(h.size, rules, position);
  if (h.recordsCount <= 0 || h.lastOffsetDelta !== h.recordsCount - 1) {
    throw new SeglogError('ECORRUPT', `batch at position ${position} says ${h.recordsCount} records but a last offset delta of ${h.lastOffsetDelta}`, { position });
  }
  let min: number;
  let max: number;
  if (h.compression === 0) {
    try {
      ({ min, max } = recordTimestampRange(Buffer.from(buffer.buffer, buffer.byteOffset + position, h.size), h));
    } catch (err) {
      const e = err as SeglogError;
      if (e.code !== 'ECORRUPT') throw err;
      throw new SeglogError('ECORRUPT', `batch at position ${position} of the appended buffer: ${e.message}`, { position: position + e.position! });
    }
  } else {
    const first = h.timestampType === 'logAppend' ? h.maxTimestamp : h.baseTimestamp;
    min = first === NO_TIMESTAMP ? Number.NaN : first;
    max = h.maxTimestamp === NO_TIMESTAMP ? Number.NaN : h.maxTimestamp;
  }
  if (rules.bounded) checkTimestamps(min, max, now, rules, position);
}

/** append()'s checks of the batch it encoded (`size` bytes) from `records`; `fallback` is the timestamp of records without one. */
function checkEncodedAppend(size: number, records: readonly RecordInput[], fallback: number, rules: AppendRules): void {
  if (size > rules.maxMessageBytes) throw tooLarge(size, rules, 0);
  if (!rules.bounded) return;
  let min = Number.NaN;
  let max = Number.NaN;
  for (const r of records) {
    const t = r.timestamp ?? fallback;
    if (t === NO_TIMESTAMP) continue;
    if (!(t >= min)) min = t;
    if (!(t <= max)) max = t;
  }
  checkTimestamps(min, max, Date.now(), rules, 0);
}

/** Writes `leaderEpoch` (>= 0) into each checked batch of `data` and, when `logAppendTime` >= 0, stamps it LogAppendTime. */
function stampBatches(data: Uint8Array, checks: readonly CheckedBatch[], leaderEpoch: number, logAppendTime: number): void {
  let position = 0;
  for (const { header } of checks) {
    if (leaderEpoch >= 0) {
      writeI32(data, position + OFF_LEADER_EPOCH, leaderEpoch);
      header.partitionLeaderEpoch = leaderEpoch;
    }
    if (logAppendTime >= 0) stampLogAppendTime(data, position, header, logAppendTime);
    position += header.size;
  }
}
