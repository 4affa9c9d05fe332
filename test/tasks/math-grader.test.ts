// The answer extractor and the equivalence grader on hand-picked cases: what must
// count as equal, and, as important, what must not.
import { describe, expect, it } from 'vitest';
import { equivalent, extractAnswer, gradeMath } from '../../lib/tasks/math/index.js';

const EQUAL: Array<[string, string]> = [
  ['\\frac{1}{2}', '0.5'],
  ['1/2', '\\dfrac12'],
  ['.5', '\\tfrac{1}{2}'],
  ['1,000', '1000'],
  ['10,\\!080', '10080'],
  ['1{,}000{,}000', '1000000'],
  ['50\\%', '50'],
  ['50%', '0.5'],
  ['0.25', '25\\%'],
  ['1.5\\times10^{3}', '1500'],
  ['1.5e3', '1500'],
  ['2.5e-1', '\\frac14'],
  ['\\sqrt{12}', '2\\sqrt{3}'],
  ['\\frac{\\sqrt{2}}{2}', '\\frac{1}{\\sqrt{2}}'],
  ['\\sqrt[3]{8}', '2'],
  ['\\frac{3\\pi}{4}', '\\frac{3}{4}\\pi'],
  ['\\pi r^2', 'r^2 \\pi'],
  ['10\\text{ cm}', '10'],
  ['90^\\circ', '90'],
  ['90^{\\circ}', '90 degrees'],
  ['\\$32,\\!348', '32348'],
  ['864 \\mbox{ inches}^2', '864'],
  ['\\left( 3, \\frac{\\pi}{2} \\right)', '(3,\\pi/2)'],
  ['(x+1)^2', 'x^2+2x+1'],
  ['\\frac{x^2-1}{x-1}', 'x+1'],
  ['\\sin^2 x + \\cos^2 x', '1'],
  ['y = 2x + 3', 'y=3+2x'],
  ['2x - y + 3 = 0', 'y = 2x + 3'],
  ['x=5', '5'],
  ['x \\in [-2,7]', '[-2,7]'],
  ['\\{1\\pm\\sqrt{5},-2\\}', '-2, 1+\\sqrt5, 1-\\sqrt5'],
  ['1 \\pm \\sqrt{19}', '1-\\sqrt{19}, 1+\\sqrt{19}'],
  ['1,-2', '-2,1'],
  ['(-\\infty, 2) \\cup (3, \\infty)', '(3,\\infty)\\cup(-\\infty,2)'],
  ['\\left(\\frac{3}{5},\\frac{8}{3}\\right]', '(0.6, 8/3]'],
  ['\\begin{pmatrix} -1/3 \\\\ 2/3 \\end{pmatrix}', '\\begin{pmatrix} -\\frac13 \\\\ \\frac{2}{3} \\end{pmatrix}'],
  ['\\text{(C)}', 'C'],
  ['\\text{(C)}', '(C)'],
  ['\\text{Evelyn}', 'Evelyn'],
  ['1\\frac{4}{5}', '\\frac{9}{5}'],
  ['137 \\frac{1}{2}', '137.5'],
  ['6 - 5i', '-5i+6'],
  ['52_8', '52_{8}'],
  ['\\binom{5}{2}', '10'],
  ['5!', '120'],
  ['\\log_2 8', '3'],
  ['cosh(0) + sinx - \\sin x', '1'],
  ['2^{100}', '1267650600228229401496703205376'],
  ['\\boxed{7}', '7'],
  ['\\sqrt{x^2}', '|x|'],
  ['\\sqrt{x}\\sqrt{y}', '\\sqrt{xy}'],
  ['\\ln(x^2)', '2\\ln x'],
];

const NOT_EQUAL: Array<[string, string]> = [
  ['\\frac{1}{3}', '0.333'],
  ['0.3333', '\\frac13'],
  ['(1,2)', '[1,2)'],
  ['(1,2]', '(1,2)'],
  ['(1,2)', '(2,1)'],
  ['\\{1,2\\}', '\\{1,2,3\\}'],
  ['1,2', '1,2,2'],
  ['x^2+2x+1', 'x^2+2x-1'],
  ['x+y', 'x+y+0.0001'],
  ['p - q', 'q - p'],
  ['2^{100}', '2^{100}+1'],
  ['x+y=1', 'x^2+y^2=1'],
  ['y=2x+3', 'y=2x-3'],
  ['yes', 'sey'],
  ['\\text{east}', 'west'],
  ['50\\%', '5'],
  ['3\\sqrt{2}', '2\\sqrt{3}'],
  ['52_8', '52'],
  ['\\frac{\\pi}{2}', '90'],
  ['1\\frac{4}{5}', '\\frac{4}{5}'],
  ['\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}', '\\begin{pmatrix} 2 \\\\ 1 \\end{pmatrix}'],
  ['(-\\infty, 2)', '(-\\infty, 2]'],
  ['6+9i', '6-9i'],
  ['10^{10}', '10^{10}+1'],
  // equal at every positive point, different at negative ones
  ['|x|', 'x'],
  ['\\sqrt{x^2}', 'x'],
  ['x^3', '|x|^3'],
  ['|a|+|b|', 'a+b'],
  ['|x|+y=1', 'x+y=1'],
];

