import { describe, expect, it } from 'vitest';
import { createApiClient } from '../../../src/cli/apiClient.js';
import type { CliConfig } from '../../../src/cli/config.js';
import { Sensitive } from '../../../src/core/index.js';

const config: CliConfig = {
  iam: { url: 'http://iam.test', apiKey: new Sensitive('key-1') },
  api: { url: 'http://api.test' },
  cloudant: {},
  keyProtect: {},
  devGroups: [],
};

describe('ApiClient.getText', () => {
  it('follows the export cursor page by page, concatenates the pages and reports progress', async () => {
    // Arrange: IAM, then an export in three pages (the cursor of each page names the next)
    const seen: string[] = [];
    const fetchImpl = (async (input: string | URL) => {
      const url = new URL(String(input));
      seen.push(url.pathname + url.search);
      if (url.host === 'iam.test') return Response.json({ access_token: 't', expires_in: 3600 });
      const cursor = url.searchParams.get('cursor');
      const page = cursor === null ? 0 : Number(cursor.slice(1));
      const headers: Record<string, string> = { 'x-lockstep-records': '2' };
      if (page < 2) headers['x-lockstep-next-cursor'] = `c${page + 1}`;
      return new Response(`p${page}a\np${page}b\n`, { headers });
    }) as typeof fetch;
    const progress: number[] = [];
    // Act
    const text = await createApiClient(config, fetchImpl).getText('/v1/export', { format: 'jsonl' }, (n) =>
      progress.push(n),
    );
    // Assert
    expect(text).toBe('p0a\np0b\np1a\np1b\np2a\np2b\n');
    expect(seen.slice(1)).toEqual([
      '/v1/export?format=jsonl',
      '/v1/export?format=jsonl&cursor=c1',
      '/v1/export?format=jsonl&cursor=c2',
    ]);
    expect(progress).toEqual([2, 4]);
  });
});
