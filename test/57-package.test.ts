// The package as a dependent project sees it: `seglog` is the broker's face,
// `seglog/io` the raw I/O layer, both through package.json `exports` and the
// built dist/ (which `npm test` rebuilds before vitest runs).
import { execFile } from 'node:child_process';
import { mkdir, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, expect, test } from 'vitest';
import { tempDir } from './helpers/tmp.js';

const root = fileURLToPath(new URL('..', import.meta.url));

function run(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? -1), stdout, stderr });
    });
  });
}

/** A project depending on seglog: node_modules/seglog is a link to this checkout. */
async function dependent(): Promise<string> {
  const dir = await tempDir();
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'broker', private: true, type: 'module', dependencies: { seglog: '*' } }));
  await mkdir(join(dir, 'node_modules'));
  await symlink(root, join(dir, 'node_modules', 'seglog'), 'dir');
  return dir;
}

// A stale dist/ would make every check below test old code.
beforeAll(async () => {
  const src = join(root, 'src');
  for (const path of await readdir(src, { recursive: true })) {
    if (!path.endsWith('.ts')) continue;
    const built = join(root, 'dist', path.replace(/\.ts$/, '.js'));
    const builtAt = await stat(built).then((s) => s.mtimeMs, () => -1);
    if (builtAt < (await stat(join(src, path))).mtimeMs) {
      throw new Error(`dist/ is older than src/${path}: run \`npm run build:ts\` (npm test does it first)`);
    }
  }
});

test("import('seglog') has the log API and none of the raw layer; import('seglog/io') has the raw layer", async () => {
  const dir = await dependent();
  const script = `Promise.all([import('seglog'), import('seglog/io')]).then(([face, io]) =>
    console.log(JSON.stringify({ face: Object.keys(face), io: Object.keys(io) })))`;
  const r = await run(['-e', script], dir);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const { face, io } = JSON.parse(r.stdout) as { face: string[]; io: string[] };

  expect(face).toEqual(expect.arrayContaining(['Log', 'LogStore', 'checkLogName', 'SeglogError', 'encodeBatch', 'sendParts']));
  for (const raw of ['File', 'MappedRegion', 'sendfile', 'stats']) expect(face).not.toContain(raw);
  expect(face.filter((name) => io.includes(name))).toEqual([]);

  expect(io).toEqual(
    expect.arrayContaining(['File', 'MappedRegion', 'allocAligned', 'crc32c', 'sendfile', 'stats', 'PAGE_SIZE', 'OffsetIndex', 'TimeIndex']),
  );
});

test('TypeScript in the dependent project resolves both entry points and their types', async () => {
  const dir = await dependent();
  await writeFile(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: true, typeRoots: [join(root, 'node_modules', '@types')], types: ['node'] },
      files: ['broker.ts'],
    }),
  );
  await writeFile(
    join(dir, 'broker.ts'),
    [
      "import { Log, LogStore, type AppendOptions, type AppendBatchesOptions, type RecordsOptions, type RetentionPolicy } from 'seglog';",
      "import { File, MappedRegion, OffsetIndex, type OpenOptions } from 'seglog/io';",
      '// @ts-expect-error the raw layer is not on the package face',
      "import { File as NotExported } from 'seglog';",
      'export type Used = [Log, LogStore, AppendOptions, AppendBatchesOptions, RecordsOptions, RetentionPolicy, File, MappedRegion, OffsetIndex, OpenOptions, NotExported];',
      '',
    ].join('\n'),
  );
  const r = await run([join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], dir);
  expect(r.stdout + r.stderr).toBe('');
  expect(r.code).toBe(0);
});
