import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildCriImage, refBaseName, writeOciArchive } from '../fixtures/cri-images.js';
import { createCriClient } from './cri-client.js';

const run = promisify(execFile);
/** containerd opens its socket in well under a second here; the bound covers a loaded machine. */
const READY_TIMEOUT_MS = 20_000;
/** A pull of a test image takes seconds; a hung one fails the test rather than the suite. */
const CTR_TIMEOUT_MS = 150_000;
/** CRI learns of an imported image from an event, within milliseconds (containerd-compat.md §2). */
const CRI_SEES_IMAGE_TIMEOUT_MS = 10_000;
/** containerd stops its plugins and shims within a second or two; past this it is killed. */
const STOP_TIMEOUT_MS = 10_000;
/** The repository root, from src/harness or dist/harness alike. */
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/**
 * Where every registry goes unless `mirrors` names it: a closed loopback port (port 1, tcpmux,
 * which nothing here serves), so a stray pull fails at once with "connection refused" and no
 * request ever leaves the machine.
 */
export const CLOSED_REGISTRY = 'http://127.0.0.1:1';

export type ContainerdVersion = '1.6' | '1.7' | '2.1';

/** One containerd build on this machine. */
export interface ContainerdBinaries {
  version: ContainerdVersion;
  /** What `containerd --version` says, e.g. `1.7.24~ds1`. */
  release: string;
  bin: string;
  ctr: string;
  /** The directory of this version's `containerd-shim-runc-v2`, put first on containerd's PATH. */
  shimDir: string;
}

/** Debian's 1.6 is installed; scripts/fetch-containerd.sh unpacks trixie's 1.7 and sid's 2.1. */
const BIN_DIRS = ['/usr/bin', ...['trixie', 'sid'].map((c) => join(REPO_ROOT, '.krill', 'containerd', c, 'usr', 'bin'))];
const VERSIONS: readonly ContainerdVersion[] = ['1.6', '1.7', '2.1'];

/**
 * The containerd versions present, each once, oldest first; the version comes from the binary's
 * own `--version` ("containerd github.com/containerd/containerd[/v2] 2.1.9+unknown …").
 */
export function availableContainerds(): ContainerdBinaries[] {
  const found = new Map<ContainerdVersion, ContainerdBinaries>();
  for (const dir of BIN_DIRS) {
    const bin = join(dir, 'containerd');
    if (!existsSync(bin) || !existsSync(join(dir, 'ctr'))) continue;
    const release = execFileSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 }).trim().split(/\s+/)[2] ?? '';
    const version = /^(\d+\.\d+)\./.exec(release)?.[1] as ContainerdVersion | undefined;
    if (version && VERSIONS.includes(version) && !found.has(version)) found.set(version, { version, release, bin, ctr: join(dir, 'ctr'), shimDir: dir });
  }
  return VERSIONS.flatMap((v) => found.get(v) ?? []);
}

export interface CriOptions {
  /** The CRI's snapshotter (and 2.1's transfer-service unpack target); default `native`. */
  snapshotter?: 'native' | 'overlayfs';
  /** The sandbox (pause) image's reference, built locally and imported at start; default `krill.test/pause:1`. */
  sandboxImage?: string;
  /** Registry host (`host[:port]`, as in image references) → the plain-http URL that serves it. */
  mirrors?: Record<string, string>;
}

export interface ContainerdOptions {
  /** Everything containerd keeps (root, state, socket, config, certs.d, runc state, log) goes here. */
  dir: string;
  /** Default 1.6 (Debian bookworm's, in /usr/bin). */
  version?: ContainerdVersion;
  /** Enables the CRI plugin; without it the CRI is disabled. */
  cri?: CriOptions;
  /** Runs containerd inside this network namespace (a lab host's, `ip netns exec`); its socket stays reachable here. */
  netns?: string;
}

