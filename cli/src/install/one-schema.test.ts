import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { devclusterLayout } from '../commands/devcluster.js';
import { main } from '../main.js';
import { defaultInstallConfig, validateInstallConfig, type InstallConfig } from './install-config.js';
import type { Component } from './names.js';
import { clusterComponentConfigs } from './render.js';

type Config = Record<string, any>;

/**
 * A config without what is the devcluster's or the cluster's own to decide: addresses, ports,
 * directories, sockets, membership lists, and the rule the devcluster adds for its proxy.
 */
function withoutPlacement(config: Config, devcluster: boolean): Config {
  const c = structuredClone(config);
  delete c['listen'];
  delete c['peer'];
  delete c['db'];
  delete c['uploadDir'];
  for (const key of ['cluster', 'origins']) if (c[key]) delete c[key][key === 'cluster' ? 'origins' : 'urls'];
  for (const key of ['trackers', 'buildIndex']) if (c[key]) delete c[key]['urls'];
  // The cluster's origins and trackers come from DNS, the devcluster's from its list.
  for (const key of ['cluster', 'origins', 'trackers']) if (c[key]) delete c[key]['dns'];
  if (c['store']) delete c['store']['dir'];
  if (c['cache']) delete c['cache']['dir'];
  for (const rule of c['backends'] ?? []) if (rule.fs) delete rule.fs.root;
  if (c['cri']) {
    delete c['cri']['socket'];
    delete c['cri']['containerd']['socket'];
    if (devcluster) c['cri']['registries'] = c['cri']['registries'].slice(1);
  }
  return c;
}

/** The devcluster's config for each component kind, from the same install config. */
function devclusterConfigs(install: InstallConfig): Record<Component, Config> {
  const layout = devclusterLayout('/tmp/krill-dc', 16000, install.origin.replicas, 2, { containerdSocket: '/tmp/krill-dc/containerd.sock' }, install);
  const by = (name: string) => layout.find((c) => c.name === name)!.config;
  return { tracker: by('tracker'), origin: by('origin-0'), 'build-index': by('build-index'), proxy: by('proxy'), node: by('node-1') };
}

async function run(argv: string[]) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let err = '';
  stderr.on('data', (c) => (err += c));
  const code = await main(argv, { env: {}, stdout, stderr, stopSignal: new Promise(() => {}) });
  return { code, err };
}

const s3Install = () => validateInstallConfig({
  logLevel: 'debug',
  origin: { blobReplicas: 2, capacityBytes: 5_000_000_000, storage: { backend: 's3', s3: { bucket: 'blobs', endpoint: 'http://127.0.0.1:9000', forcePathStyle: true } } },
  node: { cacheCapacityBytes: 1_000_000_000, defaultMode: 'direct', registries: [{ host: 'quay.io', mode: 'direct' }] },
});

describe('krill devcluster and krill manifests share one install config schema', () => {
  it('build every component\'s config alike, differing only in addresses, ports, directories and membership', () => {
    for (const install of [defaultInstallConfig(), s3Install()]) {
      const dev = devclusterConfigs(install);
      const cluster = clusterComponentConfigs(install);
      for (const c of Object.keys(cluster) as Component[]) {
        expect(withoutPlacement(dev[c], true), c).toEqual(withoutPlacement(cluster[c], false));
      }
    }
  });

  it('show a change to an install config default in both', () => {
    const install = s3Install();
    for (const configs of [devclusterConfigs(install), clusterComponentConfigs(install)]) {
      for (const c of Object.values(configs)) expect(c['logLevel']).toBe('debug');
      expect(configs.origin['cluster'].replicas).toBe(2);
      expect(configs.origin['store'].capacityBytes).toBe(5_000_000_000);
      expect(configs.origin['backends']).toEqual([{ namespace: '.*', s3: { bucket: 'blobs', region: 'us-east-1', forcePathStyle: true, prefix: '', endpoint: 'http://127.0.0.1:9000' } }]);
      expect(configs.tracker['origins'].replicas).toBe(2);
      expect(configs.node['cache'].capacityBytes).toBe(1_000_000_000);
      expect(configs.node['cri'].defaultMode).toBe('direct');
      expect(configs.node['cri'].registries.at(-1)).toEqual({ host: 'quay.io', mode: 'direct' });
    }
    // The default itself: 80% of the origin volume in both.
    const defaults = defaultInstallConfig();
    expect(devclusterConfigs(defaults).origin['store'].capacityBytes).toBe(Math.floor(100 * 2 ** 30 * 0.8));
    expect(clusterComponentConfigs(defaults).origin['store'].capacityBytes).toBe(Math.floor(100 * 2 ** 30 * 0.8));
  });

  it('reject an invalid install config in both commands with the same message, before the devcluster starts anything', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'krill-one-schema-'));
    const file = join(dir, 'install.yaml');
    for (const [text, message] of [
      ['origin: { replicas: three }\n', `config key origin.replicas in ${file}: must be integer (got "three")`],
      ['buildIndex: { replicas: 2 }\n', `config key buildIndex.replicas in ${file}: must be <= 1 (got 2)`],
      ['tracker: { typo: 1 }\n', `config key tracker.typo in ${file}: unknown key`],
    ] as const) {
      writeFileSync(file, text);
      const manifests = await run(['manifests', '--config', file]);
      const devcluster = await run(['devcluster', '--config', file, '--dir', join(dir, 'cluster'), '--no-containerd']);
      expect([manifests.code, devcluster.code]).toEqual([2, 2]);
      expect(manifests.err.split('\n')[0]).toBe(`krill manifests: ${message}`);
      expect(devcluster.err.split('\n')[0]).toBe(`krill devcluster: ${message}`);
      expect(existsSync(join(dir, 'cluster'))).toBe(false);
    }
  });
});
