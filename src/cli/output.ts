// Output helpers of the seglog CLI: buffered stdout that honours backpressure
// (dumps can be large and piped into `head`), and how bytes are printed.

/** Collects lines and writes them to stdout in large chunks, waiting when the pipe is full. */
export class Printer {
  #chunk: string[] = [];
  #size = 0;

  async line(text: string): Promise<void> {
    this.#chunk.push(text, '\n');
    this.#size += text.length + 1;
    if (this.#size >= 64 * 1024) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.#chunk.length === 0) return;
    const text = this.#chunk.join('');
    this.#chunk = [];
    this.#size = 0;
    if (!process.stdout.write(text)) await new Promise<void>((resolve) => process.stdout.once('drain', resolve));
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Text as it is when it is printable UTF-8, else hex (`0x...`), so output stays one line per record. */
export function printable(bytes: Buffer | null): string {
  if (bytes === null) return 'null';
  try {
    const text = utf8.decode(bytes);
    if (!/[\u0000-\u0008\u000a-\u001f\u007f]/.test(text)) return text;
  } catch {
    // Not UTF-8: hex below.
  }
  return `0x${bytes.toString('hex')}`;
}
