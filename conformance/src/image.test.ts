import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveImageFsInfo } from './harness/image-fs-info.js';
import { freePort } from './harness/krill-process.js';

/**
 * The `krill` image (issue 5 §3) without a container engine: scripts/image-layout.sh assembles
 * the tree that the Dockerfile's build stage makes and its final stage copies over `/`, here into
 * a temporary directory, offline, from the installed node_modules and the built dist/ (npm test
 * builds first). Everything below runs krill from that tree alone, and reads the Dockerfile for
 * the parts of the image that only an engine could show (stages, base images, user).
 */
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const WORKSPACES = ['lib', 'proto', 'cluster-services', 'cri-proxy', 'node-daemon', 'cli', 'conformance'];

let work: string;
/** The layout's root (the image's `/`) and its /opt/krill. */
let out: string;
let opt: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'krill-image-'));
  out = join(work, 'root');
  opt = join(out, 'opt/krill');
  execFileSync('bash', [join(REPO, 'scripts/image-layout.sh'), out], { stdio: 'pipe', timeout: 120_000 });
  const mb = (args: string[]) => execFileSync('du', ['-sm', ...args], { encoding: 'utf8' }).split('\t')[0];
  // What the image adds to its base: on disk, as bytes (close to the uncompressed layer), and
  // gzipped as a registry stores the layer.
  const gzipped = Number(execFileSync('bash', ['-c', 'tar -C "$1" -cf - . | gzip -6 | wc -c', '-', out], { encoding: 'utf8' }));
  console.log(`image layout: /opt/krill ${mb([opt])} MB on disk, ${mb(['--apparent-size', opt])} MB of bytes; `
    + `node_modules ${mb([join(opt, 'node_modules')])} MB; the layer gzipped ${Math.round(gzipped / 1e6)} MB`);
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Runs a program with an environment that cannot reach the checkout (no NODE_PATH), from the layout. */
function run(file: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  const clean = { PATH: process.env['PATH'], HOME: work, TMPDIR: work, ...env };
  return new Promise((resolve) => {
    execFile(file, args, { env: clean, cwd: out, timeout: 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout, err: stderr });
    });
  });
}
const krill = (args: string[]) => run(process.execPath, [join(opt, 'cli/bin/krill.js'), ...args]);

/** Every file under dir (relative paths), not following symlinks. */
function files(dir: string): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else found.push(relative(dir, p));
    }
  };
  walk(dir);
  return found;
}

