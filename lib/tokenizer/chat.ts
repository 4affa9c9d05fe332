// Chat templates (the Jinja `chat_template` of tokenizer_config.json) rendered with @huggingface/jinja.
import { Template } from '@huggingface/jinja';
import { TokenizerError, type ChatMessage } from './types.js';

export interface ChatOptions {
  /** end with the header of an assistant turn, so that the model writes the reply (default true) */
  addGenerationPrompt?: boolean;
  /** extra variables for the template (bos_token and eos_token are set from the tokenizer) */
  vars?: Record<string, unknown>;
}

/** The template text of a tokenizer_config.json `chat_template` (a string, or a list of named templates). */
export function pickTemplate(value: unknown, file: string, name = 'default'): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value.find((t) => t && typeof t === 'object' && (t as { name?: unknown }).name === name) as { template?: unknown } | undefined;
    if (named && typeof named.template === 'string') return named.template;
  }
  throw new TokenizerError(`${file}: field 'chat_template' is neither a string nor a list with a '${name}' template`);
}

export class ChatTemplate {
  private template: Template;
  constructor(
    readonly source: string,
    private specials: { bos_token?: string; eos_token?: string } = {},
    private file = 'chat_template',
  ) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new TokenizerError(`${file}: chat_template does not parse (${(e as Error).message.split('\n')[0]})`);
    }
  }

  render(messages: ChatMessage[], opts: ChatOptions = {}): string {
    try {
      return this.template.render({
        messages,
        add_generation_prompt: opts.addGenerationPrompt ?? true,
        ...this.specials,
        ...opts.vars,
      });
    } catch (e) {
      // a template that parses can still fail on use (an undefined variable in an
      // operation, raise_exception(...)); say which file's template it was
      const msg = (e instanceof Error ? e.message : String(e)).replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, ' ').slice(0, 500);
      throw new TokenizerError(`${this.file}: chat_template failed to render (${msg})`);
    }
  }
}
