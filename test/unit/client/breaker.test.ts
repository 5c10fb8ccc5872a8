import { describe, expect, it } from 'vitest';
import { CircuitBreaker, classify, isKeyProtectUrl, parseEndpoints } from '../../../src/client/index.js';

describe('CircuitBreaker', () => {
  it('opens after the threshold, lets one half-open probe through after the cooldown, closes on success', () => {
    // Arrange
    let now = 0;
    const moves: string[] = [];
    const b = new CircuitBreaker(
      2,
      1_000,
      () => now,
      (from, to) => moves.push(`${from}>${to}`),
    );
    // Act / Assert
    b.failure();
    expect(b.canTry()).toBe(true);
    b.failure();
    expect(b.state).toBe('open');
    expect(b.canTry()).toBe(false);
    now = 999;
    expect(b.canTry()).toBe(false);
    now = 1_000;
    expect(b.canTry()).toBe(true);
    b.take();
    expect(b.canTry()).toBe(false); // one probe at a time
    b.failure();
    expect(b.state).toBe('open'); // the probe failed: another cooldown
    now = 2_000;
    b.take();
    b.success();
    expect(b.state).toBe('closed');
    expect(moves).toEqual(['closed>open', 'open>half-open', 'half-open>open', 'open>half-open', 'half-open>closed']);
  });

  it('a released probe frees the half-open slot without judging the member', () => {
    let now = 0;
    const b = new CircuitBreaker(
      1,
      10,
      () => now,
      () => undefined,
    );
    b.failure();
    now = 10;
    b.take();
    b.release();
    expect(b.canTry()).toBe(true);
    expect(b.state).toBe('half-open');
  });
});

describe('classify', () => {
  const m = { role: 'primary' as const, region: 'us-south', instanceId: 'i', keyId: 'k' };
  it.each([
    [{ status: 429 }, 'throttled'],
    [{ status: 503 }, 'unavailable'],
    [{ status: 500 }, 'unavailable'],
    [{ status: 422 }, 'rejected'],
    [{ status: 400 }, 'rejected'],
    [{ status: 401 }, 'denied'],
    [{ status: 403 }, 'denied'],
    [{ status: 404 }, 'member-state'],
    [{ status: 410 }, 'member-state'],
    [{ statusText: 'ECONNREFUSED' }, 'connection'],
    [{ statusText: 'ECONNRESET' }, 'connection'],
    [{ statusText: 'ETIMEDOUT' }, 'timeout'],
  ])('%o is %s', (err, kind) => {
    expect(classify(m, err).kind).toBe(kind);
  });
});

describe('descriptor from the API', () => {
  const member = (url: string) => ({
    role: 'primary',
    region: 'us-south',
    instanceId: 'i',
    keyId: 'k',
    endpoints: { public: url, private: 'https://private.us-south.kms.cloud.ibm.com' },
  });
  it.each([
    ['https://us-south.kms.cloud.ibm.com', true],
    ['https://private.eu-de.kms.cloud.ibm.com/', true],
    ['http://127.0.0.1:4601', true],
    ['http://us-south.kms.cloud.ibm.com', false],
    ['https://us-south.kms.cloud.ibm.com.evil.example', false],
    ['https://evil.example/us-south.kms.cloud.ibm.com', false],
  ])('%s trusted: %s', (url, trusted) => {
    expect(isKeyProtectUrl(url)).toBe(trusted);
    const parse = () => parseEndpoints({ members: [member(url)] }, 'public');
    if (trusted) expect(parse()[0]?.url).toBe(url);
    else expect(parse).toThrow(/not a trusted Key Protect URL/);
  });

  it('uses the private URL when asked for, and a caller-supplied trust rule', () => {
    expect(parseEndpoints({ members: [member('https://us-south.kms.cloud.ibm.com')] }, 'private')[0]?.url).toBe(
      'https://private.us-south.kms.cloud.ibm.com',
    );
    const proxy = 'https://kms-proxy.internal.example';
    expect(parseEndpoints({ members: [member(proxy)] }, 'public', (u) => u === proxy)[0]?.url).toBe(proxy);
  });
});
