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
});
