// scripts/check-imports.mjs (run by `npm test`) must be able to fail: on a
// small src/ tree it passes while layered, then reports a cycle and a
// forbidden import once they are added.
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';
import { tempDir } from './helpers/tmp.js';

const checker = fileURLToPath(new URL('../scripts/check-imports.mjs', import.meta.url));

function check(root: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [checker, root], (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? -1), output: stdout + stderr });
    });
  });
}

async function write(root: string, files: Record<string, string>): Promise<void> {
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, 'src', path)), { recursive: true });
    await writeFile(join(root, 'src', path), text);
  }
}

test('a layered tree passes; a cycle and a log -> store import are both reported', async () => {
  const root = await tempDir();
  await write(root, {
    'errors.ts': 'export class E extends Error {}\n',
    'native.ts': "import { E } from './errors.js';\nexport const n = new E();\n",
    'store/store.ts': "import { L } from '../log/log.js';\nexport const s = L;\n",
    'log/log.ts': "import type { E } from '../errors.js';\nexport const L = 1 as unknown as E;\n",
    'cache/group.ts': 'export const g = 1;\n',
    'cache/own-cache.ts': "import { g } from './group.js';\nexport const o = g;\n",
  });
  const clean = await check(root);
  expect(clean.output).toContain('is layered as the rules say');
  expect(clean.code).toBe(0);

  await write(root, {
    // A type-only import and a re-export: both are edges.
    'log/log.ts': "import type { Checkpoint } from '../store/checkpoint.js';\nexport const L = 1 as unknown as Checkpoint;\n",
    'store/checkpoint.ts': 'export type Checkpoint = number;\n',
    'cache/group.ts': "export { o } from './own-cache.js';\nexport const g = 1;\n",
  });
  const broken = await check(root);
  expect(broken.code).toBe(1);
  expect(broken.output).toContain('2 problem(s)');
  expect(broken.output).toContain('cycle: cache/group.ts -> cache/own-cache.ts -> cache/group.ts');
  expect(broken.output).toContain('log/log.ts imports store/checkpoint.ts: log/ may not import store/');
});
