// A fetch server in the manner of a Kafka broker, and a client that checks it.
//
//   npx tsx examples/fetch-server.ts                 demo: writes a temp log, serves it, runs the
//                                                    client in a child process, exits with its status
//   npx tsx examples/fetch-server.ts --serve [--dir D] [--port P]    serve a log until killed
//   npx tsx examples/fetch-server.ts --client --port P [--host H] [--max-bytes B]
//
// Protocol, all integers big-endian. A request is 12 bytes: offset (i64),
// maxBytes (i32). A response is a 22-byte header: length (i32), error (i16:
// 0 none, 1 offset out of range), nextOffset (i64), endOffset (i64); then
// `length` bytes of whole RecordBatch v2 batches, sent by log.sendTo() with
// sendfile(2). Clients may pipeline requests; responses come in request order.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { stats } from '../src/io.js';
import { BATCH_HEADER_SIZE, Log, checkBatch, decodeBatch } from '../src/seglog.js';

const REQUEST_BYTES = 12;
const HEADER_BYTES = 22;
const ERROR_NONE = 0;
const ERROR_OFFSET_OUT_OF_RANGE = 1;

/** What the demo writes at `offset`: the client checks each record on its own against it. */
function recordValue(offset: number): Buffer {
  const size = 40 + ((offset * 7919) % 400);
  return Buffer.alloc(size, `record ${offset};`);
}

function responseHeader(length: number, error: number, nextOffset: number, endOffset: number): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  h.writeInt32BE(length, 0);
  h.writeInt16BE(error, 4);
  h.writeBigInt64BE(BigInt(nextOffset), 6);
  h.writeBigInt64BE(BigInt(endOffset), 14);
  return h;
}

// ---------------------------------------------------------------- server

interface Served {
  fetches: number;
  bytes: number;
}

function serve(log: Log, port: number): Promise<{ server: net.Server; served: Served }> {
  const served: Served = { fetches: 0, bytes: 0 };
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    // A client that goes away mid-response fails its sendTo; nothing else to do.
    socket.on('error', () => {});
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (; pending.length >= REQUEST_BYTES; pending = pending.subarray(REQUEST_BYTES)) {
        respond(log, socket, Number(pending.readBigInt64BE(0)), pending.readInt32BE(8), served);
      }
    });
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve({ server, served })));
}

function respond(log: Log, socket: net.Socket, offset: number, maxBytes: number, served: Served): void {
  // Checked here rather than by catching sendTo's rejection: the error answer
  // must be written now to keep its place among pipelined responses.
  if (offset < log.startOffset || offset > log.endOffset || maxBytes < 1) {
    socket.write(responseHeader(0, ERROR_OFFSET_OUT_OF_RANGE, offset, log.endOffset));
    return;
  }
  // Not awaited: the next request's response queues behind this one on the socket.
  log
    .sendTo(socket, offset, { maxBytes, prefix: ({ bytes, nextOffset }) => responseHeader(bytes, ERROR_NONE, nextOffset, log.endOffset) })
    .then(({ bytes }) => {
      served.fetches++;
      served.bytes += bytes;
    })
    // sendTo has destroyed the socket: a half-sent response cannot be taken back.
    .catch((err: Error) => console.error(`fetch at ${offset} failed: ${err.message}`));
}

/** Appends `records` records in batches of 50 to 200. */
async function fill(log: Log, records: number): Promise<void> {
  while (log.endOffset < records) {
    const base = log.endOffset;
    const count = Math.min(records - base, 50 + ((base * 31) % 151));
    await log.append(Array.from({ length: count }, (_, i) => ({ key: `key-${base + i}`, value: recordValue(base + i) })));
  }
}

// ---------------------------------------------------------------- client

/** Reads exact byte counts from a socket. */
class SocketReader {
  #chunks: Buffer[] = [];
  #length = 0;
  #wake: (() => void) | undefined;
  #closed: Error | undefined;

  constructor(socket: net.Socket) {
    socket.on('data', (c: Buffer) => {
      this.#chunks.push(c);
      this.#length += c.length;
      this.#wake?.();
    });
    socket.on('close', () => {
      this.#closed = new Error('the server closed the connection');
      this.#wake?.();
    });
  }

