import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { buildImage, type LayerSpec, type Platform, type RunConfig } from '../fixtures/oci-image.js';

/**
 * `node conformance/dist/bin/gen-image.js --dir DIR --tag TAG --layer-mb 1,8,50`: writes a
 * generated OCI image (one file per layer of the given sizes in MB) into an OCI layout, for the
 * Quickstart and for trying krill by hand.
 *
 * With `--busybox PATH` (a statically linked busybox, e.g. Debian's busybox-static /bin/busybox)
 * the image runs: a first layer holds PATH as /bin/busybox with `sh`, `sleep` and `test` linked
 * to it, the generated layers follow (`/layer<i>/data.bin`, i from 0), and the config's
 * entrypoint sleeps until SIGTERM, on which it exits 0 at once. The platform is the binary's own
 * (read from its ELF header), so the image runs on the machines that binary runs on.
 */

/** ELF e_machine values (System V ABI, "Machine Information") and their OCI architectures. */
const ELF_MACHINES: Record<number, string> = { 0x3e: 'amd64', 0xb7: 'arm64', 0xf3: 'riscv64', 0x15: 'ppc64le' };
/** Program header type of the dynamic loader's path: present only in dynamically linked binaries. */
const PT_INTERP = 3;

const USAGE = 'usage: gen-image --dir DIR [--tag TAG] [--layer-mb 1,8,50] [--seed S] [--busybox PATH]\n';
const { values } = parseArgs({
  options: { dir: { type: 'string' }, tag: { type: 'string', default: 'latest' }, 'layer-mb': { type: 'string', default: '1,8,50' }, seed: { type: 'string' }, busybox: { type: 'string' } },
});
const fail = (message: string): never => {
  process.stderr.write(`gen-image: ${message}\n`);
  process.exit(2);
};
if (!values.dir) {
  process.stderr.write(USAGE);
  process.exit(2);
}
const sizes = values['layer-mb'].split(',').map((s) => Number(s));
if (sizes.some((n) => !Number.isFinite(n) || n <= 0)) fail(`--layer-mb must be a comma-separated list of positive numbers (got ${JSON.stringify(values['layer-mb'])})`);
const dataLayers: LayerSpec[] = sizes.map((mb, i) => ({ files: [{ path: `layer${i}/data.bin`, size: Math.round(mb * 1_000_000) }] }));

/** The entrypoint of a `--busybox` image: PID 1 has no default signal actions, so it traps TERM itself. */
const SLEEP_UNTIL_TERM = ['/bin/sh', '-c', 'trap "exit 0" TERM INT; sleep 2147483647 & wait'];
const busybox = values.busybox === undefined ? undefined : readBusybox(values.busybox);
const img = await buildImage({
  dir: values.dir, tag: values.tag, seed: values.seed ?? `gen-${Date.now()}`,
  ...(busybox
    ? {
        layers: [busyboxBaseLayer(busybox.binary), ...dataLayers], platform: busybox.platform,
        run: { Entrypoint: SLEEP_UNTIL_TERM, Cmd: [], Env: ['PATH=/bin'] } satisfies RunConfig,
      }
    : { layers: dataLayers }),
});
process.stdout.write(`wrote ${values.dir}:${values.tag} manifest ${img.manifest.digest} (${img.blobs.length} blobs)\n`);

/** The base layer of a runnable image: the directories runc expects, busybox and the applets the entrypoint and probes call. */
function busyboxBaseLayer(binary: Buffer): LayerSpec {
  return {
    files: [
      ...['bin', 'dev', 'etc', 'proc', 'sys', 'root'].map((d) => ({ path: d, dir: true as const })),
      { path: 'tmp', dir: true, mode: 0o1777 },
      { path: 'bin/busybox', content: binary, mode: 0o755 },
      // busybox runs the applet named by argv[0].
      ...['sh', 'sleep', 'test', 'cat', 'ls'].map((a) => ({ path: `bin/${a}`, symlink: 'busybox' })),
      { path: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' },
      { path: 'etc/group', content: 'root:x:0:\nnogroup:x:65534:\n' },
    ],
  };
}

/**
 * Reads a busybox binary and its platform. Only 64-bit little-endian ELF is read, which covers
 * every architecture kind has node images for. A dynamically linked binary is refused: the image
 * holds no libc, so it could not start.
 */
function readBusybox(path: string): { binary: Buffer; platform: Platform } {
  let binary: Buffer;
  try {
    binary = readFileSync(path);
  } catch (err) {
    return fail(`--busybox ${path}: ${(err as Error).message} (Debian and Ubuntu: apt-get install busybox-static)`);
  }
  if (binary.length < 64 || binary.readUInt32BE(0) !== 0x7f454c46) return fail(`--busybox ${path}: not an ELF binary`);
  if (binary[4] !== 2 || binary[5] !== 1) return fail(`--busybox ${path}: only 64-bit little-endian ELF binaries are supported`);
  const architecture = ELF_MACHINES[binary.readUInt16LE(18)];
  if (!architecture) return fail(`--busybox ${path}: unsupported ELF machine ${binary.readUInt16LE(18)}`);
  // ELF64 header: e_phoff at 32 (8 bytes), e_phentsize at 54, e_phnum at 56; p_type first in each entry.
  const phoff = Number(binary.readBigUInt64LE(32));
  const phentsize = binary.readUInt16LE(54);
  for (let i = 0; i < binary.readUInt16LE(56); i++) {
    const at = phoff + i * phentsize;
    if (at + 4 > binary.length) return fail(`--busybox ${path}: truncated ELF program headers`);
    if (binary.readUInt32LE(at) === PT_INTERP) return fail(`--busybox ${path}: dynamically linked; a static busybox is needed (Debian and Ubuntu: busybox-static)`);
  }
  return { binary, platform: { os: 'linux', architecture } };
}