export interface Containerd {
  /** The unix socket of its gRPC API (and, with `cri`, of the CRI). */
  socket: string;
  /** The release, as `containerd --version` prints it (`1.6.20~ds1`, `2.1.9+unknown`). */
  version: string;
  /** The CRI's snapshotter; without CRI, containerd's default (`overlayfs`). */
  snapshotter: string;
  /** The sandbox image reference, present in namespace k8s.io (only with `cri`). */
  sandboxImage?: string;
  /** The registry hosts directory (`config_path`) the CRI reads on every pull. */
  certsDir: string;
  /** containerd's log (debug level). */
  logFile: string;
  pid: number;
  /** Runs this version's `ctr --address <socket> <args>` and returns its standard output. */
  ctr(args: string[]): Promise<string>;
  /**
   * `ctr -n <namespace> images import` of an OCI archive (`writeOciArchive`) as `ref`, unpacked
   * into `snapshotter`. Namespace default k8s.io.
   */
  importImage(archive: string, ref: string, o?: { namespace?: string }): Promise<void>;
  /**
   * `ctr run --rm` of `image` as container `id` in `snapshotter`, with FIFOs and runc state under
   * `dir`; resolves to its standard output. With `detach`, `ctr run -d`: resolves once the task
   * runs, and `close` removes it. Namespace default k8s.io.
   */
  runImage(image: string, id: string, o?: { namespace?: string; args?: string[]; detach?: boolean }): Promise<string>;
  /** Stops containerd and everything it started; unmounts what is left under `dir`. Idempotent. */
  close(): Promise<void>;
}

/**
 * A real containerd of the given version started for a test, with its own root, state, socket
 * and config under `dir` (never the system's). Resolves once `ctr version` answers and, with
 * `cri`, once the CRI reports the sandbox image. On failure nothing is left running or mounted.
 */