describe('equivalence', () => {
  it.each(EQUAL)('%s == %s', (a, b) => {
    expect(equivalent(a, b).equal, equivalent(a, b).reason).toBe(true);
    expect(equivalent(b, a).equal).toBe(true);
  });

  it.each(NOT_EQUAL)('%s != %s', (a, b) => {
    expect(equivalent(a, b).equal, equivalent(a, b).reason).toBe(false);
    expect(equivalent(b, a).equal).toBe(false);
  });

  it('says no to an empty answer', () => {
    expect(equivalent('', '5')).toEqual({ equal: false, reason: 'empty answer' });
    expect(equivalent('\\boxed{}', '5').equal).toBe(false);
  });

  it('keeps to its time limit and survives hostile input', () => {
    const r = equivalent('x^2+3x+\\sin(y)', 'x^2+3x+\\sin y+z-z', { timeoutMs: 0 });
    expect(r.equal).toBe(false);
    expect(r.reason).toMatch(/time limit/);
    const hostile = [
      '\\frac{'.repeat(20_000), '('.repeat(50_000) + ')'.repeat(50_000), '2^'.repeat(30_000) + '2', '{'.repeat(100_000), 'x'.repeat(200_000), '\\sqrt'.repeat(10_000),
      '1' + ' a'.repeat(100_000) + '!', // (quadratic in the unit-dropping step: 1.7 s at 40k characters before the length cap)
      '1' + ' a'.repeat(3_999) + '!', // just under the cap
    ];
    for (const h of hostile) {
      const t0 = Date.now();
      expect(equivalent(h, '5').equal).toBe(false);
      expect(equivalent(h.slice(0, 900), h.slice(0, 900) + '+1').equal).toBe(false);
      expect(Date.now() - t0).toBeLessThan(2000);
    }
  });
});

describe('answer extraction', () => {
  it("prefers Minerva's Final Answer line, then the last \\boxed, then 'The answer is', then ####", () => {
    const minerva = 'We get \\boxed{3}.\nFinal Answer: The final answer is $\\frac{1}{2}$. I hope it is correct.';
    expect(extractAnswer(minerva)).toEqual({ answer: '\\frac{1}{2}', method: 'final-answer' });
    expect(extractAnswer('first \\boxed{1}, then \\boxed{\\frac{1}{\\sqrt{2}}}. The answer is 7')).toEqual({ answer: '\\frac{1}{\\sqrt{2}}', method: 'boxed' });
    expect(extractAnswer('so \\fbox{5} it is')).toEqual({ answer: '5', method: 'boxed' });
    expect(extractAnswer('thus $\\boxed 5$.')).toEqual({ answer: '5', method: 'boxed' });
    expect(extractAnswer('Adding up, the answer is $42$.\n#### 41')).toEqual({ answer: '42', method: 'the-answer-is' });
    expect(extractAnswer('She pays 3*4=<<3*4=12>>12 dollars.\n#### 1,000')).toEqual({ answer: '1,000', method: 'hashes' });
    // Minerva's sentence without its "Final Answer:" prefix; the rest of a sentence after the answer
    expect(extractAnswer('The final answer is 12.5. I hope it is correct.')).toEqual({ answer: '12.5', method: 'the-answer-is' });
    expect(extractAnswer('The answer is 5. So we are done.')).toEqual({ answer: '5', method: 'the-answer-is' });
    expect(extractAnswer('so the answer is 3.5.')).toEqual({ answer: '3.5', method: 'the-answer-is' });
    expect(extractAnswer('I do not know')).toBeUndefined();
    expect(extractAnswer('\\boxed{unbalanced')).toBeUndefined();
  });

  it('grades completions end to end', () => {
    expect(gradeMath('Final Answer: The final answer is $0.5$. I hope it is correct.', '\\frac12')).toMatchObject({ correct: true });
    expect(gradeMath('no answer here\nat all', '5')).toEqual({ correct: false, reason: 'no final answer found' });
    expect(gradeMath('0.5', '\\frac12')).toMatchObject({ correct: true });
    expect(gradeMath('no answer here', '5').correct).toBe(false);
    const wrong = gradeMath('so \\boxed{6}', '5');
    expect(wrong.correct).toBe(false);
    expect(wrong.reason).toMatch(/not equal.*'6' via boxed/);
  });
});
