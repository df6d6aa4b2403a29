// What a runbook may hand to git. A runbook can come from a colleague, a ticket or a repository,
// so a URL or ref must never be able to reach git as an option (`--upload-pack=...`) or pick a
// transport that runs commands (`ext::`). Pure functions: used by the schema and by the cloner.

/** A full commit id (SHA-1, or SHA-256 for repositories in that format). */
export const COMMIT = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

export function isCommit(s: string): boolean {
  return COMMIT.test(s);
}

/**
 * Why `s` is not a git URL ha-setup accepts, or undefined when it is one. Accepted: https, http,
 * ssh, git and file URLs, and the scp-like `user@host:path`. Nothing that starts with `-`,
 * no whitespace or control characters, no host that starts with `-` (ssh would take it as an option).
 */
export function gitUrlProblem(s: string): string | undefined {
  if (s.length === 0) return 'is empty';
  if (s.startsWith('-')) return `"${s}" starts with "-"; git would read it as an option`;
  // eslint-disable-next-line no-control-regex
  if (/[\s\x00-\x1f\x7f]/.test(s)) return `"${s}" contains whitespace or control characters`;
  const url = /^(https?|ssh|git|file):\/\/(.*)$/.exec(s);
  if (url) {
    const rest = url[2];
    if (url[1] === 'file')
      return rest.startsWith('/') ? undefined : `"${s}": a file URL needs an absolute path (file:///srv/git/x.git)`;
    const host = rest.replace(/^[^@/]*@/, '').split(/[/:]/)[0];
    const user = /^([^@/]*)@/.exec(rest)?.[1];
    if (host === '') return `"${s}" has no host`;
    // ssh gets "user@host" as one argument: a user starting with "-" would be an option to it.
    if (
      user !== undefined &&
      (user.startsWith('-') || decodeURIComponent(user.replace(/%(?![0-9a-fA-F]{2})/g, '%25')).startsWith('-'))
    )
      return `"${s}": the user name starts with "-"`;
    if (host.startsWith('-')) return `"${s}": the host starts with "-"`;
    return undefined;
  }
  const scp = /^([A-Za-z0-9._-]+@)?([A-Za-z0-9][A-Za-z0-9.-]*):([^:].*)$/.exec(s);
  if (scp && !s.includes('://')) return undefined;
  return `"${s}" is not a git URL ha-setup accepts; use https://, ssh://, git://, file:/// or user@host:path`;
}

/**
 * Why `s` is not a ref ha-setup accepts (a tag or branch name as `git check-ref-format` allows it,
 * or a full commit id), or undefined. Never starts with `-`.
 */
export function gitRefProblem(s: string): string | undefined {
  if (s.length === 0) return 'is empty';
  if (s.startsWith('-')) return `"${s}" starts with "-"; git would read it as an option`;
  if (isCommit(s)) return undefined;
  // eslint-disable-next-line no-control-regex
  const bad =
    /[\x00-\x20\x7f~^:?*[\\]/.test(s) ||
    s.includes('..') ||
    s.includes('@{') ||
    s === '@' ||
    s.endsWith('/') ||
    s.endsWith('.') ||
    s.endsWith('.lock') ||
    s.includes('//') ||
    s.split('/').some((part) => part.startsWith('.') || part.endsWith('.lock'));
  if (bad) return `"${s}" is not a valid tag or branch name (git check-ref-format) nor a full commit id`;
  return undefined;
}

/** A source version becomes part of file and directory names on the control machine and the nodes. */
export const SOURCE_VERSION = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;

/**
 * `url.<base>.insteadOf` for ha-setup: the longest matching prefix of `url` in `rewrite`
 * (original prefix -> replacement) is replaced. Air-gapped sites point GitHub at their own server.
 */
export function rewriteGitUrl(url: string, rewrite: Record<string, string>): string {
  let best = '';
  for (const from of Object.keys(rewrite)) if (url.startsWith(from) && from.length > best.length) best = from;
  return best === '' ? url : rewrite[best] + url.slice(best.length);
}
