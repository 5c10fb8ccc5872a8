import type { KeyRef } from '../app/index.js';
import { AppError, asInstanceId, asKeyId } from '../core/index.js';

/** Input and option checks of the Key Protect client: bad input is a typed error before anything is sent. */

export function checkRef(ref: KeyRef): void {
  asInstanceId(ref.instanceId);
  asKeyId(ref.keyId);
}

const ALIAS = /^[A-Za-z0-9_-]{2,90}$/;

export function keyDescription(input: {
  name: string;
  description?: string;
  aliases?: string[];
}): Record<string, unknown> {
  if (typeof input.name !== 'string' || input.name.trim() === '' || input.name.length > 90) {
    throw new AppError('VALIDATION_FAILED', 'key name must be 1-90 characters', { details: { field: 'name' } });
  }
  if (input.description !== undefined && (typeof input.description !== 'string' || input.description.length > 240)) {
    throw new AppError('VALIDATION_FAILED', 'key description must be at most 240 characters', {
      details: { field: 'description' },
    });
  }
  const aliases = input.aliases ?? [];
  if (!Array.isArray(aliases) || aliases.length > 5 || !aliases.every((a) => typeof a === 'string' && ALIAS.test(a))) {
    throw new AppError('VALIDATION_FAILED', 'aliases: at most 5, each 2-90 characters of [A-Za-z0-9_-]', {
      details: { field: 'aliases' },
    });
  }
  return {
    name: input.name,
    ...(input.description !== undefined ? { description: input.description } : {}),
    ...(aliases.length ? { aliases } : {}),
  };
}

export function aadField(aad: string[]): { aad?: string[] } {
  if (!Array.isArray(aad) || !aad.every((a) => typeof a === 'string' && a.length <= 255)) {
    throw new AppError('VALIDATION_FAILED', 'aad must be an array of strings of at most 255 characters', {
      details: { field: 'aad' },
    });
  }
  return aad.length ? { aad } : {};
}

export function positiveInt(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw configError(field, `${field} must be an integer between ${min} and ${max}`);
  }
  return value;
}

export function configError(field: string, message: string): AppError {
  return new AppError('CONFIG_INVALID', `Invalid Key Protect client options: ${message}`, { details: { field } });
}
