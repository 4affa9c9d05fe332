// Program extraction from model text: [BEGIN] ... [DONE] (the MBPP prompt's
// markers), fenced code blocks, or the text itself.

export function extractProgram(text: string): string {
  const t = text.replace(/\r\n/g, '\n');
  const begin = t.lastIndexOf('[BEGIN]');
  if (begin >= 0) {
    const rest = t.slice(begin + '[BEGIN]'.length);
    const done = rest.indexOf('[DONE]');
    return stripFence(done >= 0 ? rest.slice(0, done) : rest).replace(/^\n/, '');
  }
  const done = t.indexOf('[DONE]');
  if (done >= 0) return stripFence(t.slice(0, done));
  const blocks = [...t.matchAll(/```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n([\s\S]*?)```/g)];
  if (blocks.length > 0) {
    const python = blocks.filter((b) => b[1] === '' || /^py(thon)?3?$/i.test(b[1]!));
    const pick = (python.length > 0 ? python : blocks)[(python.length > 0 ? python : blocks).length - 1]!;
    return pick[2]!;
  }
  // an opened fence that the model never closed
  const open = /```[ \t]*(?:py(?:thon)?3?)?[ \t]*\n([\s\S]*)$/i.exec(t);
  if (open) return open[1]!;
  return t;
}

function stripFence(s: string): string {
  const m = /^\s*```[^\n]*\n([\s\S]*?)(?:```\s*)?$/.exec(s);
  return m ? m[1]! : s;
}

/** Top-level function names defined by a program, in order. */
export function definedFunctions(program: string): string[] {
  return [...program.matchAll(/^(?:async\s+)?def\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(/gm)].map((m) => m[1]!);
}

/** Test code ready to run: a HumanEval `check(candidate)` is called on the entry point
 * (given, or the program's last top-level function); MBPP asserts run as they are. */
export function testsFor(program: string, tests: string, entryPoint?: string): string {
  const definesCheck = /^def\s+check\s*\(/m.test(tests);
  const callsCheck = /^check\s*\(/m.test(tests);
  if (!definesCheck || callsCheck) return tests;
  const fns = definedFunctions(program);
  const entry = entryPoint ?? fns[fns.length - 1];
  if (!entry) return `${tests}\nraise NameError('no function to test: the program defines none')\n`;
  return `${tests}\n\ncheck(${entry})\n`;
}
