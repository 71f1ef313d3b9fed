import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { launcherNodeArgs } from '@krill/lib';
import { availableContainerds, startContainerd, type Containerd } from '@krill/conformance';
import { UsageError, type Command } from '../command.js';
import { agentConfig, buildIndexConfig, nodeConfig, originConfig, proxyConfig, trackerConfig } from '../install/component-configs.js';
import { defaultInstallConfig, type InstallConfig } from '../install/install-config.js';
import type { ClusterUrls } from '../install/names.js';
import { readInstallConfig } from '../install/read-install-config.js';

const KRILL_BIN = fileURLToPath(new URL('../../bin/krill.js', import.meta.url));
/** Components run with the launcher's own Node flags, as the `krill` command would run them. */
const KRILL_ARGV = [...launcherNodeArgs(KRILL_BIN), KRILL_BIN];
/** How long a component may take to answer /ready; an origin opens its store and database first. */
const READY_TIMEOUT_MS = 30_000;

interface Component {
  name: string;
  command: string;
  url: string;
  config: Record<string, unknown>;
}

/**
 * The components of a devcluster on loopback, with fixed ports from `base` (Kraken's layout: proxy
 * `base`, origin i `base+2+10i` with its peer port one below, tracker `base+3`, build-index
 * `base+4`, agent i `base+5+10i` with its peer port one above). Their configs come from the same
 * builders and the same install config as `krill manifests` renders; the devcluster decides only
 * the addresses (127.0.0.1), the ports, the directories under `dir` (one filesystem backend
 * shared by the origins) and the membership lists.
 *
 * With `node`, the last agent is a node daemon (`krill node`) in front of that containerd: its
 * CRI socket is `<dir>/node-<i>/cri.sock`, and images pushed to the proxy are pulled through it
 * by the proxy's address (`127.0.0.1:<base>/<repo>:<tag>`).
 */
export function devclusterLayout(
  dir: string, base: number, origins: number, agents = 2, node?: { containerdSocket: string }, install: InstallConfig = defaultInstallConfig(),
): Component[] {
  const host = '127.0.0.1';
  const at = (port: number) => ({ host, port });
  const url = (port: number) => `http://${host}:${port}`;
  const originPorts = Array.from({ length: origins }, (_, i) => base + 2 + 10 * i);
  const urls: ClusterUrls = { origins: originPorts.map(url), trackers: [url(base + 3)], buildIndex: [url(base + 4)] };
  const list: Component[] = originPorts.map((port, i) => ({
    name: `origin-${i}`,
    command: 'origin',
    url: url(port),
    // Each origin seeds over the peer wire one port below its HTTP port, and tells the tracker.
    config: originConfig(install, urls, { listen: at(port), peer: at(port - 1), storeDir: join(dir, `origin-${i}`), backendDir: join(dir, 'backend') }),
  }));
  list.push({ name: 'tracker', command: 'tracker', url: url(base + 3), config: trackerConfig(install, urls, { listen: at(base + 3) }) });
  list.push({
    name: 'build-index', command: 'build-index', url: url(base + 4),
    config: buildIndexConfig(install, urls, { listen: at(base + 4), db: join(dir, 'build-index', 'tags.db') }),
  });
  list.push({ name: 'proxy', command: 'proxy', url: url(base), config: proxyConfig(install, urls, { listen: at(base), uploadDir: join(dir, 'proxy-uploads') }) });
  for (let i = 0; i < agents; i++) {
    const isNode = node !== undefined && i === agents - 1;
    const name = isNode ? `node-${i}` : `agent-${i}`;
    const placement = { listen: at(base + 5 + 10 * i), peer: at(base + 6 + 10 * i), cacheDir: join(dir, name) };
    list.push({
      name,
      command: isNode ? 'node' : 'agent',
      url: url(base + 5 + 10 * i),
      config: isNode
        ? nodeConfig(install, urls, {
            ...placement, criSocket: join(dir, name, 'cri.sock'), containerdSocket: node.containerdSocket,
            registries: [{ host: `${host}:${base}`, mode: 'krill' }],
          })
        : agentConfig(install, urls, placement),
    });
  }
  return list;
}

