// A tiny, strict argument parser for the CLI: every unknown or malformed flag
// is an error naming it. Flags are `--name value` or `--name=value`; booleans
// are `--name`.
export class CliError extends Error {
  readonly code = 'ERR_SCORE_CLI';
}

export type FlagSpec = Record<string, { type: 'string' | 'number' | 'boolean'; help: string; default?: string | number | boolean }>;
export type Flags = Record<string, string | number | boolean | undefined>;

export function parseArgs(args: string[], spec: FlagSpec, positionals = 0): { flags: Flags; positional: string[] } {
  const flags: Flags = {};
  const positional: string[] = [];
  for (const [name, s] of Object.entries(spec)) if (s.default !== undefined) flags[name] = s.default;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) {
      if (positional.length >= positionals) throw new CliError(`unexpected argument '${a}'`);
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    const s = spec[name];
    if (!s) throw new CliError(`unknown option '--${name}'`);
    if (s.type === 'boolean') {
      if (eq >= 0) throw new CliError(`option '--${name}' takes no value`);
      flags[name] = true;
      continue;
    }
    const value = eq >= 0 ? a.slice(eq + 1) : args[++i];
    if (value === undefined) throw new CliError(`option '--${name}' needs a value`);
    if (s.type === 'number') {
      const n = Number(value);
      if (value.trim() === '' || !Number.isFinite(n)) throw new CliError(`option '--${name}': '${value}' is not a number`);
      flags[name] = n;
    } else {
      flags[name] = value;
    }
  }
  return { flags, positional };
}

export function helpText(usage: string, spec: FlagSpec): string {
  const lines = [usage, '', 'options:'];
  for (const [name, s] of Object.entries(spec)) {
    const arg = s.type === 'boolean' ? '' : ` <${s.type}>`;
    const def = s.default !== undefined && s.type !== 'boolean' ? ` (default ${s.default})` : '';
    lines.push(`  --${(name + arg).padEnd(24)} ${s.help}${def}`);
  }
  return lines.join('\n');
}

export function requireFlag(flags: Flags, name: string): string {
  const v = flags[name];
  if (v === undefined || v === '') throw new CliError(`missing required option '--${name}'`);
  return String(v);
}
