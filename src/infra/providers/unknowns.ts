// During `pulumi preview`, inputs that depend on resources not created yet reach a dynamic provider's check()
// as this sentinel string (the engine's "unknown"). A check must not fail on them: the real value is checked
// again at `up`.
export const UNKNOWN_VALUE = '04da6b54-80e4-46f7-96ec-b56ff0331ba9';

export function containsUnknown(value: unknown, depth = 0): boolean {
  if (value === '04da6b54-80e4-46f7-96ec-b56ff0331ba9') return true;
  if (depth > 20 || !value || typeof value !== 'object') return false;
  return Object.values(value as Record<string, unknown>).some((v) => containsUnknown(v, depth + 1));
}

/** Drops failures of properties (by their top-level name) whose value is not known yet. */
export function knownFailures<F extends { property: string }>(news: object, failures: F[]): F[] {
  return failures.filter((f) => !containsUnknown((news as Record<string, unknown>)[f.property.split('.')[0]!]));
}