describe('image layout', () => {
  it('holds the launcher on PATH, the compiled workspaces, the .proto files and the node install script', async () => {
    // The pods run `krill <component>`: /usr/local/bin/krill is the launcher.
    expect(readlinkSync(join(out, 'usr/local/bin/krill'))).toBe('/opt/krill/cli/bin/krill.js');
    expect(statSync(join(opt, 'cli/bin/krill.js')).mode & 0o111).toBe(0o111);
    for (const ws of WORKSPACES) {
      expect(existsSync(join(opt, ws, 'package.json')), ws).toBe(true);
      expect(existsSync(join(opt, ws, 'dist/index.js')), ws).toBe(true);
    }
    expect(existsSync(join(opt, 'proto/krill/p2p/v1/wire.proto'))).toBe(true);
    expect(existsSync(join(opt, 'proto/k8s.io/cri-api/pkg/apis/runtime/v1/api.proto'))).toBe(true);
    // The node DaemonSet's node-install container runs it from here.
    const script = join(opt, 'install/node/krill-node-install.sh');
    expect(readFileSync(script, 'utf8')).toBe(readFileSync(join(REPO, 'install/node/krill-node-install.sh'), 'utf8'));
    const syntax = await run('bash', ['-n', script]);
    expect(syntax.code, syntax.err).toBe(0);
  });

  it('has no dev dependencies, tests, TypeScript or links out of the tree', () => {
    for (const dev of ['typescript', 'vitest', '@vitest', 'vite', '@types']) expect(existsSync(join(opt, 'node_modules', dev)), dev).toBe(false);
    const ours = WORKSPACES.flatMap((ws) => files(join(opt, ws)).filter((f) => !f.startsWith('node_modules/')).map((f) => `${ws}/${f}`));
    expect(ours.filter((f) => /\.test\.js$|\.ts$|\.map$|tsbuildinfo$/.test(f))).toEqual([]);
    expect(ours.filter((f) => f.includes('/src/'))).toEqual([]);
    // Every link stays inside /opt/krill (npm's relative workspace links), so the tree works wherever it is copied.
    const links = files(opt).filter((f) => lstatSync(join(opt, f)).isSymbolicLink());
    expect(links.length).toBeGreaterThanOrEqual(WORKSPACES.length);
    for (const l of links) expect(relative(opt, realpathSync(join(opt, l))).startsWith('..'), l).toBe(false);
  });

  it('is readable by the cluster services\' uid and writable by root only', () => {
    const wrong: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isSymbolicLink()) continue;
        const mode = lstatSync(p).mode;
        const others = e.isDirectory() ? 0o005 : 0o004;
        if ((mode & others) !== others || (mode & 0o022) !== 0) wrong.push(`${relative(opt, p)} ${(mode & 0o777).toString(8)}`);
        if (e.isDirectory()) walk(p);
      }
    };
    walk(opt);
    expect(wrong).toEqual([]);
  });

  it('resolves every production dependency of every workspace inside the tree', () => {
    for (const ws of WORKSPACES) {
      const deps = Object.keys((JSON.parse(readFileSync(join(opt, ws, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> }).dependencies ?? {});
      for (const dep of deps.filter((d) => !d.startsWith('@types/'))) {
        const found = [join(opt, ws, 'node_modules', dep), join(opt, 'node_modules', dep)].some((d) => existsSync(join(d, 'package.json')));
        expect(found, `${ws} -> ${dep}`).toBe(true);
      }
    }
  });

  it('krill --help lists every component', async () => {
    const r = await krill(['--help']);
    expect(r.code, r.err).toBe(0);
    for (const c of ['origin', 'tracker', 'build-index', 'proxy', 'agent', 'node', 'manifests', 'cri']) expect(r.out).toMatch(new RegExp(`^  ${c} `, 'm'));
  });

  it('krill manifests renders install/kubernetes/krill.yaml', async () => {
    const r = await krill(['manifests']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe(readFileSync(join(REPO, 'install/kubernetes/krill.yaml'), 'utf8'));
  });

  it('loads the compiled better-sqlite3 addon', async () => {
    const code = `const D = require(${JSON.stringify(join(opt, 'node_modules/better-sqlite3'))}); const db = new D(':memory:');
      process.stdout.write(db.prepare('select 41 + 1 as v').get().v + ' ' + db.prepare('select sqlite_version() as v').get().v); db.close();`;
    const r = await run(process.execPath, ['-e', code]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^42 3\.\d+\.\d+$/);
  });

  it('runs a component: krill build-index on its SQLite file answers /ready', async () => {
    const dir = join(work, 'build-index');
    mkdirSync(dir);
    const port = await freePort();
    const config = join(dir, 'build-index.yaml');
    writeFileSync(config, JSON.stringify({ listen: { host: '127.0.0.1', port }, db: join(dir, 'tags.db'), origins: { urls: ['http://127.0.0.1:9'] } }));
    const child = spawn(process.execPath, [join(opt, 'cli/bin/krill.js'), 'build-index', '--config', config], { cwd: out, env: { PATH: process.env['PATH'], TMPDIR: dir }, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.on('data', (b: Buffer) => { log += b; });
    child.stderr.on('data', (b: Buffer) => { log += b; });
    const exited = new Promise<number | string>((resolve) => child.once('exit', (code, sig) => resolve(sig ?? code ?? -1)));
    try {
      let status = 0;
      const deadline = Date.now() + 20_000;
      while (status !== 200 && child.exitCode === null && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        status = await fetch(`http://127.0.0.1:${port}/ready`, { signal: AbortSignal.timeout(1000) }).then((res) => res.status, () => 0);
      }
      expect(status, log).toBe(200);
      expect(existsSync(join(dir, 'tags.db'))).toBe(true);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited, log).toBe(0);
  });

  it('krill cri imagefsinfo (what the node install script checks) answers from the layout', async () => {
    const socket = join(work, 'cri.sock');
    const server = await serveImageFsInfo(socket, '/var/lib/containerd');
    try {
      const ok = await krill(['cri', '--socket', socket, 'imagefsinfo']);
      expect(ok.code, ok.err).toBe(0);
      const dead = await krill(['cri', '--socket', join(work, 'none.sock'), 'imagefsinfo', '--timeout-ms', '1000']);
      expect(dead.code).toBe(1);
      expect(dead.err).toContain('UNAVAILABLE');
    } finally {
      server.forceShutdown();
    }
  });
});

/** The Dockerfile's stages, with the global ARGs' defaults substituted. */
interface Stage { from: string; name?: string; lines: string[] }
function dockerfileStages(text: string): Stage[] {
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  const expand = (s: string) => s.replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, a: string | undefined, b: string | undefined) => args[(a ?? b)!] ?? '');
  // Instructions, with backslash continuations joined and comments dropped.
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  for (const line of lines) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$/i.exec(line);
    if (from) {
      stages.push({ from: expand(from[1]!), ...(from[2] ? { name: from[2] } : {}), lines: [] });
    } else if (stages.length === 0) {
      const arg = /^ARG\s+(\w+)(?:=(.*))?$/i.exec(line);
      if (arg) args[arg[1]!] = expand(arg[2] ?? '');
    } else {
      stages.at(-1)!.lines.push(line);
    }
  }
  return stages;
}

