/**
 * Page-aligned buffers, for direct I/O (O_DIRECT), which moves a piece between a file and the
 * process's memory without the kernel's page cache but only from and to memory aligned to the
 * device's block (512 B or 4 KiB). Node's own buffers are aligned to 16 bytes only (they come
 * from malloc), and JavaScript cannot see an address to align by hand; a WebAssembly memory is
 * mapped by V8 on its own pages, so views at multiples of 64 KiB into one are page-aligned.
 *
 * A slab is one such memory cut into equal buffers. V8 reserves address space (not memory) of
 * several GiB for each WebAssembly memory and caps the total at about a hundred, so buffers
 * come in slabs of SLAB_BYTES rather than one memory each. A slab's memory is freed by the GC
 * once none of its buffers is referenced any more.
 */

/** WebAssembly's page: memories are sized in these, and their views here start on one. */
const WASM_PAGE_BYTES = 64 * 1024;

/**
 * Eight pieces of 1 MiB (two of 4 MiB): few enough memories for any swarm's buffers, small
 * enough that a slab kept alive by one buffer in use holds little idle memory.
 */
const SLAB_BYTES = 8 * 1024 * 1024;

/** The part of the WebAssembly API used here (TypeScript declares it only with the DOM's types). */
declare const WebAssembly: { Memory: new (d: { initial: number; maximum: number }) => { buffer: ArrayBuffer } };

const aligned = new WeakSet<Buffer>();

/** True for a buffer `allocAlignedSlab` returned (not a slice of one). */
export function isAligned(buf: Buffer): boolean {
  return aligned.has(buf);
}

/**
 * New page-aligned buffers of `size` bytes (a multiple of 64 KiB), as many as fit a slab (at
 * least one), sharing one WebAssembly memory. Contents are zero.
 */
export function allocAlignedSlab(size: number): Buffer[] {
  if (!(size > 0) || size % WASM_PAGE_BYTES !== 0) throw new RangeError(`aligned buffers are multiples of ${WASM_PAGE_BYTES} bytes, not ${size}`);
  const count = Math.max(1, Math.floor(SLAB_BYTES / size));
  const pages = (size * count) / WASM_PAGE_BYTES;
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const buf = Buffer.from(memory.buffer, i * size, size);
    aligned.add(buf);
    out.push(buf);
  }
  return out;
}
