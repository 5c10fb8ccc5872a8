import { describe, expect, it } from 'vitest';
import { EnvReader, readCommonConfig } from '../../../src/codeengine/index.js';

const base = { LOCKSTEP_API_KEY: 'k'.repeat(20) };

describe('Key Protect endpoints: public or private, for all regions or per region', () => {
  it('uses the public hosts by default', () => {
    const c = readCommonConfig(new EnvReader(base));
    expect(c.kpEndpoints['us-south']).toBe('https://us-south.kms.cloud.ibm.com');
  });

  it('LOCKSTEP_KP_ENDPOINT_TYPE=private switches every region to private.<region>.kms.cloud.ibm.com', () => {
    const c = readCommonConfig(new EnvReader({ ...base, LOCKSTEP_KP_ENDPOINT_TYPE: 'private' }));
    expect(c.kpEndpoints['us-south']).toBe('https://private.us-south.kms.cloud.ibm.com');
    expect(c.kpEndpoints['eu-de']).toBe('https://private.eu-de.kms.cloud.ibm.com');
  });

  it('LOCKSTEP_KP_ENDPOINT_TYPES overrides per region, with explicit private URLs', () => {
    const r = new EnvReader({
      ...base,
      LOCKSTEP_KP_ENDPOINTS: JSON.stringify({ 'us-south': 'http://127.0.0.1:1', 'eu-de': 'http://127.0.0.1:2' }),
      LOCKSTEP_KP_PRIVATE_ENDPOINTS: JSON.stringify({ 'eu-de': 'http://127.0.0.1:3' }),
      LOCKSTEP_KP_ENDPOINT_TYPES: JSON.stringify({ 'eu-de': 'private' }),
    });
    const c = readCommonConfig(r);
    r.done('test');
    expect(c.kpEndpoints).toEqual({ 'us-south': 'http://127.0.0.1:1', 'eu-de': 'http://127.0.0.1:3' });
  });

  it('rejects an unknown endpoint type, naming the variable', () => {
    const r = new EnvReader({
      ...base,
      LOCKSTEP_KP_ENDPOINT_TYPE: 'direct',
      LOCKSTEP_KP_ENDPOINT_TYPES: '{"us-south":"x"}',
    });
    readCommonConfig(r);
    expect(() => r.done('test')).toThrow(
      /LOCKSTEP_KP_ENDPOINT_TYPE must be public or private.*LOCKSTEP_KP_ENDPOINT_TYPES must be JSON/,
    );
  });
});
