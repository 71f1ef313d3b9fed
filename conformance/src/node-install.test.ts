import { execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Server } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveImageFsInfo } from './harness/image-fs-info.js';
import { KRILL_BIN } from './harness/krill-process.js';

/**
 * Acceptance 3 of issue 5: install/node/krill-node-install.sh against a fake root holding a
 * kubeadm-style node, with stand-ins for systemctl (records its calls) and kubelet (prints a
 * version) on PATH, and a real grpc-js CRI ImageService on the root's krill socket for the
 * ImageFsInfo check, which the script makes with the real `krill cri imagefsinfo`.
 */
const SCRIPT = fileURLToPath(new URL('../../install/node/krill-node-install.sh', import.meta.url));
const ENDPOINT = 'unix:///run/krill/cri.sock';

const KUBELET_CONFIG = `apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: ""
kind: KubeletConfiguration
staticPodPath: /etc/kubernetes/manifests
`;
const KUBEADM_FLAGS = 'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.9"\n';
const CONTAINERD_WITH_CONFIG_PATH = `version = 2

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d"   # hosts.toml files, read on every pull
`;
const CONTAINERD_WITHOUT_CONFIG_PATH = `version = 2

[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
  endpoint = ["https://mirror.example"]
`;
/** A hosts.toml already on the node, with the operator's own mirror. */
const EXISTING_HOSTS_TOML = `server = "https://quay.io"

[host."https://quay-mirror.example"]
  capabilities = ["pull", "resolve"]
`;

interface FakeNode {
  root: string;
  socket: string;
  systemctlLog: string;
  env: NodeJS.ProcessEnv;
  /** The systemctl calls so far, one string each (`restart kubelet`). */
  systemctl(): string[];
  close(): Promise<void>;
}

let work: string;
const nodes: FakeNode[] = [];
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'krill-node-install-'));
});
afterAll(async () => {
  for (const n of nodes) await n.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

function write(file: string, text: string, mode = 0o644): void {
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, text);
  chmodSync(file, mode);
}

/** A fake kubeadm node under `<work>/<name>/root`; its krill socket answers until `stopCri`. */
async function fakeNode(name: string, o: { kubelet?: string; configPath?: boolean; hostsToml?: boolean; cri?: boolean } = {}): Promise<FakeNode & { stopCri(): Promise<void>; startCri(): Promise<void> }> {
  const dir = join(work, name);
  const root = join(dir, 'root');
  const bin = join(dir, 'bin');
  const systemctlLog = join(dir, 'systemctl.log');
  write(join(root, 'var/lib/kubelet/config.yaml'), KUBELET_CONFIG);
  write(join(root, 'var/lib/kubelet/kubeadm-flags.env'), KUBEADM_FLAGS, 0o600);
  write(join(root, 'etc/containerd/config.toml'), o.configPath === false ? CONTAINERD_WITHOUT_CONFIG_PATH : CONTAINERD_WITH_CONFIG_PATH);
  if (o.hostsToml) write(join(root, 'etc/containerd/certs.d/quay.io/hosts.toml'), EXISTING_HOSTS_TOML);
  mkdirSync(join(root, 'run/krill'), { recursive: true });
  write(join(bin, 'systemctl'), `#!/bin/sh\necho "$*" >>'${systemctlLog}'\n`, 0o755);
  // What `--host-exec` would be on a real node (nsenter into PID 1): records, then runs the command.
  write(join(bin, 'host-exec'), `#!/bin/sh\necho "host-exec $*" >>'${systemctlLog}'\nexec "$@"\n`, 0o755);
  write(join(bin, 'kubelet'), `#!/bin/sh\necho "Kubernetes v${o.kubelet ?? '1.28.4'}"\n`, 0o755);
  const socket = join(root, 'run/krill/cri.sock');
  let server: Server | undefined;
  const startCri = async () => {
    server = await serveImageFsInfo(socket);
  };
  const stopCri = async () => {
    server?.forceShutdown();
    server = undefined;
    if (existsSync(socket)) unlinkSync(socket);
  };
  if (o.cri !== false) await startCri();
  const node = {
    root, socket, systemctlLog, startCri, stopCri,
    env: { ...process.env, PATH: `${bin}:${process.env['PATH']}`, KRILL_CLI: `${process.execPath} ${KRILL_BIN}` },
    systemctl: () => (existsSync(systemctlLog) ? readFileSync(systemctlLog, 'utf8').split('\n').filter(Boolean) : []),
    close: stopCri,
  };
  nodes.push(node);
  return node;
}


function script(node: FakeNode, args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile('bash', [SCRIPT, '--root', node.root, ...args], { env: node.env, timeout: 60_000 }, (err, out, errOut) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out, err: errOut });
    });
  });
}

