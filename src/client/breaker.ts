import type { BreakerState } from './types.js';

/**
 * A per-member circuit breaker: `threshold` consecutive unavailability failures open it; after `cooldownMs` one
 * call may probe it (half-open); the probe's success closes it, its failure opens it again for another cooldown.
 * Answers that say nothing about availability (400/401/403/422) neither open nor close it.
 */
export class CircuitBreaker {
  #state: BreakerState = 'closed';
  #failures = 0;
  #openedAtMs = 0;
  #probing = false;

  constructor(
    private readonly threshold: number,
    private readonly cooldownMs: number,
    private readonly nowMs: () => number,
    private readonly onChange: (from: BreakerState, to: BreakerState) => void,
  ) {}

  get state(): BreakerState {
    if (this.#state === 'open' && this.nowMs() - this.#openedAtMs >= this.cooldownMs) this.#move('half-open');
    return this.#state;
  }

  /** May a call use this member now? In half-open, only one probe at a time; `take` claims it. */
  canTry(): boolean {
    const s = this.state;
    return s === 'closed' || (s === 'half-open' && !this.#probing);
  }

  /** Marks the start of a call (claims the half-open probe). */
  take(): void {
    if (this.state === 'half-open') this.#probing = true;
  }

  success(): void {
    this.#failures = 0;
    this.#probing = false;
    if (this.#state !== 'closed') this.#move('closed');
  }

  failure(): void {
    this.#probing = false;
    this.#failures += 1;
    if (this.#state === 'half-open' || (this.#state === 'closed' && this.#failures >= this.threshold)) {
      this.#openedAtMs = this.nowMs();
      this.#move('open');
    }
  }

  /** A call that ended without saying anything about availability (e.g. aborted because another member won). */
  release(): void {
    this.#probing = false;
  }

  #move(to: BreakerState): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    this.onChange(from, to);
  }
}
