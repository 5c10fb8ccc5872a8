import { describe, expect, it } from 'vitest';
import {
  CE_PING_TYPE,
  canonicalHeaderName,
  fromCeParams,
  fromCeResult,
  toCeParams,
  toCeResult,
  toCronParams,
} from '../../../src/codeengine/index.js';
import { hasCode } from '../../../src/core/index.js';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

describe('fromCeParams', () => {
  it('decodes a JSON request: base64 __ce_body, canonical headers, path, raw query', () => {
    // Arrange: what Code Engine passes for POST /v1/x?a=1&b=two%20words with a JSON body
    const params = {
      __ce_method: 'POST',
      __ce_headers: { 'Content-Type': 'application/json', 'X-Request-Id': 'req-1', Mykey: 'v' },
      __ce_path: '/v1/x',
      __ce_query: 'a=1&b=two%20words',
      __ce_body: b64('{"hello":"world"}'),
      a: '1',
      b: 'two words',
      hello: 'world',
    };
    // Act
    const ev = fromCeParams(params, 'fallback');
    // Assert
    expect(ev.kind).toBe('http');
    expect(ev.request.method).toBe('POST');
    expect(ev.request.path).toBe('/v1/x');
    expect(ev.request.query).toEqual({ a: '1', b: 'two words' });
    expect(ev.request.headers).toEqual({ 'content-type': 'application/json', 'x-request-id': 'req-1', mykey: 'v' });
    expect(ev.request.body?.toString()).toBe('{"hello":"world"}');
    expect(ev.request.requestId).toBe('req-1');
    expect(ev.unfolded).toEqual({ a: '1', b: 'two words', hello: 'world' });
  });

  it('keeps text/* bodies as text and form bodies percent-encoded', () => {
    const text = fromCeParams(
      { __ce_method: 'POST', __ce_headers: { 'Content-Type': 'text/plain' }, __ce_body: 'hi+there==' },
      'f',
    );
    expect(text.request.body?.toString()).toBe('hi+there==');
    const form = fromCeParams(
      {
        __ce_method: 'POST',
        __ce_headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        __ce_body: 'a=1&b=x%20y',
      },
      'f',
    );
    expect(form.request.body?.toString()).toBe('a=1&b=x%20y');
  });

  it('decodes binary bodies from base64 and rejects a non-base64 binary body', () => {
    const bytes = Buffer.from([0, 1, 2, 250, 255]);
    const ev = fromCeParams(
      {
        __ce_method: 'POST',
        __ce_headers: { 'Content-Type': 'application/octet-stream' },
        __ce_body: bytes.toString('base64'),
      },
      'f',
    );
    expect(ev.request.body).toEqual(bytes);
    let err: unknown;
    try {
      fromCeParams({ __ce_method: 'POST', __ce_headers: { 'Content-Type': 'image/png' }, __ce_body: '%%%' }, 'f');
    } catch (e) {
      err = e;
    }
    expect(hasCode(err, 'VALIDATION_FAILED')).toBe(true);
  });

  it('defaults a GET without body, path or query', () => {
    const ev = fromCeParams({ __ce_method: 'get', __ce_headers: {} }, 'gen-id');
    expect(ev.request).toEqual({ method: 'GET', path: '/', query: {}, headers: {}, requestId: 'gen-id' });
  });

  it.each([
    {
      $case: 'data in body (cron page), text',
      field: 'body',
      ct: 'text/plain',
      raw: 'hello stranger',
      data: 'hello stranger',
    },
    { $case: 'data in __ce_body, text', field: '__ce_body', ct: 'text/plain', raw: 'tick', data: 'tick' },
    {
      $case: 'data in body, base64 JSON',
      field: 'body',
      ct: 'application/json',
      raw: b64('{"source":"cron"}'),
      data: { source: 'cron' },
    },
    {
      $case: 'data in __ce_body, base64 JSON',
      field: '__ce_body',
      ct: 'application/json',
      raw: b64('{"source":"cron"}'),
      data: { source: 'cron' },
    },
    {
      $case: 'data in body, plain JSON',
      field: 'body',
      ct: 'application/json',
      raw: '{"source":"cron"}',
      data: { source: 'cron' },
    },
  ])('recognises a cron ping with $case', ({ field, ct, raw, data }) => {
    // Arrange: the documented cron delivery for a function
    const params = {
      __ce_headers: {
        'Ce-Id': 'b861',
        'Ce-Source': '/apis/v1/namespaces/abc/pingsources/lockstep-rotate',
        'Ce-Specversion': '1.0',
        'Ce-Time': '2024-06-02T10:56:00.06Z',
        'Ce-Type': CE_PING_TYPE,
        'Ce-Shard': '2',
        'Content-Type': ct,
      },
      [field]: raw,
    };
    // Act
    const ev = fromCeParams(params, 'f');
    // Assert
    expect(ev.kind).toBe('cron');
    if (ev.kind !== 'cron') return;
    expect(ev.cron).toEqual({
      id: 'b861',
      source: '/apis/v1/namespaces/abc/pingsources/lockstep-rotate',
      time: '2024-06-02T10:56:00.06Z',
      data,
      extensions: { shard: '2' },
    });
    expect(ev.request.method).toBe('POST');
    expect(ev.request.requestId).toBe('b861');
  });

  it('ignores a top-level body field on plain HTTP requests (it is an unfolded JSON key)', () => {
    const ev = fromCeParams({ __ce_method: 'GET', __ce_headers: {}, body: 'x' }, 'f');
    expect(ev.request.body).toBeUndefined();
    expect(ev.unfolded).toEqual({ body: 'x' });
  });
});