  async read(n: number): Promise<Buffer> {
    while (this.#length < n) {
      if (this.#closed !== undefined) throw this.#closed;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
    this.#chunks = all.length > n ? [all.subarray(n)] : [];
    this.#length -= n;
    return all.subarray(0, n);
  }
}

interface Consumed {
  records: number;
  batches: number;
  bytes: number;
  fetches: number;
  endOffset: number;
  problems: string[];
}

/** Fetches everything from offset 0 to the end, checking every batch and record. */
async function consume(host: string, port: number, maxBytes: number): Promise<Consumed> {
  const socket = net.connect(port, host);
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const reader = new SocketReader(socket);
  const request = (offset: number) => {
    const r = Buffer.alloc(REQUEST_BYTES);
    r.writeBigInt64BE(BigInt(offset), 0);
    r.writeInt32BE(maxBytes, 8);
    socket.write(r);
  };
  const c: Consumed = { records: 0, batches: 0, bytes: 0, fetches: 0, endOffset: -1, problems: [] };
  const problem = (p: string) => {
    if (c.problems.length < 10) c.problems.push(p);
  };
  let expected = 0;
  request(0);
  for (;;) {
    const h = await reader.read(HEADER_BYTES);
    const length = h.readInt32BE(0);
    const error = h.readInt16BE(4);
    const nextOffset = Number(h.readBigInt64BE(6));
    c.endOffset = Number(h.readBigInt64BE(14));
    c.fetches++;
    if (error !== ERROR_NONE) {
      problem(`fetch at ${expected}: error ${error}`);
      break;
    }
    // Ask for the next range before reading this one: the server is busy while we check.
    const done = nextOffset >= c.endOffset || length === 0;
    if (!done) request(nextOffset);
    const body = await reader.read(length);
    c.bytes += length;
    for (let p = 0; p < body.length; ) {
      const check = checkBatch(body, p, body.length);
      if (!check.ok) {
        problem(`batch at byte ${p} of the fetch ending at ${nextOffset}: ${check.reason}`);
        break;
      }
      c.batches++;
      for (const r of decodeBatch(body.subarray(p, p + check.header.size))) {
        if (r.offset !== expected) problem(`record ${r.offset} where ${expected} was due`);
        else if (!r.value?.equals(recordValue(r.offset)) || r.key?.toString() !== `key-${r.offset}`) problem(`record ${r.offset} has the wrong key or value`);
        expected = r.offset + 1;
        c.records++;
      }
      p += Math.max(check.header.size, BATCH_HEADER_SIZE);
    }
    if (expected !== nextOffset) problem(`fetch said next offset ${nextOffset}, records ended at ${expected}`);
    if (done) break;
  }
  socket.end();
  if (expected !== c.endOffset) problem(`consumed up to ${expected}, the log ends at ${c.endOffset}`);
  return c;
}

// ---------------------------------------------------------------- main

const { values: args } = parseArgs({
  options: {
    serve: { type: 'boolean', default: false },
    client: { type: 'boolean', default: false },
    dir: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    records: { type: 'string', default: '200000' },
    'max-bytes': { type: 'string', default: String(1 << 20) },
  },
});

if (args.client) {
  const c = await consume(args.host, Number(args.port), Number(args['max-bytes']));
  console.log(
    `client: ${c.records} records in ${c.batches} batches, ${(c.bytes / 2 ** 20).toFixed(1)} MiB in ${c.fetches} fetches; ` +
      `every CRC and record checked: ${c.problems.length === 0 ? 'all intact' : 'PROBLEMS'}`,
  );
  for (const p of c.problems) console.log(`  ${p}`);
  process.exitCode = c.problems.length === 0 && c.records > 0 ? 0 : 1;
} else {
  const temp = args.dir === undefined ? await mkdtemp(join(tmpdir(), 'seglog-fetch-')) : undefined;
  const log = await Log.open(args.dir ?? temp!, { segmentBytes: 8 << 20 });
  if (temp !== undefined) await fill(log, Number(args.records));
  const { server, served } = await serve(log, Number(args.port));
  const { port } = server.address() as net.AddressInfo;
  console.log(`server: ${log.dir}: offsets ${log.startOffset}..${log.endOffset}, ${log.segmentCount} segments, ${(log.size / 2 ** 20).toFixed(1)} MiB; listening on 127.0.0.1:${port}`);
  if (args.serve) {
    process.once('SIGINT', () => server.close());
    await new Promise((resolve) => server.once('close', resolve));
  } else {
    const before = stats().sendfileBytes;
    // The client in its own process, as it would be; it inherits tsx's loader through execArgv.
    const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--client', '--port', String(port), '--max-bytes', args['max-bytes']], {
      stdio: 'inherit',
    });
    const code = await new Promise<number>((resolve) => child.once('exit', (c) => resolve(c ?? 1)));
    const zeroCopy = stats().sendfileBytes - before;
    console.log(`server: ${served.fetches} fetches, ${served.bytes} bytes of batches, ${zeroCopy} of them sent with sendfile(2)`);
    server.close();
    process.exitCode = code === 0 && zeroCopy === served.bytes ? 0 : 1;
  }
  await log.close();
  if (temp !== undefined) await rm(temp, { recursive: true, force: true });
}
