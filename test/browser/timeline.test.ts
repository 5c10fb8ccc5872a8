/**
 * The timeline page in a real browser: headless Chromium (Debian's `chromium`) driven by playwright-core against
 * the API served over HTTP, the local IAM and the embedded store with real lineage records. Saves a screenshot to
 * test-results/timeline.png.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi, type HttpServerHandle, recordsFromCsv, serveHttp } from '../../src/api/index.js';
import { silentLogger } from '../../src/core/index.js';
import { type EmbeddedCouch, startEmbeddedCouch } from '../../src/local/couch/index.js';
import { type LocalIam, startLocalIam } from '../../src/local/iam/index.js';
import { createCloudantStores } from '../../src/store/index.js';
import { makeChain, makeGroup, testCheckpointKeys } from '../unit/api/support/fakes.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOT = 'test-results/timeline.png';

let iam: LocalIam;
let couch: EmbeddedCouch;
let server: HttpServerHandle;
let browser: Browser;
let operatorServer: HttpServerHandle;
const runCalls: Array<{ action: string; runId: string; by: string; reason?: string }> = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is missing at ${CHROMIUM}: install it (apt-get install -y --no-install-recommends chromium; .ci/run does this) or set CHROMIUM_PATH`,
    );
  }
  [iam, couch] = await Promise.all([startLocalIam(), startEmbeddedCouch()]);
  const stores = await createCloudantStores({ ...couch.storeOptions });
  await stores.ensureSetup();
  const keys = testCheckpointKeys(9);
  const payments = makeGroup('payments', { name: 'Payments root keys', generation: 6 });
  payments.lastRotatedAtMs = Date.UTC(2026, 10, 6, 2, 1);
  await stores.groups.create(payments);
  const ledger = makeGroup('ledger', { name: 'Ledger', generation: 3 });
  await stores.groups.create(ledger);
  const ledgerChain = makeChain(ledger, 3);
  // generation 2 rewritten after it was hashed: the store accepts it (it links), the chain check must not
  ledgerChain[1]!.fingerprint = 'fp1:rewritten';
  for (const r of ledgerChain) await stores.lineage.append(r);
  const chain = makeChain(payments, 6, {
    statuses: ['superseded', 'complete', 'degraded', 'complete', 'diverged', 'complete'],
  });
  for (const r of chain) await stores.lineage.append(r);
  await stores.checkpoints.put(keys.sign(chain[4]!, chain[4]!.finishedAtMs + 5_000));
  const auditorId = iam.identities.find((i) => i.name === 'auditor')!.iamId;
  const api = createApi({
    stores,
    auth: {
      jwksUrl: iam.jwksUrl,
      issuer: iam.issuer,
      roles: { [auditorId]: 'auditor' },
      iamTokenUrl: `${iam.url}/identity/token`,
    },
    checkpointPublicKeys: { main: keys.pem },
    clock: { nowMs: () => Date.now() },
    logger: silentLogger,
  });
  server = await serveHttp(api);

  // The operator's page: a waiting run of payments (generation 7), and a service that records the actions.
  const operatorId = iam.identities.find((i) => i.name === 'operator')!.iamId;
  const runId = 'run-payments-g7-0000aaaa';
  await stores.runs.create({
    id: runId,
    groupId: payments.id,
    generation: 7,
    kind: 'rotation',
    status: 'degraded',
    step: 'stage',
    statusReason: 'waiting for us-east',
    members: [
      { role: 'primary', region: 'us-south', slot: 'primary:us-south:a', progress: 'pending', attempts: 0 },
      { role: 'duplicate', region: 'us-east', slot: 'duplicate:us-east:b', progress: 'blocked', attempts: 2 },
    ],
    transitions: [],
    notes: [],
    createdAtMs: Date.now(),
    updatedAtMs: Date.now(),
  } as never);
  const act = (action: 'retry' | 'stop') => async (id: string, opts: { trigger: { by: string; reason?: string } }) => {
    runCalls.push({
      action,
      runId: id,
      by: opts.trigger.by,
      ...(opts.trigger.reason ? { reason: opts.trigger.reason } : {}),
    });
    const cur = await stores.runs.get(id as never);
    const status = action === 'stop' ? 'stopped' : 'running';
    await stores.runs.save({ ...cur.value, status } as never, cur.rev);
    return {
      runId: id,
      groupId: payments.id,
      action: action === 'stop' ? 'stopped' : 'retried',
      status,
      step: 'stage',
      groupStatus: 'healthy',
    };
  };
  operatorServer = await serveHttp(
    createApi({
      stores,
      service: { retryRun: act('retry'), stopRun: act('stop') } as never,
      auth: { jwksUrl: iam.jwksUrl, issuer: iam.issuer, roles: { [operatorId]: 'operator' } },
      checkpointPublicKeys: { main: keys.pem },
      clock: { nowMs: () => Date.now() },
      logger: silentLogger,
    }),
  );
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await operatorServer?.close();
  await couch?.close();
  await iam?.close();
});

describe('timeline page in Chromium', () => {
  it('logs in with a token, shows the groups, the generations, statuses and chain proof, and exports', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    const page = await context.newPage();
    const scriptErrors: string[] = [];
    page.on('pageerror', (e) => scriptErrors.push(e.message));

    await page.goto(`${server.url}/ui`);
    await expect(page.locator('textarea[name="token"]')).toBeTruthy();
    expect(await page.title()).toBe('Log in · lockstep');

    // a bad token is refused with the reason
    await page.fill('textarea[name="token"]', 'not-a-token');
    await page.click('button[type="submit"]');
    expect(await page.textContent('[data-testid="login-error"]')).toMatch(/not a JWT/);

    await page.fill('textarea[name="token"]', await iam.issueToken('auditor'));
    await Promise.all([page.waitForURL(`${server.url}/ui`), page.click('button[type="submit"]')]);
    expect(await page.textContent('[data-testid="role"]')).toBe('auditor');
    expect(await page.locator('[data-testid="group-card"]').count()).toBe(2);
    expect(await page.locator('[data-group="ledger"] [data-testid="chain-status"]').textContent()).toBe('chain broken');

    await Promise.all([page.waitForURL(/\/ui\/groups\/payments$/), page.click('text=Payments root keys')]);
    expect(await page.textContent('[data-testid="chain-status"]')).toBe('chain ok');
    expect(await page.textContent('[data-testid="checkpoint-status"]')).toBe('checkpoint valid');
    expect(await page.locator('[data-testid="axis-marker"]').count()).toBe(6);
    const gens = page.locator('[data-testid="generation"]');
    expect(await gens.count()).toBe(6);
    expect(await gens.evaluateAll((els) => els.map((e) => e.getAttribute('data-generation')))).toEqual([
      '6',
      '5',
      '4',
      '3',
      '2',
      '1',
    ]);
    expect(await page.locator('[data-testid="generation-status"]').allTextContents()).toEqual([
      'complete',
      'diverged',
      'complete',
      'degraded',
      'complete',
      'superseded',
    ]);
    expect(await page.locator('[data-testid="key-version"]').count()).toBe(18);
    expect(await page.locator('[data-generation="6"] [data-testid="in-effect"]').textContent()).toContain(
      'now (current)',
    );
    expect(await page.locator('[data-generation="5"] [data-testid="in-effect"]').textContent()).toBe(
      'in effect 2026-11-05 02:01:00Z → 2026-11-06 02:01:00Z',
    );
    const fingerprint = await page.locator('[data-generation="3"] [data-testid="fingerprint"]').textContent();
    expect(fingerprint).toBe(`fp1:${'3'.padStart(32, '0')}`);
    // stored text is shown as text, never run
    expect(await page.locator('[data-generation="2"]').textContent()).toContain('<script>alert(1)</script>');
    expect(scriptErrors).toEqual([]);

    mkdirSync('test-results', { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(readFileSync(SCREENSHOT).subarray(1, 4).toString()).toBe('PNG');

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid="export-csv"]')]);
    expect(download.suggestedFilename()).toMatch(/^lockstep-lineage-payments-\d{4}-\d{2}-\d{2}\.csv$/);
    const csv = readFileSync((await download.path()) as string, 'utf8');
    expect(recordsFromCsv(csv).map((r) => r.generation)).toEqual([1, 2, 3, 4, 5, 6]);

    await Promise.all([page.waitForURL(`${server.url}/ui`), page.click('text=Log out')]);
    expect(await page.title()).toBe('Log in · lockstep');
    await context.close();
  });

  it('logs in with the dev stack auditor API key and shows where a rewritten chain breaks', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${server.url}/ui`);
    await page.fill('input[name="apikey"]', iam.apiKeyFor('auditor'));
    await Promise.all([page.waitForURL(`${server.url}/ui`), page.click('button[type="submit"]')]);
    expect(await page.textContent('[data-testid="role"]')).toBe('auditor');
    await Promise.all([page.waitForURL(/\/ui\/groups\/ledger$/), page.click('text=Ledger')]);
    expect(await page.textContent('[data-testid="chain-status"]')).toBe('chain broken');
    expect(await page.textContent('[data-testid="checkpoint-status"]')).toBe('no checkpoint');
    const breaks = page.locator('[data-testid="chain-break"]');
    expect(await breaks.count()).toBe(1);
    expect(await page.locator('.marker.broken .lbl').allTextContents()).toEqual(['2']);
    expect(await page.locator('[data-generation="2"] [data-testid="chain-break"]').textContent()).toMatch(
      /^hash-mismatch: Generation 2 was edited after it was recorded/,
    );
    await page.screenshot({ path: 'test-results/timeline-broken.png', fullPage: true });
    await context.close();
  });

  it('lets an operator stop a run from the page (a real browser sends the Origin the forms need)', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${operatorServer.url}/ui`);
    await page.fill('textarea[name="token"]', await iam.issueToken('operator'));
    await Promise.all([page.waitForURL(`${operatorServer.url}/ui`), page.click('button[type="submit"]')]);
    expect(await page.textContent('[data-testid="role"]')).toBe('operator');
    await Promise.all([page.waitForURL(/\/ui\/groups\/payments$/), page.click('text=Payments root keys')]);
    const run = page.locator('[data-run="run-payments-g7-0000aaaa"]');
    expect(await run.locator('[data-testid="run-status"]').textContent()).toBe('degraded');
    // the stop needs its confirmation box: the browser does not submit without it
    await run.locator('[data-testid="stop-form"] button').click();
    expect(runCalls).toEqual([]);
    await run.locator('[data-testid="stop-form"] input[name="reason"]').fill('change freeze');
    await run.locator('[data-testid="stop-form"] input[name="confirm"]').check();
    await Promise.all([
      page.waitForURL(/\/ui\/groups\/payments$/),
      run.locator('[data-testid="stop-form"] button').click(),
    ]);
    const operatorId = iam.identities.find((i) => i.name === 'operator')!.iamId;
    expect(runCalls).toEqual([
      { action: 'stop', runId: 'run-payments-g7-0000aaaa', by: operatorId, reason: 'change freeze' },
    ]);
    expect(await run.locator('[data-testid="run-status"]').textContent()).toBe('stopped');
    await page.screenshot({ path: 'test-results/timeline-operator.png', fullPage: true });
    await context.close();
  });
});