describe('Dockerfile', () => {
  const stages = dockerfileStages(readFileSync(join(REPO, 'Dockerfile'), 'utf8'));
  const build = stages[0]!;
  const runtime = stages.at(-1)!;

  it('builds in a full Node image and runs in the slim one of the same Node release and Debian release', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const image = (s: Stage) => /^node:(20\.\d+\.\d+)-(\w+)(-slim)?$/.exec(s.from);
    const [b, r] = [image(build), image(runtime)];
    expect(b, build.from).not.toBeNull();
    expect(r, runtime.from).not.toBeNull();
    expect(b![1]).toBe(r![1]);
    expect(b![2]).toBe(r![2]);
    expect(b![3]).toBeUndefined();
    expect(r![3]).toBe('-slim');
  });

  it('assembles the layout in the build stage with the script this test runs, and copies it into the final stage', () => {
    expect(build.lines.some((l) => /^RUN .*npm ci\b/.test(l))).toBe(true);
    expect(build.lines.some((l) => /^RUN .*bash scripts\/image-layout\.sh \/out\b/.test(l))).toBe(true);
    expect(runtime.lines).toContain(`COPY --from=${build.name} /out/ /`);
  });

  it('runs as uid 65532, the cluster services\' user, and starts krill', () => {
    const user = runtime.lines.filter((l) => /^USER\s/.test(l)).at(-1);
    expect(user).toMatch(/^USER 65532(:65532)?$/);
    expect(runtime.lines.some((l) => /useradd .*--uid 65532\b/.test(l))).toBe(true);
    expect(runtime.lines).toContain('ENTRYPOINT ["krill"]');
  });
});

describe('npm run images', () => {
  /** A PATH holding only node, timeout and the given stand-ins, so no real builder is found. */
  function fakePath(name: string, standIns: Record<string, string>): string {
    const bin = join(work, name);
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    symlinkSync(execFileSync('bash', ['-c', 'command -v timeout'], { encoding: 'utf8' }).trim(), join(bin, 'timeout'));
    for (const [tool, body] of Object.entries(standIns)) writeFileSync(join(bin, tool), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return bin;
  }
  const images = (bin: string, args: string[] = []) => run('/bin/bash', [join(REPO, 'scripts/images.sh'), ...args], { PATH: bin });

  it('exits 2 naming what it looked for when docker has no engine and there is no podman or buildah', async () => {
    const r = await images(fakePath('no-engine', { docker: 'echo "Cannot connect to the Docker daemon" >&2; exit 1' }));
    expect(r.code).toBe(2);
    expect(r.err).toContain('docker (present, but `docker info` failed');
    expect(r.err).toContain('podman and buildah');
  });

  it('builds krill:<version> from the Dockerfile with docker when its engine answers, and prints the size', async () => {
    const calls = join(work, 'docker-calls');
    const bin = fakePath('docker-engine', {
      docker: `echo "$*" >>'${calls}'\ncase $1 in image) echo 300000000 ;; esac\nexit 0`,
    });
    const r = await images(bin);
    expect(r.code, r.err).toBe(0);
    const version = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
    const root = dirname(join(REPO, 'Dockerfile'));
    expect(readFileSync(calls, 'utf8').trim().split('\n')).toEqual([
      'info',
      `build --file ${join(REPO, 'Dockerfile')} --tag krill:${version} ${root}`,
      `image inspect --format {{.Size}} krill:${version}`,
    ]);
    expect(r.out).toContain(`built krill:${version}: 300000000 bytes (300 MB) uncompressed`);
  });
});
