/**
 * A token bucket: `rate` tokens (bytes) a second, holding at most `burst`. One per process per
 * direction limits all peer traffic together (ingress and egress caps). A take larger than the
 * burst is allowed to run the bucket into debt, so a piece bigger than the burst still goes
 * through at the configured rate on average.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly rate: number,
    readonly burst: number,
    private readonly now: () => number = () => performance.now(),
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  ) {
    if (!(rate > 0) || !(burst > 0)) throw new Error(`token bucket: rate and burst must be positive (got ${rate}, ${burst})`);
    this.tokens = burst;
    this.last = now();
  }

  /** Waits until `n` tokens may be spent, then spends them. Callers are served in call order. */
  async take(n: number): Promise<void> {
    const turn = this.queue.then(() => this.spend(n));
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  private queue: Promise<void> = Promise.resolve();

  private async spend(n: number): Promise<void> {
    this.refill();
    this.tokens -= n;
    if (this.tokens >= 0) return;
    await this.sleep((-this.tokens / this.rate) * 1000);
    this.refill();
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
  }
}

/** No limit: for a process configured without a cap. */
export const UNLIMITED = { take: async (_n: number): Promise<void> => undefined };
