import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import type * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CONTAINERD_FILES, CRI_FILES, LOADER_OPTIONS, PROTO_ROOT, containerd, cri, loadPackage } from './loader.js';

/** Runs `fn` and returns every warning it raised through process.emitWarning or console. */
function captureWarnings(fn: () => void): string[] {
  const seen: string[] = [];
  const record = (...args: unknown[]) => { seen.push(args.map(String).join(' ')); };
  const spies = [
    vi.spyOn(process, 'emitWarning').mockImplementation(record),
    vi.spyOn(console, 'warn').mockImplementation(record),
    vi.spyOn(console, 'error').mockImplementation(record),
    vi.spyOn(console, 'log').mockImplementation(record),
  ];
  try {
    fn();
  } finally {
    for (const s of spies) s.mockRestore();
  }
  return seen;
}

function rpcs(ctor: grpc.ServiceClientConstructor): string[] {
  return Object.keys(ctor.service).sort();
}

const RUNTIME_RPCS = [
  'Version', 'RunPodSandbox', 'StopPodSandbox', 'RemovePodSandbox', 'PodSandboxStatus', 'ListPodSandbox',
  'StreamPodSandboxes', 'CreateContainer', 'StartContainer', 'StopContainer', 'RemoveContainer', 'ListContainers',
  'StreamContainers', 'ContainerStatus', 'UpdateContainerResources', 'ReopenContainerLog', 'ExecSync', 'Exec',
  'Attach', 'PortForward', 'ContainerStats', 'ListContainerStats', 'StreamContainerStats', 'PodSandboxStats',
  'ListPodSandboxStats', 'StreamPodSandboxStats', 'UpdateRuntimeConfig', 'Status', 'CheckpointContainer',
  'GetContainerEvents', 'ListMetricDescriptors', 'ListPodSandboxMetrics', 'StreamPodSandboxMetrics', 'RuntimeConfig',
  'UpdatePodSandboxResources',
];

const CONTAINERD_RPCS: Record<string, string[]> = {
  Content: ['Info', 'Update', 'List', 'Delete', 'Read', 'Status', 'ListStatuses', 'Write', 'Abort'],
  Images: ['Get', 'List', 'Create', 'Update', 'Delete'],
  Leases: ['Create', 'Delete', 'List', 'AddResource', 'DeleteResource', 'ListResources'],
  Snapshots: ['Prepare', 'View', 'Mounts', 'Commit', 'Remove', 'Stat', 'Update', 'List', 'Usage', 'Cleanup'],
  Diff: ['Apply', 'Diff'],
  Introspection: ['Plugins', 'Server', 'PluginInfo'],
  Version: ['Version'],
  Namespaces: ['Get', 'List', 'Create', 'Update', 'Delete'],
};

describe('cri()', () => {
  it('ImageService has exactly the runtime.v1 image RPCs', () => {
    expect(rpcs(cri().ImageService)).toEqual(['ImageFsInfo', 'ImageStatus', 'ListImages', 'PullImage', 'RemoveImage', 'StreamImages']);
    expect(cri().ImageService.service.PullImage!.path).toBe('/runtime.v1.ImageService/PullImage');
  });

  it('RuntimeService has exactly the runtime.v1 runtime RPCs', () => {
    expect(rpcs(cri().RuntimeService)).toEqual([...RUNTIME_RPCS].sort());
  });

  it('marks the streaming RPCs as server streams', () => {
    const { ImageService, RuntimeService } = cri();
    const streams = (c: grpc.ServiceClientConstructor) => Object.entries(c.service).filter(([, d]) => d.responseStream).map(([n]) => n).sort();
    expect(streams(ImageService)).toEqual(['StreamImages']);
    expect(streams(RuntimeService)).toEqual(['GetContainerEvents', 'StreamContainerStats', 'StreamContainers', 'StreamPodSandboxMetrics', 'StreamPodSandboxStats', 'StreamPodSandboxes']);
    expect(Object.values(RuntimeService.service).some((d) => d.requestStream)).toBe(false);
  });

  it('is cached after the first load', () => {
    expect(cri()).toBe(cri());
  });
});

describe('containerd()', () => {
  it.each(Object.entries(CONTAINERD_RPCS))('%s has exactly its RPCs', (name, expected) => {
    const ctor = containerd()[name as keyof ReturnType<typeof containerd>];
    expect(rpcs(ctor)).toEqual([...expected].sort());
  });

  it('uses containerd gRPC paths and stream kinds', () => {
    const { Content, Snapshots } = containerd();
    expect(Content.service.Write).toMatchObject({ path: '/containerd.services.content.v1.Content/Write', requestStream: true, responseStream: true });
    expect(Content.service.Read).toMatchObject({ requestStream: false, responseStream: true });
    expect(Content.service.List).toMatchObject({ requestStream: false, responseStream: true });
    expect(Snapshots.service.List).toMatchObject({ requestStream: false, responseStream: true });
  });

  it('is cached after the first load', () => {
    expect(containerd()).toBe(containerd());
  });
});

describe('loading', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('finds the .proto files one level above src/ (or dist/)', () => {
    expect(basename(PROTO_ROOT)).toBe('proto');
    for (const f of [...CRI_FILES, ...CONTAINERD_FILES, 'google/rpc/status.proto']) expect(existsSync(join(PROTO_ROOT, f)), f).toBe(true);
  });

  it('emits no protobufjs or proto-loader warnings for the CRI and containerd files', () => {
    expect(captureWarnings(() => loadPackage(CRI_FILES))).toEqual([]);
    expect(captureWarnings(() => loadPackage(CONTAINERD_FILES))).toEqual([]);
  });

  // The check above only means something if a warning would be caught: a gogo-style weak
  // import is what upstream containerd 1.6 files have, and it warns.
  it('catches the warning a weak gogoproto import raises', () => {
    dir = mkdtempSync(join(tmpdir(), 'krill-proto-'));
    writeFileSync(join(dir, 'weak.proto'), 'syntax = "proto3";\npackage t;\nimport weak "gogoproto/gogo.proto";\nmessage M { string a = 1; }\n');
    const warnings = captureWarnings(() => protoLoader.loadSync('weak.proto', { ...LOADER_OPTIONS, includeDirs: [dir!] }));
    expect(warnings.join('\n')).toMatch(/gogoproto\/gogo\.proto not found/);
  });
});
