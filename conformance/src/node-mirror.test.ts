import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTracker, trackerConfigSchema, type TrackerConfig } from '@krill/cluster-services';
import { silentLogger, validateConfig } from '@krill/lib';
import { agentConfigSchema, startAgent, type AgentConfig, type RunningAgent } from '@krill/node-daemon';
import { smallImage, type BuiltImage } from './fixtures/oci-image.js';
import { startCluster, type Cluster } from './harness/cluster.js';
import { availableContainerds, startContainerd, type Containerd } from './harness/containerd.js';
import { createCriClient, type CriClient } from './harness/cri-client.js';
import { copy } from './harness/skopeo.js';

/**
 * Acceptance 4 of issue 5: krill-node-install.sh's containerd mirror mode against a real
 * containerd. The image exists only in krill (pushed through its proxy as team/app:v1); the
 * containerd sends every registry it has no directory for to a closed port. After the script
 * has written krill's node registry into containerd's hosts.toml directory (config_path, read
 * from the containerd's own config.toml), containerd's own CRI PullImage of
 * `registry.krill.test/team/app:v1` succeeds through the agent's local registry API.
 */
const SCRIPT = fileURLToPath(new URL('../../install/node/krill-node-install.sh', import.meta.url));

let work: string;
let cluster: Cluster;
let tracker: { url: string; close(): Promise<void> };
let agent: RunningAgent;
let image: BuiltImage;
let bin: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'krill-node-mirror-'));
  cluster = await startCluster({ dir: join(work, 'cluster') });
  tracker = await startTracker(validateConfig<TrackerConfig>(trackerConfigSchema, { listen: { port: 0 }, origins: { urls: cluster.originUrls } }), { logger: silentLogger() });
  agent = await startAgent(validateConfig<AgentConfig>(agentConfigSchema, {
    listen: { port: 0 }, peer: { port: 0 }, trackers: { urls: [tracker.url] }, origins: { urls: cluster.originUrls },
    buildIndex: { urls: [cluster.buildIndexUrl] }, cache: { dir: join(work, 'agent') },
  }), { logger: silentLogger() });
  image = await smallImage(join(work, 'img'), 'v1', 'node-mirror', 1024 * 1024);
  await copy(`oci:${image.dir}:v1`, `docker://${cluster.proxyHost}/team/app:v1`);
  // The mirror mode must never touch systemd: a stand-in that records calls instead.
  bin = join(work, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'systemctl'), `#!/bin/sh\necho "$*" >>'${join(work, 'systemctl.log')}'\n`, { mode: 0o755 });
});
afterAll(async () => {
  await agent?.close();
  await tracker?.close();
  await cluster?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

function script(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile('bash', [SCRIPT, ...args], { env: { ...process.env, PATH: `${bin}:${process.env['PATH']}` }, timeout: 60_000 }, (err, out, errOut) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out, err: errOut });
    });
  });
}

/** Every file under dir with its content. */
function tree(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile())
    .map((e) => [join(e.parentPath, e.name).slice(dir.length), readFileSync(join(e.parentPath, e.name), 'utf8')]));
}

async function registryBytes(): Promise<number> {
  const text = await (await fetch(`${agent.url}/metrics`)).text();
  return Number(/^krill_agent_registry_bytes_total(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1] ?? 0);
}

describe.each(availableContainerds())('node install script: hosts.toml mirror for containerd $version', ({ version }) => {
  let containerd: Containerd;
  let direct: CriClient;
  let dir: string;
  let args: string[];

  beforeAll(async () => {
    dir = join(work, `containerd-${version}`);
    containerd = await startContainerd({ dir, version, cri: {} });
    direct = createCriClient(containerd.socket);
    // --root / with this containerd's config: the script finds config_path = <dir>/certs.d in it.
    args = ['--root', '/', '--no-kubelet', '--containerd-mirror', '--containerd-config', join(dir, 'config.toml'),
      '--mirror-url', agent.url, '--state-dir', join(dir, 'krill-node-install')];
  });
  afterAll(async () => {
    direct?.close();
    await containerd?.close();
  });

  it('a registry name only krill serves is pulled through containerd\'s own CRI via the agent, and uninstall puts certs.d back', async () => {
    const ref = 'registry.krill.test/team/app:v1';
    await expect(direct.pullImage(ref)).rejects.toThrow();
    const before = tree(containerd.certsDir);

    const r = await script([...args, '--mirror-registries', 'registry.krill.test']);
    expect(r.code, r.err).toBe(0);
    expect(readFileSync(join(containerd.certsDir, 'registry.krill.test', 'hosts.toml'), 'utf8')).toContain(`[host."${agent.url}"]\n  capabilities = ["pull", "resolve"]\n`);
    const served = await registryBytes();
    expect(await direct.pullImage(ref)).toBe(image.images[0]!.config.digest);
    expect((await direct.imageStatus(ref)).image?.repoTags).toContain(ref);
    expect(await registryBytes()).toBeGreaterThan(served);

    // _default: the harness's own _default/hosts.toml gets krill's [host] before its closed port.
    const other = 'other.krill.test/team/app:v1';
    await expect(direct.pullImage(other)).rejects.toThrow();
    expect((await script(args)).code).toBe(0);
    expect(await direct.pullImage(other)).toBe(image.images[0]!.config.digest);

    const u = await script([...args, '--uninstall']);
    expect(u.code, u.err).toBe(0);
    expect(tree(containerd.certsDir)).toEqual(before);
    await expect(direct.pullImage('third.krill.test/team/app:v1')).rejects.toThrow();
    expect(readdirSync(work)).not.toContain('systemctl.log');
  });
});
