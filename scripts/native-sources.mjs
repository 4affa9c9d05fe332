// Prints the C++ sources of the addon, one per line, for binding.gyp (gyp has no glob).
import { readdirSync } from 'node:fs';
for (const dir of ['native/core', 'native/cpu', 'native/napi'])
  for (const f of readdirSync(dir).sort()) if (f.endsWith('.cpp')) console.log(`${dir}/${f}`);
