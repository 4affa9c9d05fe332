// A small parser from LaTeX-style math to an expression tree, enough for final
// answers: numbers, variables, + - * / ^, implicit products, \frac, \sqrt, \pi,
// \infty, functions (\sin, \ln, \log_b ...), factorials, \binom, |x|. Anything else
// is a ParseError, and the caller falls back to comparing strings. Work is bounded:
// the input length is capped, recursion depth is capped and the deadline is checked.

export type Node =
  | { k: 'num'; v: number; text: string }
  | { k: 'var'; name: string }
  | { k: 'const'; name: 'pi' | 'infty' }
  | { k: 'neg'; a: Node }
  | { k: 'bin'; op: '+' | '-' | '*' | '/' | '^'; a: Node; b: Node }
  | { k: 'fn'; name: string; a: Node; base?: Node }
  | { k: 'fact'; a: Node }
  | { k: 'binom'; a: Node; b: Node };

export class ParseError extends Error {}
export class TimeLimit extends Error {}

export interface Deadline {
  until: number; // Date.now() value after which work stops
}
export function checkDeadline(d: Deadline): void {
  if (Date.now() >= d.until) throw new TimeLimit('time limit');
}

const MAX_INPUT = 1000;
const MAX_DEPTH = 100;

type Tok = { t: 'num' | 'id' | 'cmd' | 'sym'; v: string };

const FUNCS = new Set(['sin', 'cos', 'tan', 'sec', 'csc', 'cot', 'arcsin', 'arccos', 'arctan', 'sinh', 'cosh', 'tanh', 'ln', 'log', 'exp', 'sqrt']);
const GREEK = new Set([
  'alpha', 'beta', 'gamma', 'delta', 'epsilon', 'varepsilon', 'zeta', 'eta', 'theta', 'vartheta', 'iota', 'kappa', 'lambda', 'mu', 'nu',
  'xi', 'rho', 'sigma', 'tau', 'upsilon', 'phi', 'varphi', 'chi', 'psi', 'omega', 'Gamma', 'Delta', 'Theta', 'Lambda', 'Xi', 'Sigma',
  'Phi', 'Psi', 'Omega',
]);
const MUL_CMDS = new Set(['cdot', 'times', 'ast']);
const BY_LENGTH = [...FUNCS, 'pi'].sort((a, b) => b.length - a.length); // longest first: cosh before cos

