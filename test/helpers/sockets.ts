// Loopback socket pairs for transfer tests: the sending side is what seglog
// writes to; the receiving side starts paused so the socket buffers fill and
// transfers have to wait, and records every byte it reads.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { onTestFinished } from 'vitest';
import { tempDir } from './tmp.js';

export interface Pair {
  /** Client side: what the code under test writes to. */
  sender: net.Socket;
  /** Server side; paused until resume()/readSlowly(). */
  receiver: net.Socket;
  /** Every byte the receiver has read so far. */
  received(): Buffer;
  /** Resolves once the receiver saw end or close. */
  ended: Promise<void>;
  /** Destroys every socket of the group and closes its server (also done when the test finishes). */
  close(): Promise<void>;
}

export interface PairOptions {
  /** Pause the sender before it connects, so Node never reads from it. */
  senderIdle?: boolean;
  /** A TLS connection (the receiver then reads from the start: the handshake needs it). */
  tls?: { key: Buffer; cert: Buffer };
  /**
   * Unix domain sockets instead of loopback TCP. Their buffers are small and
   * fixed (about 256 KiB a connection, against the ~4 MiB a paused loopback
   * TCP connection absorbs), so transfers meet full sockets at small sizes.
   */
  unix?: boolean;
}

function closed(socket: net.Socket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

/** `count` connected pairs behind one server, torn down when the test finishes. */
export async function socketPairs(count: number, options: PairOptions = {}): Promise<Pair[]> {
  // Connections are made one at a time, so the server accepts them in the same order.
  const accepted: net.Socket[] = [];
  const waiting: Array<(s: net.Socket) => void> = [];
  const onSocket = (s: net.Socket) => {
    s.on('error', () => {});
    const w = waiting.shift();
    if (w !== undefined) w(s);
    else accepted.push(s);
  };
  const server = options.tls
    ? tls.createServer({ key: options.tls.key, cert: options.tls.cert }, onSocket)
    : net.createServer({ pauseOnConnect: true }, onSocket);
  const path = options.unix ? join(await tempDir(), 'socket') : undefined;
  await new Promise<void>((resolve) => (path === undefined ? server.listen(0, '127.0.0.1', resolve) : server.listen(path, resolve)));
  const all: net.Socket[] = [];
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      for (const s of all) s.destroy();
      await Promise.all(all.map(closed));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    })());
  onTestFinished(close);
  const port = path === undefined ? (server.address() as net.AddressInfo).port : 0;
  const connect = (): net.Socket => {
    if (options.tls) return tls.connect({ port, host: '127.0.0.1', ca: options.tls.cert, servername: 'localhost' });
    const s = path === undefined ? net.connect(port, '127.0.0.1') : net.connect(path);
    if (options.senderIdle) s.pause();
    return s;
  };
  const pairs: Pair[] = [];
  for (let i = 0; i < count; i++) {
    const sender = connect();
    all.push(sender);
    // Failures are checked through what the code under test reports.
    sender.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      sender.once(options.tls ? 'secureConnect' : 'connect', resolve);
      sender.once('error', reject);
    });
    const receiver = accepted.shift() ?? (await new Promise<net.Socket>((resolve) => waiting.push(resolve)));
    all.push(receiver);
    // pause() first: a 'data' listener on a stream never paused would start the flow.
    if (!options.tls) receiver.pause();
    const chunks: Buffer[] = [];
    receiver.on('data', (c: Buffer) => chunks.push(c));
    const ended = new Promise<void>((resolve) => {
      receiver.once('end', resolve);
      receiver.once('close', resolve);
    });
    pairs.push({ sender, receiver, received: () => Buffer.concat(chunks), ended, close });
  }
  return pairs;
}

export async function socketPair(options?: PairOptions): Promise<Pair> {
  return (await socketPairs(1, options))[0]!;
}

/** Reads one chunk per event-loop turn, so the sender keeps meeting a full socket. */
export function readSlowly(pair: Pair): void {
  pair.receiver.on('data', () => {
    pair.receiver.pause();
    setImmediate(() => pair.receiver.resume());
  });
  pair.receiver.resume();
}

// Waiting for a condition driven by I/O: one helper for the whole suite (helpers/until.ts).
export { until } from './until.js';

/** A few loop turns: Node closes a destroyed socket's fd and a server's handle asynchronously. */
export async function turns(n = 3): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Settles `p` without throwing, so a test can inspect the rejection. */
export async function failure<E = Error & { code?: string; bytesSent?: number }>(p: Promise<unknown>): Promise<E> {
  const r = await p.then(
    (v) => ({ ok: true as const, v }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  if (r.ok) throw new Error(`expected a rejection, got ${String(r.v)}`);
  return r.e as E;
}

/** A self-signed certificate for localhost, made with openssl in a temp dir. */
export async function selfSignedCert(): Promise<{ key: Buffer; cert: Buffer }> {
  const dir = await tempDir();
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  const args = ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost', '-days', '1', '-keyout', key, '-out', cert];
  try {
    await promisify(execFile)('openssl', args);
  } catch (err) {
    // Not a skip: the TLS fallback must be tested, and CI must say why it could not be.
    throw new Error(`openssl could not make a test certificate (install openssl): ${(err as Error).message}`);
  }
  return { key: await readFile(key), cert: await readFile(cert) };
}