export const devclusterCommand: Command = {
  name: 'devcluster',
  summary: 'run a local krill cluster on loopback (origins, tracker, build-index, proxy) until Ctrl-C',
  help: () => [
    'Usage: krill devcluster [--config install.yaml] [--dir DIR] [--base-port N] [--origins N] [--agents N] [--no-containerd]',
    '',
    'Starts a krill cluster on 127.0.0.1 with each component in its own process: N origins (a',
    'filesystem backend under DIR/backend, each also seeding over the peer wire), a tracker, the',
    'build-index, the push proxy and N node agents (each a local registry that pulls peer-to-peer).',
    'With a containerd on this machine, it also starts one of its own (root, state and socket under',
    'DIR/containerd) and the last agent is a node daemon (krill node) whose CRI socket pulls into it.',
    'Prints their addresses, writes logs to DIR/logs, and stops them all on Ctrl-C (SIGINT) or SIGTERM.',
    'Every component\'s config is built from the install configuration, as `krill manifests` builds',
    'it (log level, ring replicas, capacities, storage backend, the CRI\'s registry rules); only the',
    'addresses, ports and directories are the devcluster\'s.',
    '',
    'Options:',
    '  --config FILE    install configuration (see README.md, "Install on Kubernetes"); default: the defaults',
    '  --dir DIR        state directory (default .krill/devcluster)',
    '  --base-port N    proxy port; tracker N+3, build-index N+4, origins N+2, N+12, ... (default 15000)',
    '  --origins N      number of origins (default: origin.replicas of the install configuration, 3); origin i peers on N+1+10i',
    '  --agents N       number of node agents (default 2); agent i serves on N+5+10i, peers on N+6+10i',
    '  --no-containerd  no containerd and no node daemon, agents only',
    '',
  ].join('\n'),
  async run(args, io) {
    const values = parseOptions(args);
    // The install config is read before anything starts, so a bad one fails as in `krill manifests`.
    const install = readInstallConfig(values.config, io.env);
    const origins = values.origins ?? int(String(install.origin.replicas), 'origin.replicas of the install configuration (or --origins)', 1, MAX_PER_KIND);
    const dir = resolve(values.dir ?? '.krill/devcluster');
    mkdirSync(join(dir, 'logs'), { recursive: true });
    mkdirSync(join(dir, 'build-index'), { recursive: true });
    const containerd = values.agents > 0 && values.containerd ? await startOwnContainerd(dir, io.stderr) : undefined;
    const components = devclusterLayout(dir, values.basePort, origins, values.agents, containerd ? { containerdSocket: containerd.socket } : undefined, install);
    const children = new Map<string, ChildProcess>();
    const stop = async () => {
      await Promise.all([...children.values()].map((c) => terminate(c)));
      await containerd?.close();
    };
    const died = new Promise<string>((resolveDied) => {
      for (const c of components) {
        const configFile = join(dir, `${c.name}.yaml`);
        // JSON is valid YAML, so no serializer is needed for the generated files.
        writeFileSync(configFile, JSON.stringify(c.config, null, 2));
        const log = createWriteStream(join(dir, 'logs', `${c.name}.log`), { flags: 'a' });
        const child = spawn(process.execPath, [...KRILL_ARGV, c.command, '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'], env: io.env });
        child.stdout?.pipe(log);
        child.stderr?.pipe(log);
        child.once('exit', (code, sig) => resolveDied(`${c.name} exited (${sig ?? `code ${code}`}); see ${join(dir, 'logs', `${c.name}.log`)}`));
        children.set(c.name, child);
      }
    });
    const ready = Promise.all(components.map((c) => waitReady(c.url, READY_TIMEOUT_MS).then(() => c)));
    const first = await Promise.race([ready.then(() => 'ready'), died, io.stopSignal.then(() => 'stopped')]);
    if (first !== 'ready') {
      await stop();
      if (first === 'stopped') return 0;
      io.stderr.write(`krill devcluster: ${first}\n`);
      return 1;
    }
    io.stdout.write(summary(dir, components, containerd));
    const end = await Promise.race([died.then((why) => ({ why })), io.stopSignal.then(() => undefined)]);
    await stop();
    if (end) {
      io.stderr.write(`krill devcluster: ${end.why}\n`);
      return 1;
    }
    io.stdout.write('devcluster stopped\n');
    return 0;
  },
};

