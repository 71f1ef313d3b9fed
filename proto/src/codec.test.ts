import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type * as grpc from '@grpc/grpc-js';
import { CONTAINERD_FILES, CRI_FILES, containerd, cri, loadPackage } from './loader.js';
import type { content } from './containerd-types.js';
import type { PullImageRequest } from './cri-image-types.js';
import type { CreateContainerRequest } from './cri-runtime-types.js';
import type { Input } from './message-types.js';

function roundTrip<T>(def: grpc.MethodDefinition<object, object>, request: Input<T>): T {
  return def.requestDeserialize(def.requestSerialize(request as object)) as T;
}

/** Field name (camelCase, as loaded) to field number of a message, read from the loaded descriptor. */
function fieldNumbers(root: grpc.GrpcObject, message: string): Record<string, number> {
  let node: unknown = root;
  for (const part of message.split('.')) node = (node as Record<string, unknown>)[part];
  const fields = (node as { type: { field: { name: string; number: number }[] } }).type.field;
  return Object.fromEntries(fields.map((f) => [f.name, f.number]));
}

describe('PullImageRequest', () => {
  it('round-trips image, auth and sandboxConfig through the service definition', () => {
    const request: Input<PullImageRequest> = {
      image: { image: 'docker.io/library/busybox:latest', annotations: { 'io.kubernetes.pod.name': 'p' }, userSpecifiedImage: 'busybox', runtimeHandler: 'runc', imageRef: 'sha256:' + 'a'.repeat(64) },
      auth: { username: 'u', password: 'p', auth: Buffer.from('u:p').toString('base64'), serverAddress: 'registry.example', identityToken: 'id', registryToken: 'rt' },
      sandboxConfig: {
        metadata: { name: 'pod', uid: 'uid-1', namespace: 'default', attempt: 2 },
        hostname: 'pod',
        logDirectory: '/var/log/pods/default_pod_uid-1',
        dnsConfig: { servers: ['10.0.0.10'], searches: ['svc.cluster.local'], options: ['ndots:5'] },
        portMappings: [{ protocol: 'UDP', containerPort: 53, hostPort: 5353, hostIp: '127.0.0.1' }],
        labels: { app: 'x' },
        annotations: { note: 'y' },
        linux: {
          cgroupParent: '/kubepods',
          securityContext: { namespaceOptions: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' }, runAsUser: { value: 1000 }, supplementalGroups: [1, 2], supplementalGroupsPolicy: 'Strict' },
          sysctls: { 'net.core.somaxconn': '1024' },
        },
      },
    };
    const back = roundTrip<PullImageRequest>(cri().ImageService.service.PullImage!, request);
    expect(back).toMatchObject(request);
    // Fields never set come back at their defaults.
    expect(back.sandboxConfig!.windows).toBeNull();
    expect(back.sandboxConfig!.linux!.securityContext!.seccomp).toBeNull();
    expect(back.sandboxConfig!.linux!.securityContext!.privileged).toBe(false);
    expect(back.sandboxConfig!.linux!.securityContext!.namespaceOptions!.targetId).toBe('');
  });

  it('leaves unset nested messages null', () => {
    const back = roundTrip<PullImageRequest>(cri().ImageService.service.PullImage!, { image: { image: 'busybox' } });
    expect(back).toEqual({
      image: { image: 'busybox', annotations: {}, userSpecifiedImage: '', runtimeHandler: '', imageRef: '' },
      auth: null,
      sandboxConfig: null,
    });
  });
});

describe('CreateContainerRequest', () => {
  it('round-trips command, envs, mounts and namespace options', () => {
    const request: Input<CreateContainerRequest> = {
      podSandboxId: 'sb',
      config: {
        metadata: { name: 'c', attempt: 0 },
        image: { image: 'sha256:' + 'b'.repeat(64), userSpecifiedImage: 'busybox:latest' },
        command: ['/bin/sh', '-c'], args: ['echo hi'],
        envs: [{ key: 'A', value: '1' }],
        mounts: [{ containerPath: '/data', hostPath: '/tmp/data', readonly: true, propagation: 'PROPAGATION_HOST_TO_CONTAINER' }],
        logPath: 'c/0.log',
        linux: { securityContext: { namespaceOptions: { network: 'NODE', pid: 'CONTAINER', ipc: 'NODE' }, runAsUser: { value: 0 } } },
        CDIDevices: [{ name: 'vendor.com/gpu=0' }],
        stopSignal: 'SIGRTMINPLUS3',
      },
    };
    expect(roundTrip<CreateContainerRequest>(cri().RuntimeService.service.CreateContainer!, request)).toMatchObject(request);
  });
});

describe('content WriteContentRequest', () => {
  it('round-trips action, ref, sizes, digest, data and labels', () => {
    const data = Buffer.from('hello krill\n');
    const expected = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    const request: Input<content.WriteContentRequest> = {
      action: 'COMMIT', ref: `layer-${expected}`, total: 5_000_000_000, expected, offset: 4_999_999_988, data,
      labels: { 'containerd.io/gc.ref.content.config': expected },
    };
    const back = roundTrip<content.WriteContentRequest>(containerd().Content.service.Write!, request);
    expect(back).toEqual({ ...request, data });
    expect(Buffer.isBuffer(back.data)).toBe(true);
  });

  it('round-trips a WriteContentResponse with timestamps', () => {
    const def = containerd().Content.service.Write!;
    const response = { action: 'STAT', startedAt: { seconds: 1_700_000_000, nanos: 5 }, updatedAt: null, offset: 12, total: 12, digest: '' };
    expect(def.responseDeserialize(def.responseSerialize(response))).toEqual(response);
  });
});

describe('field numbers', () => {
  const criRoot = loadPackage(CRI_FILES);
  const ctdRoot = loadPackage(CONTAINERD_FILES);
  // Numbers from k8s.io/cri-api api.proto (HEAD) and containerd's api protos (2.x). A wrong
  // number is silently ignored by the peer, so these are pinned here.
  it.each([
    ['runtime.v1.ImageSpec', { image: 1, annotations: 2, userSpecifiedImage: 18, runtimeHandler: 19, imageRef: 20 }],
    ['runtime.v1.AuthConfig', { username: 1, password: 2, auth: 3, serverAddress: 4, identityToken: 5, registryToken: 6 }],
    ['runtime.v1.Image', { id: 1, repoTags: 2, repoDigests: 3, size: 4, uid: 5, username: 6, spec: 7, pinned: 8 }],
    ['runtime.v1.FilesystemUsage', { timestamp: 1, fsId: 2, usedBytes: 3, inodesUsed: 4 }],
    ['runtime.v1.PodSandboxConfig', { metadata: 1, hostname: 2, logDirectory: 3, dnsConfig: 4, portMappings: 5, labels: 6, annotations: 7, linux: 8, windows: 9 }],
    ['runtime.v1.NamespaceOption', { network: 1, pid: 2, ipc: 3, targetId: 4, usernsOptions: 5 }],
    ['runtime.v1.ContainerConfig', { metadata: 1, image: 2, command: 3, args: 4, workingDir: 5, envs: 6, mounts: 7, devices: 8, labels: 9, annotations: 10, logPath: 11, stdin: 12, stdinOnce: 13, tty: 14, linux: 15, windows: 16, CDIDevices: 17, stopSignal: 18 }],
    ['runtime.v1.ContainerStatus', { id: 1, metadata: 2, state: 3, createdAt: 4, startedAt: 5, finishedAt: 6, exitCode: 7, image: 8, imageRef: 9, reason: 10, message: 11, labels: 12, annotations: 13, mounts: 14, logPath: 15, resources: 16, imageId: 17, user: 18, stopSignal: 19 }],
  ] as const)('%s', (message, numbers) => {
    expect(fieldNumbers(criRoot, message)).toEqual(numbers);
  });

  it.each([
    ['containerd.types.Descriptor', { mediaType: 1, digest: 2, size: 3, annotations: 5 }],
    ['containerd.services.content.v1.WriteContentRequest', { action: 1, ref: 2, total: 3, expected: 4, offset: 5, data: 6, labels: 7 }],
    ['containerd.services.content.v1.WriteContentResponse', { action: 1, startedAt: 2, updatedAt: 3, offset: 4, total: 5, digest: 6 }],
    ['containerd.services.images.v1.Image', { name: 1, labels: 2, target: 3, createdAt: 7, updatedAt: 8 }],
    ['containerd.services.images.v1.DeleteImageRequest', { name: 1, sync: 2, target: 3 }],
    ['containerd.services.leases.v1.CreateRequest', { id: 1, labels: 3 }],
    ['containerd.services.diff.v1.ApplyRequest', { diff: 1, mounts: 2, payloads: 3, syncFs: 4 }],
    ['containerd.services.diff.v1.DiffResponse', { diff: 3 }],
  ] as const)('%s', (message, numbers) => {
    expect(fieldNumbers(ctdRoot, message)).toEqual(numbers);
  });
});
