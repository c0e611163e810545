// Snappy in xerial framing, as Kafka's Java client writes it (snappy-java's
// SnappyOutputStream): the 8-byte magic 82 'SNAPPY' 00, two big-endian i32
// versions (1 and 1 in every known writer; not checked, as other Kafka
// readers do not), then blocks, each a big-endian i32 length and that many
// bytes of raw snappy. librdkafka, KafkaJS and seglog write raw snappy with
// no framing; Java readers take both, and so does seglog.

const MAGIC = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);
const HEADER_SIZE = MAGIC.length + 8;

/** True when `data` starts with the xerial magic (raw snappy never does: its first element cannot be a copy). */
export function isXerial(data: Uint8Array): boolean {
  return data.length >= MAGIC.length && MAGIC.equals(data.subarray(0, MAGIC.length));
}

/**
 * The bytes of a xerial stream: each block given to `decompressRaw`, the
 * results joined. Throws a plain Error naming the byte where the framing is
 * wrong (the batch decoder reports it as ECORRUPT).
 */
export function decodeXerial(data: Buffer, decompressRaw: (block: Buffer) => Buffer): Buffer {
  if (data.length < HEADER_SIZE) throw new Error(`xerial snappy header is ${HEADER_SIZE} bytes, only ${data.length} given`);
  const parts: Buffer[] = [];
  let pos = HEADER_SIZE;
  while (pos < data.length) {
    if (data.length - pos < 4) throw new Error(`xerial snappy block length at byte ${pos} is cut off`);
    const length = data.readInt32BE(pos);
    pos += 4;
    if (length <= 0 || length > data.length - pos) throw new Error(`xerial snappy block length ${length} at byte ${pos - 4} is out of range`);
    parts.push(decompressRaw(data.subarray(pos, pos + length)));
    pos += length;
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}