export async function startContainerd(o: ContainerdOptions): Promise<Containerd> {
  const version = o.version ?? '1.6';
  const bins = availableContainerds().find((b) => b.version === version);
  if (!bins) throw new Error(`containerd ${version} is not on this machine: run scripts/fetch-containerd.sh`);
  const p = paths(resolve(o.dir));
  for (const d of [p.root, p.state, p.certs, p.cniBin, p.cniConf, p.runc, p.fifo, p.images]) mkdirSync(d, { recursive: true });
  const snapshotter = o.cri ? (o.cri.snapshotter ?? 'native') : 'overlayfs';
  const sandboxImage = o.cri ? (o.cri.sandboxImage ?? 'krill.test/pause:1') : undefined;
  if (sandboxImage) refBaseName(sandboxImage); // A digest or untagged reference fails here, before anything starts.
  writeHostsDir(p.certs, o.cri?.mirrors ?? {});
  writeFileSync(p.config, toToml(containerdConfig(version, p, o.cri ? { snapshotter, sandboxImage: sandboxImage! } : undefined)));

  const log = openSync(p.log, 'a');
  const argv = [bins.bin, '--config', p.config];
  // `ip netns exec` execs the command in place, so the pid is containerd's own.
  const [command, ...args] = o.netns ? ['ip', 'netns', 'exec', o.netns, ...argv] : argv;
  const child = spawn(command!, args, {
    stdio: ['ignore', log, log],
    // The daemon finds shims on PATH: this version's own shim must come before /usr/bin's 1.6 one.
    env: { ...process.env, PATH: `${bins.shimDir}:${process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` },
  });
  closeSync(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const onExit = () => { child.kill('SIGKILL'); cleanupSync(p); };
  process.once('exit', onExit);
  const ctr = async (args: string[]) => (await run(bins.ctr, ['--address', p.socket, ...args], { timeout: CTR_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 })).stdout;

  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    process.off('exit', onExit);
    if (child.exitCode === null && child.signalCode === null) {
      await removeTasks(ctr).catch(() => {});
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    cleanupSync(p);
  };
  const handle: Containerd = {
    socket: p.socket, version: bins.release, snapshotter, certsDir: p.certs, logFile: p.log, pid: child.pid!,
    ...(sandboxImage ? { sandboxImage } : {}),
    ctr,
    async importImage(archive, ref, io = {}) {
      await ctr(['-n', io.namespace ?? 'k8s.io', 'images', 'import', '--base-name', refBaseName(ref), '--snapshotter', snapshotter, archive]);
    },
    runImage: (image, id, ro = {}) => ctr([
      '-n', ro.namespace ?? 'k8s.io', 'run', ro.detach ? '-d' : '--rm', '--snapshotter', snapshotter, '--fifo-dir', p.fifo, '--runc-root', p.runc,
      // ctr's default cgroup is /<namespace>/<id>: runc removes <id> but leaves the parent behind.
      '--cgroup', '', image, id, ...(ro.args ?? []),
    ]),
    close,
  };

  try {
    await waitReady(ctr, p.socket, child);
    if (sandboxImage) await importSandboxImage(handle, p.images, sandboxImage);
  } catch (err) {
    await close();
    throw new Error(`containerd ${bins.release} did not start: ${(err as Error).message}\n${logTail(p.log)}`, { cause: err });
  }
  return handle;
}

type Paths = ReturnType<typeof paths>;

function paths(dir: string) {
  return {
    dir,
    root: join(dir, 'root'), state: join(dir, 'state'), socket: join(dir, 'containerd.sock'), config: join(dir, 'config.toml'),
    certs: join(dir, 'certs.d'), cniBin: join(dir, 'cni', 'bin'), cniConf: join(dir, 'cni', 'net.d'), opt: join(dir, 'opt'),
    runc: join(dir, 'runc'), fifo: join(dir, 'fifo'), images: join(dir, 'images'), log: join(dir, 'containerd.log'),
  };
}

async function waitReady(ctr: (a: string[]) => Promise<string>, socket: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (existsSync(socket) && (await ctr(['version']).then(() => true, () => false))) return;
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited (${child.exitCode ?? child.signalCode})`);
    if (Date.now() > deadline) throw new Error(`no answer on ${socket} within ${READY_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Builds the pause image, imports it into k8s.io and waits until the CRI lists it. */
async function importSandboxImage(c: Containerd, dir: string, ref: string): Promise<void> {
  const img = await buildCriImage('pause', join(dir, 'pause'));
  const archive = join(dir, 'pause.tar');
  await writeOciArchive(img, archive, ref);
  await c.importImage(archive, ref);
  const cri = createCriClient(c.socket);
  try {
    const deadline = Date.now() + CRI_SEES_IMAGE_TIMEOUT_MS;
    while (!(await cri.imageStatus(ref)).image) {
      if (Date.now() > deadline) throw new Error(`the CRI does not report the imported sandbox image ${ref}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    cri.close();
  }
}

function logTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').filter((l) => /level=(error|fatal|warn)/.test(l)).slice(-20).join('\n');
  } catch {
    return '';
  }
}

type TomlValue = string | number | boolean | string[] | TomlTable | TomlTable[];
interface TomlTable { [key: string]: TomlValue }

const isTable = (v: TomlValue): v is TomlTable => typeof v === 'object' && !Array.isArray(v);
const isTableArray = (v: TomlValue): v is TomlTable[] => Array.isArray(v) && v.length > 0 && typeof v[0] === 'object';
const tomlKey = (k: string) => (/^[A-Za-z0-9_-]+$/.test(k) ? k : JSON.stringify(k));

/** A minimal TOML writer (JSON strings are valid TOML basic strings for the paths used here). */
function toToml(t: TomlTable, path: string[] = []): string {
  let out = '';
  const nested: [string, TomlTable | TomlTable[]][] = [];
  for (const [k, v] of Object.entries(t)) {
    if (isTable(v) || isTableArray(v)) nested.push([k, v]);
    else out += `${tomlKey(k)} = ${JSON.stringify(v)}\n`;
  }
  for (const [k, v] of nested) {
    const name = [...path, k].map(tomlKey).join('.');
    if (Array.isArray(v)) for (const item of v) out += `\n[[${name}]]\n${toToml(item, [...path, k])}`;
    else out += `\n[${name}]\n${toToml(v, [...path, k])}`;
  }
  return out;
}

/**
 * containerd's config for `version`: 1.6 and 1.7 read config version 2 (one CRI plugin,
 * `io.containerd.grpc.v1.cri`); 2.1 reads version 3, where the CRI is split into
 * `io.containerd.cri.v1.images` (snapshotter, sandbox image, registry), `io.containerd.cri.v1.runtime`
 * (runtimes, CNI, oom score) and `io.containerd.grpc.v1.cri` (the stream server). Key names are
 * those of each version's `containerd config default`.
 */
function containerdConfig(version: ContainerdVersion, p: Paths, cri?: { snapshotter: string; sandboxImage: string }): TomlTable {
  const plugins: TomlTable = {
    // The opt plugin would otherwise create /opt/containerd.
    'io.containerd.internal.v1.opt': { path: p.opt },
  };
  // NRI exists from 1.7 (off by default there, on in 2.x); no test uses it.
  if (version !== '1.6') plugins['io.containerd.nri.v1.nri'] = { disable: true };
  if (version === '2.1') plugins['io.containerd.image-verifier.v1.bindir'] = { bin_dir: join(p.opt, 'image-verifier', 'bin') };
  const config: TomlTable = { version: version === '2.1' ? 3 : 2, root: p.root, state: p.state, grpc: { address: p.socket }, debug: { level: 'debug' } };
  if (!cri) return { ...config, disabled_plugins: ['io.containerd.grpc.v1.cri'], plugins };

  const runc: TomlTable = {
    runtime_type: 'io.containerd.runc.v2',
    // runc's state (default /run/containerd/runc) stays under dir too.
    options: { Root: p.runc },
  };
  // No CNI: the tests run host-network pods, which the CRI starts without a network plugin.
  const cni = { conf_dir: p.cniConf };
  const stream = { disable_tcp_service: true, stream_server_address: '127.0.0.1', stream_server_port: '0' };
  // Pulls through the transfer service (1.7+: 2.x CRI pulls, ctr's non-local import) unpack into the
  // CRI's snapshotter; without this 2.1 fails them with "no unpack platforms defined" (containerd-compat.md §6).
  if (version !== '1.6') plugins['io.containerd.transfer.v1.local'] = { config_path: p.certs, unpack_config: [{ platform: 'linux/amd64', snapshotter: cri.snapshotter }] };
  if (version === '2.1') {
    plugins['io.containerd.cri.v1.images'] = {
      snapshotter: cri.snapshotter,
      pinned_images: { sandbox: cri.sandboxImage },
      registry: { config_path: p.certs },
    };
    plugins['io.containerd.cri.v1.runtime'] = {
      // The test VM forbids negative oom_score_adj; without this runc fails every sandbox (cri-containerd.md, 14).
      restrict_oom_score_adj: true,
      enable_selinux: false,
      containerd: { default_runtime_name: 'runc', runtimes: { runc } },
      cni: { ...cni, bin_dirs: [p.cniBin] },
    };
    plugins['io.containerd.grpc.v1.cri'] = stream;
  } else {
    plugins['io.containerd.grpc.v1.cri'] = {
      ...stream,
      sandbox_image: cri.sandboxImage,
      restrict_oom_score_adj: true,
      enable_selinux: false,
      containerd: { snapshotter: cri.snapshotter, default_runtime_name: 'runc', runtimes: { runc } },
      cni: { ...cni, bin_dir: p.cniBin },
      registry: { config_path: p.certs },
    };
  }
  return { ...config, plugins };
}

/**
 * The CRI's registry hosts directory (containerd docs/hosts.md). Every file has a `[host]` table:
 * 1.6 and 1.7 reject a file without one ("invalid `host` tree") and fall back to
 * `https://<registry>`. The root `server` is the closed port with only the push capability, so a
 * resolve or pull tries the `[host]` once and never falls back to the real registry.
 */
function writeHostsDir(certs: string, mirrors: Record<string, string>): void {
  const file = (url: string) => [
    `server = ${JSON.stringify(CLOSED_REGISTRY)}`,
    'capabilities = ["push"]',
    '',
    `[host.${JSON.stringify(url)}]`,
    '  capabilities = ["pull", "resolve"]',
    '',
  ].join('\n');
  const write = (dir: string, url: string) => {
    mkdirSync(join(certs, dir), { recursive: true });
    writeFileSync(join(certs, dir, 'hosts.toml'), file(url));
  };
  write('_default', CLOSED_REGISTRY);
  // containerd looks a registry up as `host` or, with a port, `host_port_` (hostDirectory in hosts.go).
  for (const [host, url] of Object.entries(mirrors)) write(host.replace(/:(\d+)$/, '_$1_'), url);
}

/** Kills and deletes every task and container, so the shims exit and runc removes its cgroups. */
async function removeTasks(ctrAny: (a: string[]) => Promise<string>): Promise<void> {
  // A daemon that died a moment ago still has its socket file: fail fast rather than retry.
  const ctr = (args: string[]) => ctrAny(['--connect-timeout', '2s', ...args]);
  const lines = (s: string) => s.split('\n').map((l) => l.trim()).filter(Boolean);
  for (const ns of lines(await ctr(['namespaces', 'ls', '-q']))) {
    for (const id of lines(await ctr(['-n', ns, 'tasks', 'ls', '-q']))) {
      await ctr(['-n', ns, 'tasks', 'delete', '-f', id]).catch(() => {});
    }
    for (const id of lines(await ctr(['-n', ns, 'containers', 'ls', '-q']))) {
      await ctr(['-n', ns, 'containers', 'delete', id]).catch(() => {});
    }
  }
}

/**
 * What a dead containerd can leave: shims still serving its socket with their containers (and
 * those containers' cgroups and the shims' sockets in /run/containerd/s, a path containerd fixes),
 * and mounts under `dir` (task rootfs, sandbox shm). After a clean stop there is none of these.
 * Synchronous, so a process `exit` hook can run it too.
 */
function cleanupSync(p: Paths): void {
  const doomed = shimTrees(p.socket);
  const cgroups = [...doomed].flatMap(ownCgroups);
  for (const pid of doomed) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  waitGoneSync(doomed);
  for (const s of shimSockets(p.state)) rmSync(s, { force: true });
  // Deepest first; rmdir only removes an empty cgroup, so a shared parent stays.
  for (const cg of [...new Set(cgroups)].sort((a, b) => b.length - a.length)) {
    try { rmdirSync(cg); } catch { /* still in use, or already removed */ }
  }
  for (const m of mountsUnder(p.dir)) {
    try { execFileSync('umount', ['-l', m], { stdio: 'ignore' }); } catch { /* unmounted with its parent */ }
  }
}

/**
 * The shim sockets named in the task bundles under `state`: 1.x writes the address to `address`,
 * 2.x into `bootstrap.json`. Only paths in /run/containerd/s are returned.
 */
function shimSockets(state: string): string[] {
  const tasks = join(state, 'io.containerd.runtime.v2.task');
  const read = (f: string) => { try { return readFileSync(f, 'utf8'); } catch { return ''; } };
  const bundles = existsSync(tasks) ? readdirSync(tasks).flatMap((ns) => readdirSync(join(tasks, ns)).map((id) => join(tasks, ns, id))) : [];
  return bundles.flatMap((b) => [...`${read(join(b, 'address'))} ${read(join(b, 'bootstrap.json'))}`.matchAll(/unix:\/\/(\/run\/containerd\/s\/[0-9a-f]+)/g)].map((m) => m[1]!));
}

/** The shims whose command line names `socket` (`-address <socket>`), and all their descendants. */
function shimTrees(socket: string): Set<number> {
  const parents = new Map<number, number>();
  const doomed = new Set<number>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      parents.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      const argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      if (/containerd-shim/.test(argv[0] ?? '') && argv.includes(socket)) doomed.add(Number(e));
    } catch {
      // The process exited while being read.
    }
  }
  for (let grew = doomed.size > 0; grew;) {
    grew = false;
    for (const [pid, ppid] of parents) if (doomed.has(ppid) && !doomed.has(pid)) { doomed.add(pid); grew = true; }
  }
  return doomed;
}

/** The cgroup directories of `pid` that are not this process's own (so: the container's). */
function ownCgroups(pid: number): string[] {
  const read = (p: string) => { try { return readFileSync(`/proc/${p}/cgroup`, 'utf8'); } catch { return ''; } };
  const mine = new Set(read('self').split('\n'));
  return read(String(pid)).split('\n').filter((l) => l && !mine.has(l)).flatMap((l) => {
    const [, controllers = '', path = '/'] = l.split(':');
    if (path === '/') return [];
    // cgroup v1 hierarchies are mounted by controller name; v2 at /sys/fs/cgroup/unified (hybrid) or /sys/fs/cgroup.
    const roots = controllers === '' ? ['/sys/fs/cgroup/unified', '/sys/fs/cgroup'] : [`/sys/fs/cgroup/${controllers.replace(/^name=/, '')}`];
    return roots.map((r) => join(r, path)).filter((d) => existsSync(d));
  });
}

/** Waits (bounded: a SIGKILLed process is gone within milliseconds) until none of `pids` is alive. */
function waitGoneSync(pids: Set<number>): void {
  const alive = (pid: number) => { try { return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; } };
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 100 && [...pids].some(alive); i++) Atomics.wait(sleeper, 0, 0, 20);
}

/** Mount points at or under `dir`, deepest first (mountinfo field 5, octal escapes undone). */
function mountsUnder(dir: string): string[] {
  const unescape = (s: string) => s.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => unescape(l.split(' ')[4] ?? ''))
    .filter((m) => m === dir || m.startsWith(`${dir}/`)).sort((a, b) => b.length - a.length);
}
