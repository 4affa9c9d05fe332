# Rewrites a CUDA source for the host emulation (host/ shim headers + prelude.h):
#   kernel<<<grid, block, smem, stream>>>(args)  ->  ::emu::launch_kernel(::emu::Config(grid,
#       block, smem, stream), kernel, [=] { kernel(args); })
#   extern __shared__ [__align__(n)] T name[];   ->  T* name = reinterpret_cast<T*>(::emu::smem);
#   the inline assembly of attention_flash.cu: mma.sync -> ::emu::mma(c, a, b),
#       ldmatrix.x4[.trans] -> ::emu::ldmatrix_x4(r, row, trans)
#   __shared__ T a[n], b;  ->  the same, then ::emu::fresh_shared(&a, sizeof a); ... (below)
# Usage: translate.py <in.cu> <out.cpp>
import re, sys

def launches(s):
    out, i = [], 0
    while True:
        j = s.find('<<<', i)
        if j < 0:
            return ''.join(out) + s[i:]
        m = re.search(r'([A-Za-z_][\w:]*(?:<[^;<>]*>)?)\s*$', s[i:j])
        assert m, s[j - 80:j + 20]
        start = i + m.start(1)
        k = s.index('>>>', j)
        cfg = s[j + 3:k]
        p = k + 3
        while s[p].isspace():
            p += 1
        assert s[p] == '(', s[k:k + 40]
        depth, q = 0, p
        while True:
            depth += {'(': 1, ')': -1}.get(s[q], 0)
            if depth == 0:
                break
            q += 1
        out.append(s[i:start])
        out.append('::emu::launch_kernel(::emu::Config(%s), reinterpret_cast<const void*>(%s), [=] { %s%s; })'
                   % (cfg, m.group(1), m.group(1), s[p:q + 1]))
        i = q + 1

s = open(sys.argv[1]).read()
s = re.sub(r'extern __shared__ (?:__align__\(\d+\) )?(\w[\w ]*?) (\w+)\[\];',
           r'\1* \2 = reinterpret_cast<\1*>(::emu::smem);', s)
s = re.sub(r'asm volatile\(\s*"mma\.sync.*?"r"\(b\[1\]\)\);', '::emu::mma(c, a, b);', s, flags=re.S)
for trans, tag in (('true', r'\.trans'), ('false', '')):
    s = re.sub(r'asm volatile\(\s*"ldmatrix\.sync\.aligned\.m8n8\.x4%s\.shared\.b16.*?\(row\)\)\)\);' % tag,
               '::emu::ldmatrix_x4(r, row, %s);' % trans, s, flags=re.S)
assert 'asm' not in re.sub(r'//.*', '', s), 'inline assembly left that the emulation cannot run'
# A static __shared__ declaration (a function-level static in the emulation) is refilled
# with 0xFF at the first use in each block, like the dynamic shared memory: a kernel that
# reads shared memory no thread of its block has written sees NaN, not the last block's data.
def fresh_shared(m):
    decls, depth, cur = [], 0, ''
    for ch in m.group(2):
        depth += {'[': 1, ']': -1}.get(ch, 0)
        if ch == ',' and depth == 0:
            decls.append(cur)
            cur = ''
        else:
            cur += ch
    decls.append(cur)
    names = [re.match(r'\s*(\w+)', d).group(1) for d in decls]
    return m.group(0) + ''.join(' ::emu::fresh_shared(&%s, sizeof %s);' % (n, n) for n in names)
s = re.sub(r'(?<!extern )__shared__ (?:__align__\(\d+\) )?((?:unsigned )?\w+) ([^;]+);', fresh_shared, s)
s = launches(s)
open(sys.argv[2], 'w').write('// Generated from %s by bench/gpu/emulate/translate.py\n' % sys.argv[1] + s)
