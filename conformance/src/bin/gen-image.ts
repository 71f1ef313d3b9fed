import { parseArgs } from 'node:util';
import { buildImage } from '../fixtures/oci-image.js';

/**
 * `node conformance/dist/bin/gen-image.js --dir DIR --tag TAG --layer-mb 1,8,50`: writes a
 * generated OCI image (one file per layer of the given sizes in MB) into an OCI layout, for the
 * Quickstart and for trying krill by hand.
 */
const { values } = parseArgs({ options: { dir: { type: 'string' }, tag: { type: 'string', default: 'latest' }, 'layer-mb': { type: 'string', default: '1,8,50' }, seed: { type: 'string' } } });
if (!values.dir) {
  process.stderr.write('usage: gen-image --dir DIR [--tag TAG] [--layer-mb 1,8,50] [--seed S]\n');
  process.exit(2);
}
const sizes = values['layer-mb'].split(',').map((s) => Number(s));
if (sizes.some((n) => !Number.isFinite(n) || n <= 0)) {
  process.stderr.write(`gen-image: --layer-mb must be a comma-separated list of positive numbers (got ${JSON.stringify(values['layer-mb'])})\n`);
  process.exit(2);
}
const img = await buildImage({
  dir: values.dir, tag: values.tag, seed: values.seed ?? `gen-${Date.now()}`,
  layers: sizes.map((mb, i) => ({ files: [{ path: `layer${i}/data.bin`, size: Math.round(mb * 1_000_000) }] })),
});
process.stdout.write(`wrote ${values.dir}:${values.tag} manifest ${img.manifest.digest} (${img.blobs.length} blobs)\n`);
