import { open } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';

/**
 * Sends bytes `start..end` (inclusive) of a file on an HTTP response whose head is already set,
 * reading into a few reused buffers. A stream from createReadStream allocates a new buffer for
 * every chunk: serving a GiB that way makes a thousand 1 MiB allocations outside the heap and
 * the full garbage collections they trigger, which took about as much CPU as the copying itself.
 * Here a buffer goes back to the pool once the socket has taken its bytes (the write callback),
 * so a transfer holds at most POOL buffers whatever its length.
 */
const CHUNK = 1024 * 1024;
/** Buffers one transfer keeps in flight: one being read while others are on the socket. */
const IN_FLIGHT = 3;
/** Idle buffers kept for the next transfer. */
const SPARE = 8;
const spare: Buffer[] = [];

const take = (): Buffer => spare.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
const give = (b: Buffer) => {
  if (spare.length < SPARE) spare.push(b);
};

export async function sendFileRange(res: ServerResponse, path: string, start: number, end: number): Promise<void> {
  const file = await open(path, 'r');
  const free: Array<() => void> = [];
  let inFlight = 0;
  let failed: Error | undefined;
  const onGone = () => {
    failed ??= new Error('the client went away');
    for (const wake of free.splice(0)) wake();
  };
  res.once('close', onGone);
  try {
    for (let pos = start; pos <= end;) {
      while (inFlight >= IN_FLIGHT && !failed) await new Promise<void>((r) => free.push(r));
      if (failed || res.destroyed) break;
      const buf = take();
      const { bytesRead } = await file.read(buf, 0, Math.min(CHUNK, end - pos + 1), pos);
      if (bytesRead === 0) {
        give(buf);
        throw new Error(`${path} ended at byte ${pos}, before ${end + 1}`);
      }
      pos += bytesRead;
      inFlight++;
      res.write(buf.subarray(0, bytesRead), (err) => {
        inFlight--;
        // A failed write may still hold the bytes; only a written buffer is reused.
        if (err) failed ??= err;
        else give(buf);
        free.shift()?.();
      });
    }
    if (!failed && !res.destroyed) {
      await new Promise<void>((resolve) => {
        res.once('close', resolve);
        res.end(resolve);
      });
    }
  } catch (err) {
    // The head is sent: the only way to tell the client is to cut the body short.
    res.destroy(err as Error);
  } finally {
    res.off('close', onGone);
    await file.close();
  }
}