describe('toCeResult', () => {
  it('returns JSON bodies as objects with canonical header names', () => {
    const r = toCeResult({
      statusCode: 201,
      headers: { 'content-type': 'application/json', 'x-request-id': 'r' },
      body: '{"a":1}',
    });
    expect(r).toEqual({
      statusCode: 201,
      headers: { 'Content-Type': 'application/json', 'X-Request-Id': 'r' },
      body: { a: 1 },
    });
  });
  it('base64-encodes binary bodies and keeps text', () => {
    const bin = toCeResult({
      statusCode: 200,
      headers: { 'content-type': 'application/octet-stream' },
      body: Buffer.from([1, 2]),
    });
    expect(bin.body).toBe('AQI=');
    const txt = toCeResult({ statusCode: 200, headers: { 'content-type': 'text/csv' }, body: Buffer.from('a,b') });
    expect(txt.body).toBe('a,b');
    const none = toCeResult({ statusCode: 204, headers: {}, body: '' });
    expect(none.headers['Content-Type']).toBe('text/plain; charset=utf-8');
  });
  it('base64-encodes a string body of a non-text type (the JSONL export), so it round-trips', () => {
    const jsonl = '{"generation":1}\n{"generation":2}\n';
    const r = toCeResult({ statusCode: 200, headers: { 'content-type': 'application/x-ndjson' }, body: jsonl });
    expect(r.body).toBe(Buffer.from(jsonl).toString('base64'));
    expect(fromCeResult(r).body.toString('utf8')).toBe(jsonl);
  });
  it('never returns a status outside 200-599', () => {
    expect(toCeResult({ statusCode: 100, headers: {}, body: '' }).statusCode).toBe(500);
  });
});

describe('toCeParams / fromCeResult (the runner side) round-trip', () => {
  it('encodes like Code Engine and decodes back to the same request', () => {
    const params = toCeParams({
      method: 'post',
      path: '/a/b',
      rawQuery: '?q=1',
      headers: { 'content-type': 'application/json', 'x-custom': ['a', 'b'] },
      body: Buffer.from('{"k":"v","q":"2"}'),
    });
    expect(params.__ce_headers).toEqual({ 'Content-Type': 'application/json', 'X-Custom': 'a, b' });
    expect(params.__ce_body).toBe(b64('{"k":"v","q":"2"}'));
    expect(params.k).toBe('v');
    expect(params.q).toBe('2'); // body keys win over query keys
    const ev = fromCeParams(params, 'f');
    expect(ev.request.body?.toString()).toBe('{"k":"v","q":"2"}');
    expect(ev.request.query).toEqual({ q: '1' });
  });
  it('keeps the body of an HTTP request with a ping header in __ce_body (the header proves nothing)', () => {
    const p = toCeParams({
      method: 'POST',
      headers: { 'ce-type': CE_PING_TYPE, 'content-type': 'text/plain' },
      body: Buffer.from('x'),
    });
    expect(p.__ce_body).toBe('x');
    expect(p.body).toBeUndefined();
  });

  it.each([
    {
      ct: 'application/json' as const,
      data: '{"source":"cron","cronSecret":"s3"}',
      parsed: { source: 'cron', cronSecret: 's3' },
    },
    { ct: 'text/plain' as const, data: 'hello stranger', parsed: 'hello stranger' },
  ])('builds a cron delivery as the cron page documents it ($ct) and reads it back', ({ ct, data, parsed }) => {
    const p = toCronParams({
      id: 'c1',
      source: '/apis/v1/namespaces/p/pingsources/s',
      time: 't',
      data,
      contentType: ct,
    });
    expect(p.__ce_headers).toMatchObject({
      'Ce-Type': CE_PING_TYPE,
      'Content-Type': ct,
      'Content-Length': String(data.length),
    });
    expect(p.body).toBe(ct === 'application/json' ? b64(data) : data);
    expect(p.__ce_body).toBeUndefined();
    expect(p.__ce_method).toBeUndefined();
    if (ct === 'application/json') expect(p.cronSecret).toBe('s3'); // JSON keys unfolded
    const ev = fromCeParams(p, 'f');
    expect(ev.kind === 'cron' && ev.cron.data).toEqual(parsed);
  });
  it('maps results back to HTTP, with 422 for an invalid status', () => {
    expect(fromCeResult({ statusCode: 200, headers: { 'Content-Type': 'application/json' }, body: { a: 1 } })).toEqual({
      statusCode: 200,
      headers: { 'content-type': 'application/json' },
      body: '{"a":1}',
    });
    expect(fromCeResult({ statusCode: 700, body: 'x' }).statusCode).toBe(422);
    expect(fromCeResult({ statusCode: 200, headers: { 'Content-Type': 'image/png' }, body: 'AQI=' }).body).toEqual(
      Buffer.from([1, 2]),
    );
    expect(fromCeResult('plain').body).toBe('plain');
  });
  it('canonicalises header names', () => {
    expect(canonicalHeaderName('content-type')).toBe('Content-Type');
    expect(canonicalHeaderName('CE-ID')).toBe('Ce-Id');
  });
});