function lex(src: string): Tok[] {
  const s = src.replace(/−/g, '-').replace(/[×·]/g, '*').replace(/π/g, '\\pi ').replace(/√/g, '\\sqrt');
  const out: Tok[] = [];
  for (let i = 0; i < s.length; ) {
    const c = s[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '{' && s[i + 1] === '}') {
      i += 2; // an empty group only separates a command from what follows
    } else if (/[0-9.]/.test(c)) {
      const m = /^(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/.exec(s.slice(i));
      if (!m) throw new ParseError(`bad number at ${i}`);
      out.push({ t: 'num', v: m[0] });
      i += m[0].length;
    } else if (c === '\\') {
      const m = /^\\([a-zA-Z]+|.)/.exec(s.slice(i));
      if (!m) throw new ParseError('lone backslash');
      out.push({ t: 'cmd', v: m[1]! });
      i += m[0].length;
    } else if (/[a-zA-Z]/.test(c)) {
      const word = /^[a-zA-Z]+/.exec(s.slice(i))![0];
      const fn = BY_LENGTH.find((f) => word.startsWith(f) && (word.length === f.length || f.length >= 3));
      if (fn && (fn.length >= 2 || word === fn)) {
        out.push({ t: 'cmd', v: fn });
        i += fn.length;
        continue;
      }
      // a run of three or more letters is a word, not a product of variables
      if (word.length >= 3 && word !== 'xyz' && word !== 'abc') throw new ParseError('text');
      out.push({ t: 'id', v: c });
      i++;
    } else if ('+-*/^_()[]{}|!,='.includes(c)) {
      out.push({ t: 'sym', v: c });
      i++;
    } else {
      throw new ParseError(`unexpected '${c}'`);
    }
  }
  return out;
}

class Parser {
  private i = 0;
  private depth = 0;
  constructor(
    private toks: Tok[],
    private deadline: Deadline,
  ) {}

  private peek(): Tok | undefined {
    return this.toks[this.i];
  }
  private isSym(v: string): boolean {
    const t = this.peek();
    return t !== undefined && t.t === 'sym' && t.v === v;
  }
  private expect(v: string): void {
    if (!this.isSym(v)) throw new ParseError(`expected '${v}'`);
    this.i++;
  }
  private enter(): void {
    if (++this.depth > MAX_DEPTH) throw new ParseError('too deep');
    checkDeadline(this.deadline);
  }

  parseAll(): Node {
    const n = this.sum();
    if (this.i < this.toks.length) throw new ParseError(`unexpected '${this.toks[this.i]!.v}'`);
    return n;
  }

  private sum(): Node {
    this.enter();
    let a = this.term();
    for (;;) {
      if (this.isSym('+') || this.isSym('-')) {
        const op = this.toks[this.i++]!.v as '+' | '-';
        a = { k: 'bin', op, a, b: this.term() };
      } else break;
    }
    this.depth--;
    return a;
  }

  private term(): Node {
    this.enter();
    let a = this.unary();
    for (;;) {
      const t = this.peek();
      if (!t) break;
      if ((t.t === 'sym' && (t.v === '*' || t.v === '/')) || (t.t === 'cmd' && (MUL_CMDS.has(t.v) || t.v === 'div'))) {
        this.i++;
        const op = t.v === '/' || t.v === 'div' ? '/' : '*';
        a = { k: 'bin', op, a, b: this.unary() };
      } else if (this.startsAtom(t)) {
        a = { k: 'bin', op: '*', a, b: this.power() };
      } else break;
    }
    this.depth--;
    return a;
  }

  private startsAtom(t: Tok): boolean {
    if (t.t === 'num' || t.t === 'id') return true;
    if (t.t === 'sym') return t.v === '(' || t.v === '{' || t.v === '[';
    return !MUL_CMDS.has(t.v) && t.v !== 'div' && t.v !== 'pm';
  }

  private unary(): Node {
    if (this.isSym('-')) {
      this.i++;
      return { k: 'neg', a: this.unary() };
    }
    if (this.isSym('+')) {
      this.i++;
      return this.unary();
    }
    return this.power();
  }

  private power(): Node {
    this.enter();
    let a = this.postfix();
    if (this.isSym('^')) {
      this.i++;
      const b = this.isSym('-') || this.isSym('+') ? this.unary() : this.power();
      a = { k: 'bin', op: '^', a, b };
    }
    this.depth--;
    return a;
  }

  private postfix(): Node {
    let a = this.primary();
    while (this.isSym('!')) {
      this.i++;
      a = { k: 'fact', a };
    }
    return a;
  }

  private group(): Node {
    this.expect('{');
    if (this.isSym('}')) throw new ParseError('empty group');
    const n = this.sum();
    this.expect('}');
    return n;
  }

  /** The argument of a function: a bracketed group, or the implicit product that follows. */
  private fnArg(): Node {
    if (this.isSym('(') || this.isSym('{') || this.isSym('[')) return this.power();
    let a = this.power();
    while (this.peek() && this.startsAtom(this.peek()!) && this.peek()!.t !== 'cmd') a = { k: 'bin', op: '*', a, b: this.power() };
    return a;
  }

  private primary(): Node {
    this.enter();
    const t = this.peek();
    if (!t) throw new ParseError('unexpected end');
    this.i++;
    let n: Node;
    if (t.t === 'num') {
      n = { k: 'num', v: Number(t.v), text: t.v };
      if (this.isSym('_')) throw new ParseError('number with a base subscript');
    } else if (t.t === 'id') {
      let name = t.v;
      if (this.isSym('_')) {
        this.i++;
        const sub = this.peek();
        if (sub && (sub.t === 'num' || sub.t === 'id')) {
          name += `_${sub.v}`;
          this.i++;
        } else if (this.isSym('{')) {
          let j = this.i + 1;
          while (j < this.toks.length && !(this.toks[j]!.t === 'sym' && this.toks[j]!.v === '}')) j++;
          name += `_{${this.toks.slice(this.i + 1, j).map((x) => x.v).join('')}}`;
          this.i = j + 1;
        } else throw new ParseError('bad subscript');
      }
      n = { k: 'var', name };
    } else if (t.t === 'sym') {
      if (t.v === '(' || t.v === '[') {
        const close = t.v === '(' ? ')' : ']';
        n = this.sum();
        this.expect(close);
      } else if (t.v === '{') {
        this.i--;
        n = this.group();
      } else if (t.v === '|') {
        n = { k: 'fn', name: 'abs', a: this.sum() };
        this.expect('|');
      } else throw new ParseError(`unexpected '${t.v}'`);
    } else {
      n = this.command(t.v);
    }
    this.depth--;
    return n;
  }

  private command(c: string): Node {
    if (c === 'frac') {
      const a = this.group();
      return { k: 'bin', op: '/', a, b: this.group() };
    }
    if (c === 'binom' || c === 'dbinom' || c === 'tbinom') {
      const a = this.group();
      return { k: 'binom', a, b: this.group() };
    }
    if (c === 'sqrt') {
      if (this.isSym('[')) {
        this.i++;
        const idx = this.sum();
        this.expect(']');
        return { k: 'bin', op: '^', a: this.group(), b: { k: 'bin', op: '/', a: { k: 'num', v: 1, text: '1' }, b: idx } };
      }
      return { k: 'fn', name: 'sqrt', a: this.isSym('{') ? this.group() : this.primary() };
    }
    if (c === 'pi') return { k: 'const', name: 'pi' };
    if (c === 'infty') return { k: 'const', name: 'infty' };
    if (c === 'text') return this.group(); // \text{} around a number or a variable
    if (GREEK.has(c)) return { k: 'var', name: `\\${c}` };
    if (FUNCS.has(c)) {
      let base: Node | undefined;
      let pow: Node | undefined;
      if (c === 'log' && this.isSym('_')) {
        this.i++;
        base = this.isSym('{') ? this.group() : this.primary();
      }
      if (this.isSym('^')) {
        this.i++;
        pow = this.isSym('{') ? this.group() : this.primary();
      }
      let f: Node = { k: 'fn', name: c, a: this.fnArg(), ...(base ? { base } : {}) };
      if (pow) f = { k: 'bin', op: '^', a: f, b: pow };
      return f;
    }
    throw new ParseError(`unsupported \\${c}`);
  }
}

/** Parse a normalised answer into an expression tree (throws ParseError / TimeLimit). */
export function parseExpr(src: string, deadline: Deadline): Node {
  if (src.length > MAX_INPUT) throw new ParseError('too long');
  const toks = lex(src);
  if (toks.length === 0) throw new ParseError('empty');
  return new Parser(toks, deadline).parseAll();
}
