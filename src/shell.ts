// The one shell-quoting function. Every value that reaches a remote command goes through
// `shq` (or the `sh` tagged template, which calls it for every interpolation).

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** Quote one value for POSIX sh. Safe words stay readable; everything else is single-quoted. */
export function shq(value: string | number): string {
  const s = String(value);
  if (s.length > 0 && SAFE.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Quote each value and join with spaces. */
export function shqAll(values: ReadonlyArray<string | number>): string {
  return values.map(shq).join(' ');
}

/** Marks a fragment as already-safe shell (a constant or something built by `sh`). */
export class Raw {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

export const raw = (text: string): Raw => new Raw(text);

/**
 * Tagged template: literal parts are trusted, every interpolated value is quoted
 * (arrays become space-separated quoted words; `Raw` passes through).
 */
export function sh(strings: TemplateStringsArray, ...values: unknown[]): string {
  let out = strings[0];
  values.forEach((v, i) => {
    out += quoteInterpolation(v) + strings[i + 1];
  });
  return out;
}

function quoteInterpolation(v: unknown): string {
  if (v instanceof Raw) return v.text;
  if (Array.isArray(v)) return v.map(quoteInterpolation).join(' ');
  if (typeof v === 'string' || typeof v === 'number') return shq(v);
  throw new TypeError(`cannot quote ${typeof v} into a shell command`);
}
