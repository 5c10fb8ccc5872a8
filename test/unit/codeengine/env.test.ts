import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  createEventNotificationsNotifier,
  createWebhookNotifier,
  EnvReader,
  hmacAuthenticator,
  readApiConfig,
  readCommonConfig,
  readEventsAuthConfig,
  readOwnIamIds,
} from '../../../src/codeengine/index.js';
import { hasCode, Sensitive } from '../../../src/core/index.js';

function configError(fn: () => void): { message: string; problems: string[] } {
  try {
    fn();
  } catch (err) {
    expect(hasCode(err, 'CONFIG_INVALID')).toBe(true);
    const e = err as Error & { details: { problems: string[] } };
    return { message: e.message, problems: e.details.problems };
  }
  throw new Error('expected CONFIG_INVALID');
}

describe('function configuration', () => {
  it('the events function requires LOCKSTEP_OWN_IAM_IDS: without it nothing could ever be lockstep’s own', () => {
    const missing = new EnvReader({ LOCKSTEP_OWN_IAM_IDS: ' , ' });
    readOwnIamIds(missing);
    expect(configError(() => missing.done('events')).problems).toEqual([
      expect.stringMatching(/^LOCKSTEP_OWN_IAM_IDS is not set/),
    ]);
    const bad = new EnvReader({ LOCKSTEP_OWN_IAM_IDS: 'iam-Profile-1,=HYPERLINK("x")' });
    readOwnIamIds(bad);
    expect(configError(() => bad.done('events')).problems[0]).toMatch(/is not an IAM id/);
    const ok = new EnvReader({ LOCKSTEP_OWN_IAM_IDS: 'iam-Profile-1, iam-ServiceId-2' });
    expect(readOwnIamIds(ok)).toEqual(['iam-Profile-1', 'iam-ServiceId-2']);
    ok.done('events');
  });

  it('lists every missing or invalid variable at once, never echoing secrets', () => {
    const r = new EnvReader({
      LOCKSTEP_KP_ENDPOINTS: 'not json',
      LOCKSTEP_EVENTS_TOKENS: 'id:short',
      LOCKSTEP_API_ROLES: 'x=king',
    });
    readCommonConfig(r);
    readEventsAuthConfig(r);
    readApiConfig(r);
    const { message, problems } = configError(() => r.done('events'));
    expect(problems).toEqual([
      'LOCKSTEP_TRUSTED_PROFILE or LOCKSTEP_API_KEY is not set (how lockstep authenticates to Key Protect)',
      'LOCKSTEP_KP_ENDPOINTS must be JSON: {"<region>": "<url>"}',
      'LOCKSTEP_EVENTS_TOKENS: secret "id" must be at least 16 characters',
      'LOCKSTEP_API_ROLES: "x=king" must be <iam id>=operator|auditor',
    ]);
    expect(message).toMatch(/^events: configuration is incomplete/);
    expect(message).not.toContain('short');
  });

  it('refuses an identity listed twice in LOCKSTEP_API_ROLES (the last entry would silently win)', () => {
    for (const roles of ['IBMid-1=auditor,IBMid-1=operator', 'IBMid-1=operator, IBMid-1=operator']) {
      const r = new EnvReader({ LOCKSTEP_API_ROLES: roles });
      readApiConfig(r);
      expect(r.problems).toEqual([
        'LOCKSTEP_API_ROLES: "IBMid-1" is listed more than once; give each identity one role',
      ]);
    }
  });

  it('reads a complete configuration with defaults', () => {
    const r = new EnvReader({
      LOCKSTEP_TRUSTED_PROFILE: 'lockstep',
      LOCKSTEP_EVENTS_HMAC_SECRETS: 'a:0123456789abcdef0123,b:fedcba9876543210fedc',
      LOCKSTEP_OWN_IAM_IDS: 'iam-Profile-1, iam-ServiceId-2',
      LOCKSTEP_NOTIFY_URL: 'https://hooks.example/x',
    });
    const c = readCommonConfig(r);
    const e = readEventsAuthConfig(r);
    r.done('events');
    expect(c.auth).toEqual({ kind: 'container', profileName: 'lockstep', iamUrl: 'https://iam.cloud.ibm.com' });
    expect(c.kpEndpoints['eu-de']).toBe('https://eu-de.kms.cloud.ibm.com');
    expect(c.ownIamIds).toEqual(['iam-Profile-1', 'iam-ServiceId-2']);
    expect(c.notify).toEqual({ kind: 'webhook', url: 'https://hooks.example/x' });
    expect(e.hmacSecrets.map((s) => s.id)).toEqual(['a', 'b']);
    expect(JSON.stringify(e)).not.toContain('0123456789abcdef');
  });

  it('requires at least one events authentication method', () => {
    const r = new EnvReader({ LOCKSTEP_API_KEY: 'k' });
    readEventsAuthConfig(r);
    expect(configError(() => r.done('events')).problems[0]).toMatch(/no events authentication configured/);
  });
});

describe('notifiers', () => {
  it('posts signed CloudEvents to a webhook and Event Notifications fields to EN', async () => {
    const got: Array<{ headers: Record<string, string | string[] | undefined>; body: Buffer }> = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        got.push({ headers: req.headers, body: Buffer.concat(chunks) });
        res.writeHead(req.url === '/fail' ? 500 : 202).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const clock = { nowMs: () => Date.now() };
      const random = { bytes: (n: number) => Buffer.alloc(n), uuid: () => 'id-1' };
      const secret = 'notify-secret-0123456789';
      const hook = createWebhookNotifier({ url: `${base}/hook`, clock, random, signingSecret: new Sensitive(secret) });
      await hook.publish({ type: 'com.ibm.lockstep.rotation.completed', subject: 'g1', data: { generation: 2 } });
      const ce = JSON.parse(got[0]!.body.toString());
      expect(ce).toMatchObject({
        specversion: '1.0',
        id: 'id-1',
        source: '/lockstep',
        type: 'com.ibm.lockstep.rotation.completed',
        subject: 'g1',
        data: { generation: 2 },
      });
      // the receiver can authenticate it with the same HMAC scheme as inbound events
      const verify = hmacAuthenticator({ secrets: [{ id: 'n', secret: new Sensitive(secret) }] });
      const headers = Object.fromEntries(Object.entries(got[0]!.headers).map(([k, v]) => [k, String(v)]));
      expect(
        await verify({ method: 'POST', path: '/', query: {}, headers, body: got[0]!.body, requestId: 'r' }, Date.now()),
      ).toEqual({
        method: 'hmac',
        subject: 'n',
      });
      const en = createEventNotificationsNotifier({
        url: `${base}/en`,
        sourceId: 'src-1',
        clock,
        random,
        authorization: async () => 'Bearer t',
      });
      await en.publish({ type: 'com.ibm.lockstep.group.diverged', subject: 'g1', data: {} });
      expect(JSON.parse(got[1]!.body.toString())).toMatchObject({
        source: 'src-1',
        ibmensourceid: 'src-1',
        ibmenseverity: 'HIGH',
      });
      expect(got[1]!.headers.authorization).toBe('Bearer t');
      const failing = createWebhookNotifier({ url: `${base}/fail`, clock, random });
      await expect(failing.publish({ type: 't', subject: 's', data: {} })).rejects.toMatchObject({
        code: 'UPSTREAM_UNAVAILABLE',
      });
    } finally {
      server.close();
    }
  });
});