/** Ports are laid out ten per index (see --help), so at most 9 of each kind fit before they collide. */
const MAX_PER_KIND = 9;

function parseOptions(args: string[]): { config?: string; dir?: string; basePort: number; origins?: number; agents: number; containerd: boolean } {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { config: { type: 'string' }, dir: { type: 'string' }, 'base-port': { type: 'string' }, origins: { type: 'string' }, agents: { type: 'string' }, 'no-containerd': { type: 'boolean' } }, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const basePort = int(parsed.values['base-port'] ?? '15000', '--base-port', 1, 65_000);
  const origins = parsed.values.origins === undefined ? undefined : int(parsed.values.origins, '--origins', 1, MAX_PER_KIND);
  const agents = int(parsed.values.agents ?? '2', '--agents', 0, MAX_PER_KIND);
  return {
    ...(parsed.values.config === undefined ? {} : { config: parsed.values.config }),
    ...(parsed.values.dir === undefined ? {} : { dir: parsed.values.dir }),
    ...(origins === undefined ? {} : { origins }),
    basePort, agents, containerd: !parsed.values['no-containerd'],
  };
}

function int(text: string, flag: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${flag} must be an integer from ${min} to ${max} (got ${JSON.stringify(text)})`);
  return n;
}

async function waitReady(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`${url} not ready after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolveExit) => {
    // A component drains within its shutdown bound; after that it is killed.
    const timer = setTimeout(() => child.kill('SIGKILL'), 35_000);
    child.once('exit', () => { clearTimeout(timer); resolveExit(); });
    child.kill('SIGTERM');
  });
}

const hostOf = (components: Component[], name: string) => new URL(components.find((c) => c.name === name)!.url).host;

/**
 * containerd of the cluster's own (root, state and socket under `<dir>/containerd`, the CRI on,
 * `restrict_oom_score_adj` so pods run in containers and VMs that forbid negative OOM scores),
 * when this machine has one; none otherwise (the cluster then has agents only).
 */
async function startOwnContainerd(dir: string, stderr: NodeJS.WritableStream): Promise<Containerd | undefined> {
  if (availableContainerds().length === 0) {
    stderr.write('krill devcluster: no containerd on this machine; starting agents only (scripts/install-deps.sh installs one)\n');
    return undefined;
  }
  return startContainerd({ dir: join(dir, 'containerd'), cri: {} });
}

function summary(dir: string, components: Component[], containerd: Containerd | undefined): string {
  const rows = components.map((c) => `  ${c.name.padEnd(12)} ${c.url}`);
  const node = components.find((c) => c.command === 'node');
  const cri = node ? (node.config['cri'] as { socket: string }).socket : undefined;
  return ['krill devcluster is up:', ...rows,
    ...(containerd && cri ? [`  containerd   ${containerd.socket} (${containerd.version})`, `  cri socket   ${cri} (${node!.name}, in front of that containerd)`] : []),
    `  state        ${dir}`, `  logs         ${join(dir, 'logs')}`,
    '', `Push with: skopeo copy --dest-tls-verify=false <src> docker://${hostOf(components, 'proxy')}/<repo>:<tag>`,
    ...(components.some((c) => c.name === 'agent-0') ? [`Pull peer-to-peer with: skopeo copy --src-tls-verify=false docker://${hostOf(components, 'agent-0')}/<repo>:<tag> <dest>`] : []),
    ...(cri ? [`Pull into containerd through krill's CRI socket: node cli/bin/krill.js cri --socket ${cri} pull ${hostOf(components, 'proxy')}/<repo>:<tag>`,
      `  then: ctr --address ${containerd!.socket} -n k8s.io images ls`] : []),
    'Ctrl-C stops the cluster.', ''].join('\n');
}
