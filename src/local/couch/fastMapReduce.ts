/**
 * A drop-in replacement for the `pouchdb-mapreduce` plugin that compiles each map/reduce function once.
 *
 * pouchdb-mapreduce 9 evaluates the function source in a brand-new `vm` context for every document (about 1.5 ms and
 * a lot of garbage per document), which makes a view over 100 000 documents take minutes. Here the source is compiled
 * once per view update inside one sandbox context; documents and emitted values still cross the boundary as JSON
 * copies, so a map function can neither mutate the stored document nor reach the host realm's objects.
 */
import vm from 'node:vm';
import createAbstractMapReduce from 'pouchdb-abstract-mapreduce';

type Emit = (key: unknown, value: unknown) => void;

const copy = (v: unknown): unknown => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));

function sum(values: unknown[]): number | number[] {
  let result: number | number[] = 0;
  for (const v of values) {
    if (typeof v === 'number') {
      if (typeof result === 'number') result += v;
      else result[0] = (result[0] ?? 0) + v;
    } else if (Array.isArray(v)) {
      const acc: number[] = typeof result === 'number' ? [result] : result;
      v.forEach((n, i) => {
        if (typeof n !== 'number') throw new Error('builtin _sum function requires map values to be numbers');
        acc[i] = (acc[i] ?? 0) + n;
      });
      result = acc;
    } else {
      throw new Error('builtin _sum function requires map values to be numbers or number arrays');
    }
  }
  return result;
}

const builtInReduce: Record<string, (keys: unknown, values: unknown[]) => unknown> = {
  _sum: (_k, values) => sum(values),
  _count: (_k, values) => values.length,
  _stats: (_k, values) => {
    const nums = values as number[];
    return {
      sum: sum(nums),
      min: Math.min(...nums),
      max: Math.max(...nums),
      count: nums.length,
      sumsqr: nums.reduce((a, n) => a + n * n, 0),
    };
  },
};

function compile(source: string, emit?: Emit): (...args: unknown[]) => unknown {
  const sandbox = {
    emit: (key: unknown, value: unknown) => emit?.(copy(key), copy(value)),
    log: () => {},
    sum,
    isArray: Array.isArray,
    toJSON: JSON.parse,
  };
  const fn = vm.runInNewContext(`"use strict"; (${source.replace(/;\s*$/, '')})`, sandbox) as (
    ...args: unknown[]
  ) => unknown;
  if (typeof fn !== 'function') throw new Error('map/reduce source is not a function');
  return (...args: unknown[]) => copy(fn(...args.map(copy)));
}

function mapper(mapFun: unknown, emit: Emit): (doc: unknown) => unknown {
  // Temporary views may pass a real function `(doc, emit) => …`.
  if (typeof mapFun === 'function' && mapFun.length === 2) {
    const fn = mapFun as (doc: unknown, emit: Emit) => unknown;
    return (doc) => fn(doc, emit);
  }
  return compile(String(mapFun), emit);
}

function reducer(reduceFun: unknown): (keys: unknown, values: unknown[], rereduce?: boolean) => unknown {
  const source = String(reduceFun);
  const name = /^_(sum|count|stats)/.exec(source)?.[0];
  if (name) return builtInReduce[name] as (keys: unknown, values: unknown[]) => unknown;
  if (source.startsWith('_')) throw new Error(`${source} is not a supported reduce function.`);
  return compile(source);
}

function ddocValidator(ddoc: { _id: string; views?: Record<string, { map?: unknown }> }, viewName: string): void {
  const fun = ddoc.views?.[viewName];
  if (typeof fun?.map !== 'string') {
    const err = new Error(`ddoc ${ddoc._id} has no string view named ${viewName}`) as Error & {
      status: number;
      name: string;
    };
    err.status = 404;
    err.name = 'not_found';
    throw err;
  }
}

const abstract = createAbstractMapReduce('mrviews', mapper, reducer, ddocValidator);

/** The PouchDB plugin (`PouchDB.plugin(fastMapReduce)`), API-compatible with pouchdb-mapreduce. */
export const fastMapReduce = {
  query(this: unknown, fun: unknown, opts: unknown, callback?: unknown): Promise<unknown> {
    return abstract.query.call(this, fun, opts, callback);
  },
  viewCleanup(this: unknown, callback?: unknown): Promise<unknown> {
    return abstract.viewCleanup.call(this, callback);
  },
};