/**
 * Every file under the root but run/ (the socket and the lock), with its mode and content. A
 * file the script renames or removes between the listing and the read (its temporary files) is
 * left out; the caller polls until the tree is as expected.
 */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const gone = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT';
  const walk = (rel: string) => {
    for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (p === 'run') continue;
      try {
        if (e.isDirectory()) {
          out[`${p}/`] = (statSync(join(root, p)).mode & 0o7777).toString(8);
          walk(p);
        } else {
          out[p] = `${(statSync(join(root, p)).mode & 0o7777).toString(8)} ${readFileSync(join(root, p), 'base64')}`;
        }
      } catch (err) {
        if (!gone(err)) throw err;
      }
    }
  };
  walk('');
  return out;
}

const read = (node: FakeNode, path: string) => readFileSync(join(node.root, path), 'utf8');
const DROPIN = 'etc/systemd/system/kubelet.service.d/90-krill-image-service.conf';

describe('node install script: kubelet 1.28 (KubeletConfiguration)', () => {
  let node: FakeNode;
  let before: Record<string, string>;
  beforeAll(async () => {
    node = await fakeNode('k128');
    before = snapshot(node.root);
  });

  it('dry-run prints the plan and changes nothing', async () => {
    const r = await script(node, ['--dry-run']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('would write /var/lib/kubelet/config.yaml:');
    expect(r.out).toContain(`+imageServiceEndpoint: ${ENDPOINT}`);
    expect(r.out).toContain(`would write /${DROPIN}:`);
    expect(r.out).toContain('would run: systemctl restart kubelet');
    expect(snapshot(node.root)).toEqual(before);
    expect(node.systemctl()).toEqual([]);
  });

  it('install: points kubelet at the socket, adds the boot guard, restarts kubelet once', async () => {
    const r = await script(node, []);
    expect(r.code, r.err).toBe(0);
    expect(read(node, 'var/lib/kubelet/config.yaml')).toBe(`${KUBELET_CONFIG}imageServiceEndpoint: ${ENDPOINT}\n`);
    expect(read(node, 'var/lib/kubelet/kubeadm-flags.env')).toBe(KUBEADM_FLAGS);
    expect(read(node, 'etc/containerd/config.toml')).toBe(CONTAINERD_WITH_CONFIG_PATH);
    expect(existsSync(join(node.root, 'etc/containerd/certs.d'))).toBe(false);
    expect(read(node, DROPIN)).toMatch(/^ExecStartPre=-\/bin\/bash \/var\/lib\/krill\/node-install\/krill-node-install\.sh --boot-guard --socket \/run\/krill\/cri\.sock/m);
    // The boot guard runs the copy kept in the state directory.
    expect(readFileSync(join(node.root, 'var/lib/krill/node-install/krill-node-install.sh'), 'utf8')).toBe(readFileSync(SCRIPT, 'utf8'));
    expect(node.systemctl()).toEqual(['daemon-reload', 'restart kubelet']);
  });

  it('install again: changes nothing and restarts nothing', async () => {
    const installed = snapshot(node.root);
    const r = await script(node, []);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('nothing to change');
    expect(snapshot(node.root)).toEqual(installed);
    expect(node.systemctl()).toEqual(['daemon-reload', 'restart kubelet']);
  });

  it('uninstall: every file byte-identical to before, created files gone, kubelet restarted', async () => {
    const r = await script(node, ['--uninstall']);
    expect(r.code, r.err).toBe(0);
    expect(snapshot(node.root)).toEqual(before);
    expect(node.systemctl()).toEqual(['daemon-reload', 'restart kubelet', 'daemon-reload', 'restart kubelet']);
    const again = await script(node, ['--uninstall']);
    expect(again.out).toContain('nothing to uninstall');
    expect(node.systemctl()).toHaveLength(4);
  });
});

describe('node install script: safety', () => {
  it('a dead socket is refused and nothing changes', async () => {
    const node = await fakeNode('dead', { cri: false });
    const before = snapshot(node.root);
    const r = await script(node, ['--containerd-mirror']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('refusing to point kubelet at /run/krill/cri.sock: it does not answer CRI ImageFsInfo');
    expect(r.err).toContain('UNAVAILABLE (gRPC code 14)');
    expect(snapshot(node.root)).toEqual(before);
    expect(node.systemctl()).toEqual([]);
  });

  it('--wait waits for a socket that starts answering late', async () => {
    const node = await fakeNode('late', { cri: false });
    const running = script(node, ['--wait', '30']);
    await new Promise((r) => setTimeout(r, 1500));
    await node.startCri();
    const r = await running;
    expect(r.code, r.err).toBe(0);
    expect(read(node, 'var/lib/kubelet/config.yaml')).toContain(`imageServiceEndpoint: ${ENDPOINT}`);
  });

  it('a config.yaml rewritten after install (kubeadm upgrade) keeps the rewrite on uninstall', async () => {
    const node = await fakeNode('rewritten');
    expect((await script(node, [])).code).toBe(0);
    const upgraded = KUBELET_CONFIG.replace('cgroupDriver: systemd\n', 'cgroupDriver: systemd\nserializeImagePulls: false\n');
    writeFileSync(join(node.root, 'var/lib/kubelet/config.yaml'), upgraded);
    const again = await script(node, []);
    expect(again.code, again.err).toBe(0);
    expect(again.err).toContain('changed since krill wrote it: taking a new backup');
    expect(read(node, 'var/lib/kubelet/config.yaml')).toBe(`${upgraded}imageServiceEndpoint: ${ENDPOINT}\n`);
    expect((await script(node, ['--uninstall'])).code).toBe(0);
    expect(read(node, 'var/lib/kubelet/config.yaml')).toBe(upgraded);
  });

  it('the boot guard reverts without systemctl when the socket is missing, and does nothing while it is there', async () => {
    const node = await fakeNode('boot');
    const before = snapshot(node.root);
    expect((await script(node, [])).code).toBe(0);
    const installed = snapshot(node.root);
    expect((await script(node, ['--boot-guard'])).code).toBe(0);
    expect(snapshot(node.root)).toEqual(installed);
    await node.stopCri();
    const r = await script(node, ['--boot-guard']);
    expect(r.code, r.err).toBe(0);
    expect(snapshot(node.root)).toEqual(before);
    expect(node.systemctl()).toEqual(['daemon-reload', 'restart kubelet']);
  });

  it('the watchdog installs once the socket answers, reverts when it stays down, reinstalls, and reverts on SIGTERM', async () => {
    const node = await fakeNode('watchdog', { cri: false });
    const before = snapshot(node.root);
    const child = spawn('bash', [SCRIPT, '--root', node.root, '--watchdog', '--interval', '1', '--failures', '2'], { env: node.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.on('data', (c) => (log += c));
    child.stderr.on('data', (c) => (log += c));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const config = () => read(node, 'var/lib/kubelet/config.yaml');
    const until = async (what: string, ok: () => boolean) => {
      for (const deadline = Date.now() + 30_000; !ok();) {
        if (Date.now() > deadline) throw new Error(`watchdog: ${what} did not happen within 30 s\n${log}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    try {
      await new Promise((r) => setTimeout(r, 2500));
      expect(config()).toBe(KUBELET_CONFIG);
      await node.startCri();
      await until('install', () => config().includes(ENDPOINT));
      await node.stopCri();
      // Reverted once every file and directory is back, not just config.yaml (restored first).
      await until('revert', () => JSON.stringify(snapshot(node.root)) === JSON.stringify(before));
      await node.startCri();
      await until('reinstall', () => config().includes(ENDPOINT));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(snapshot(node.root)).toEqual(before);
      expect(node.systemctl().filter((c) => c === 'restart kubelet')).toHaveLength(4);
      expect(log).toContain('failed 2 checks in a row');
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('node install script: kubelet 1.26 (kubeadm flags file)', () => {
  it('puts --image-service-endpoint into KUBELET_KUBEADM_ARGS and takes it out again', async () => {
    const node = await fakeNode('k126', { kubelet: '1.26.15' });
    const before = snapshot(node.root);
    const r = await script(node, []);
    expect(r.code, r.err).toBe(0);
    expect(read(node, 'var/lib/kubelet/kubeadm-flags.env')).toBe(KUBEADM_FLAGS.replace(/"\n$/, ` --image-service-endpoint=${ENDPOINT}"\n`));
    expect(read(node, 'var/lib/kubelet/config.yaml')).toBe(KUBELET_CONFIG);
    expect(statSync(join(node.root, 'var/lib/kubelet/kubeadm-flags.env')).mode & 0o777).toBe(0o600);
    expect(node.systemctl()).toEqual(['daemon-reload', 'restart kubelet']);
    expect((await script(node, [])).out).toContain('nothing to change');
    expect((await script(node, ['--uninstall'])).code).toBe(0);
    expect(snapshot(node.root)).toEqual(before);
  });

  it('--kubelet-version overrides what kubelet --version says', async () => {
    const node = await fakeNode('k126-flag', { kubelet: '1.30.2' });
    expect((await script(node, ['--kubelet-version', '1.26'])).code).toBe(0);
    expect(read(node, 'var/lib/kubelet/kubeadm-flags.env')).toContain(`--image-service-endpoint=${ENDPOINT}"`);
    expect(read(node, 'var/lib/kubelet/config.yaml')).toBe(KUBELET_CONFIG);
  });
});

describe('node install script: --host-exec', () => {
  it('runs kubelet --version and systemctl through the prefix, as from a container entering the host', async () => {
    const node = await fakeNode('host-exec');
    const r = await script(node, ['--host-exec', join(node.root, '..', 'bin', 'host-exec')]);
    expect(r.code, r.err).toBe(0);
    expect(node.systemctl()).toEqual(['host-exec kubelet --version', 'host-exec systemctl daemon-reload', 'daemon-reload', 'host-exec systemctl restart kubelet', 'restart kubelet']);
  });
});

describe('node install script: containerd mirror', () => {
  it('with config_path: writes _default/hosts.toml with krill\'s [host] table, never restarts containerd', async () => {
    const node = await fakeNode('mirror-default');
    const before = snapshot(node.root);
    const r = await script(node, ['--containerd-mirror']);
    expect(r.code, r.err).toBe(0);
    const toml = read(node, 'etc/containerd/certs.d/_default/hosts.toml');
    expect(toml).toContain('[host."http://127.0.0.1:15005"]\n  capabilities = ["pull", "resolve"]\n');
    // No `server`: containerd falls back to each registry itself.
    expect(toml).not.toMatch(/^server/m);
    expect(node.systemctl()).toEqual(['daemon-reload', 'restart kubelet']);
    expect((await script(node, ['--containerd-mirror'])).out).toContain('nothing to change');
    expect((await script(node, ['--containerd-mirror', '--uninstall'])).code).toBe(0);
    expect(snapshot(node.root)).toEqual(before);
  });

  it('per-registry directories keep the registry as server; an existing hosts.toml gets krill\'s [host] first', async () => {
    const node = await fakeNode('mirror-registries', { hostsToml: true });
    const before = snapshot(node.root);
    const r = await script(node, ['--no-kubelet', '--containerd-mirror', '--mirror-url', 'http://127.0.0.1:25005', '--mirror-registries', 'registry.krill.test,docker.io,localhost:5000,quay.io']);
    expect(r.code, r.err).toBe(0);
    const at = (host: string) => read(node, `etc/containerd/certs.d/${host}/hosts.toml`);
    const krillHost = '[host."http://127.0.0.1:25005"]\n  capabilities = ["pull", "resolve"]\n';
    expect(at('registry.krill.test')).toContain('server = "https://registry.krill.test"\n');
    expect(at('docker.io')).toContain('server = "https://registry-1.docker.io"\n');
    expect(at('localhost_5000_')).toContain('server = "http://localhost:5000"\n');
    for (const h of ['registry.krill.test', 'docker.io', 'localhost_5000_', 'quay.io']) expect(at(h)).toContain(krillHost);
    const quay = at('quay.io');
    expect(quay.startsWith('server = "https://quay.io"\n')).toBe(true);
    expect(quay.indexOf(krillHost)).toBeLessThan(quay.indexOf('[host."https://quay-mirror.example"]'));
    // --no-kubelet: kubelet's files, and systemctl, untouched.
    expect(read(node, 'var/lib/kubelet/config.yaml')).toBe(KUBELET_CONFIG);
    expect(node.systemctl()).toEqual([]);
    const u = await script(node, ['--uninstall']);
    expect(u.code, u.err).toBe(0);
    expect(snapshot(node.root)).toEqual(before);
    expect(node.systemctl()).toEqual([]);
  });

  it('--restart-containerd restarts containerd after a hosts.toml change', async () => {
    const node = await fakeNode('mirror-restart');
    expect((await script(node, ['--no-kubelet', '--containerd-mirror', '--restart-containerd'])).code).toBe(0);
    expect(node.systemctl()).toEqual(['restart containerd']);
  });

  it('without config_path: leaves containerd alone and still switches kubelet', async () => {
    const node = await fakeNode('mirror-no-config-path', { configPath: false });
    const r = await script(node, ['--containerd-mirror']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('config_path is not set in /etc/containerd/config.toml: leaving containerd\'s mirrors alone');
    expect(read(node, 'etc/containerd/config.toml')).toBe(CONTAINERD_WITHOUT_CONFIG_PATH);
    expect(existsSync(join(node.root, 'etc/containerd/certs.d'))).toBe(false);
    expect(read(node, 'var/lib/kubelet/config.yaml')).toContain(`imageServiceEndpoint: ${ENDPOINT}`);
  });
});
