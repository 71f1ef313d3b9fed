import { parseArgs } from 'node:util';
import { createCriClient } from '../harness/cri-client.js';

/**
 * `node conformance/dist/bin/cri.js --socket SOCK pull|images|inspecti|rmi [IMAGE]`: the CRI
 * image calls crictl makes, for the Quickstart and for trying krill's socket by hand on machines
 * without crictl.
 */
const { values, positionals } = parseArgs({ options: { socket: { type: 'string' } }, allowPositionals: true });
const [verb, image] = positionals;
if (!values.socket || !verb || (verb !== 'images' && !image)) {
  process.stderr.write('usage: cri --socket SOCK pull IMAGE | images | inspecti IMAGE | rmi IMAGE\n');
  process.exit(2);
}
const cri = createCriClient(values.socket);
try {
  if (verb === 'pull') {
    const t0 = performance.now();
    const id = await cri.pullImage(image!);
    process.stdout.write(`Image is up to date for ${id} (${((performance.now() - t0) / 1000).toFixed(2)} s)\n`);
  } else if (verb === 'images') {
    for (const i of await cri.listImages()) process.stdout.write(`${i.id}  ${(i.size / 1e6).toFixed(1)} MB  ${[...i.repoTags, ...i.repoDigests].join(' ')}\n`);
  } else if (verb === 'inspecti') {
    process.stdout.write(`${JSON.stringify(await cri.imageStatus(image!, true), null, 2)}\n`);
  } else if (verb === 'rmi') {
    const st = await cri.imageStatus(image!);
    if (st.image) await cri.removeImage(st.image.id);
    process.stdout.write(`Deleted: ${st.image?.id ?? image}\n`);
  } else {
    throw new Error(`unknown command ${verb}`);
  }
} catch (err) {
  const e = err as { code?: number; details?: string; message: string };
  process.stderr.write(`cri ${verb}: ${e.details ?? e.message}${e.code !== undefined ? ` (gRPC code ${e.code})` : ''}\n`);
  process.exitCode = 1;
} finally {
  cri.close();
}
